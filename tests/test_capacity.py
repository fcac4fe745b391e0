"""The capacity phase (#28 §3) against the FAKE OpenAI server: its levels and keys, the closed and open
loops, the `capacity` lines, the summary (per-user rate, TTFT p95, queueing, Pareto front), the SLO
sentence with canonical and overridden SLOs, the report (metadata, run.md, plot), the flags, and auto's
estimate."""

import json

import pytest

from orchestrator.cli import main
from orchestrator.core import datafiles
from orchestrator.core.canonical import CapacitySLO, capacity_slo
from orchestrator.core.ledger import read_records
from orchestrator.core.paths import REPO_ROOT
from orchestrator.flows.auto import estimate_phases
from orchestrator.flows.pipeline import byo_targets
from orchestrator.measure.client import CallResult
from orchestrator.measure.phases.capacity import CapacityPhase, queue_ms, serving_capacity, summarise, sweep, user_levels
from orchestrator.measure.phases.load import load_suite, quantile
from orchestrator.measure.run import RunOptions, run_suites
from orchestrator.measure.suites import parse_phases
from orchestrator.plan.decide import decide
from orchestrator.plan.probe import Hardware
from orchestrator.plan.profiles import load_profiles
from orchestrator.plan.rulecheck import GOLDEN_DIR
from orchestrator.publish.report import report
from tests.fakes.openai_server import start_in_thread

HARDWARE = REPO_ROOT / "tests" / "fixtures" / "hardware" / "mac-m1-8gb.json"


@pytest.fixture()
def fake():
    srv, state, url = start_in_thread()
    state.chunk_delay_s = 0.003  # a call takes ~0.1 s: concurrent users overlap
    yield state, url
    srv.shutdown()


def targets(url):
    return byo_targets(url, ["fake"], "llamacpp", "node:llamacpp", "node")


def options(**more):
    return RunOptions(**{"phases": ["capacity"], "runs": 1, "num_predict": 32, "capacity": {"max_users": 3}, **more})


def lines(run_dir, kind):
    return [r for r in read_records(run_dir / "run.jsonl") if r["type"] == kind]


@pytest.mark.parametrize("top, levels", [(1, [1]), (2, [1, 2]), (3, [1, 2, 3]), (4, [1, 2, 4]), (6, [1, 2, 4, 6]),
                                         (8, [1, 2, 4, 8])])
def test_levels_double_up_to_the_slots(top, levels):
    assert user_levels(top) == levels


def test_capacity_runs_only_when_named_and_its_suite_is_versioned():
    assert "capacity" not in parse_phases("all") and parse_phases("capacity,hello") == ["hello", "capacity"]
    suite = load_suite()
    assert suite.version == 1 and len(suite.prompts) == 5
    assert suite.prompt(0, 1) == suite.prompt(1, 0) != suite.prompt(2, 0)  # each user starts at its own prompt


def test_units_key_every_call_by_level_user_and_turn():
    phase = CapacityPhase(load_suite(), 3)
    units = phase.units(["n:e:m"], RunOptions(phases=["capacity"]))
    assert [u.keys[0].prompt_id for u in units] == ["users-1", "users-2", "users-3", "rate-50", "rate-90"]
    assert [(k.lane, k.run_idx) for k in units[1].keys] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [len(u.keys) for u in units] == [2, 4, 6, 6, 6]
    smoke = phase.units(["n:e:m"], RunOptions(phases=["capacity"], smoke=True))
    assert [(u.keys[0].prompt_id, len(u.keys)) for u in smoke] == [("users-1", 1), ("users-3", 3), ("rate-50", 2)]


def test_closed_and_open_loops_write_timed_calls_and_one_capacity_line_per_level(fake, tmp_path):
    state, url = fake
    result = run_suites(targets(url), options(), tmp_path, "run-1")
    assert result.status == "complete" and result.errors == 0
    calls = [c for c in lines(tmp_path, "call") if c["phase"] == "capacity"]
    assert len(calls) == 2 + 4 + 6 + 6 + 6
    assert all(c["load_state"] == "warm" and c["max_tokens"] == 32 and c["cache_prompt"] is False
               and c["server_prompt_ms"] is not None for c in calls)
    levels = {r["level"]: r for r in lines(tmp_path, "capacity")}
    assert list(levels) == ["users-1", "users-2", "users-3", "rate-50", "rate-90"]
    three = levels["users-3"]
    assert three["loop"] == "closed" and three["users"] == 3 and three["calls"] == 6 and three["errors"] == 0
    durations = sum(c["total_duration_ms"] for c in calls if c["prompt_id"] == "users-3")
    assert three["wall_ms"] < durations * 0.8  # the users ran at the same time
    best = max(r["requests_per_sec"] for r in levels.values() if r["loop"] == "closed")
    assert levels["rate-90"]["arrival_rate_per_s"] == pytest.approx(0.9 * best, rel=0.01)
    assert levels["rate-50"]["users"] is None and levels["rate-50"]["loop"] == "open"
    meta = next(read_records(tmp_path / "run.jsonl"))
    assert meta["options"]["capacity"] == {"max_users": 3}
    assert meta["suites"]["capacity"]["sha256"] == load_suite().sha256


def test_a_resumed_capacity_run_repeats_no_call_and_keeps_the_open_loop_rate(fake, tmp_path):
    _, url = fake
    run_suites(targets(url), options(), tmp_path / "whole", "run-1")
    ledger = tmp_path / "cut" / "run.jsonl"
    ledger.parent.mkdir()
    kept = (tmp_path / "whole" / "run.jsonl").read_text().splitlines()
    cut = next(i for i, line in enumerate(kept) if '"rate-90"' in line)  # killed during the last level
    ledger.write_text("\n".join(kept[:cut]) + "\n")
    assert run_suites(targets(url), options(), tmp_path / "cut", "run-1", resume=True).status == "complete"
    calls = [(c["prompt_id"], c["lane"], c["run_idx"]) for c in lines(tmp_path / "cut", "call")]
    assert len(calls) == len(set(calls)) == 24
    rates = {r["level"]: r["arrival_rate_per_s"] for r in lines(tmp_path / "cut", "capacity")}
    whole = {r["level"]: r["arrival_rate_per_s"] for r in lines(tmp_path / "whole", "capacity")}
    assert rates["rate-90"] == whole["rate-90"]


def call(level, ttft, rate, prompt_ms=5.0, error=None):
    return {"type": "call", "cell_id": "n:e:m", "phase": "capacity", "prompt_id": level, "first_delta_ms": ttft,
            "server_prompt_ms": prompt_ms, "tokens_per_sec": rate, "error": error}


def level_line(level, users, aggregate, calls=4, errors=0, loop="closed", rate=None):
    return {"type": "capacity", "cell_id": "n:e:m", "level": level, "loop": loop, "users": users,
            "arrival_rate_per_s": rate, "calls": calls, "errors": errors, "aggregate_tokens_per_sec": aggregate,
            "requests_per_sec": 1.0}


RECORDS = [
    {"type": "meta", "options": {}},
    level_line("users-1", 1, 20.0), *[call("users-1", 200, 20.0) for _ in range(4)],
    level_line("users-2", 2, 36.0), *[call("users-2", t, 18.0) for t in (300, 300, 400, 900)],
    level_line("users-4", 4, 40.0), *[call("users-4", t, 10.0) for t in (800, 1500, 2500, 3100)],
    level_line("rate-50", None, 15.0, loop="open", rate=0.5), *[call("rate-50", 250, 19.0) for _ in range(4)],
]


def test_the_summary_gives_per_user_rate_ttft_percentiles_queueing_and_the_pareto_front():
    levels = {lv.level: lv for lv in summarise(RECORDS, CapacitySLO(1.0, 15.0))}
    two = levels["users-2"]
    assert two.ttft_ms_p50 == 350.0 and two.ttft_ms_p95 == pytest.approx(quantile([300, 300, 400, 900], 0.95))
    assert two.user_tokens_per_sec_p50 == 18.0 and two.queue_ms_p50 == 345.0
    assert two.meets_slo and levels["users-1"].meets_slo and not levels["users-4"].meets_slo
    assert not levels["rate-50"].meets_slo  # the SLO is about concurrent users: open-loop levels never claim it
    # the front: users-1 (lowest latency), users-2 and users-4 (more throughput each); rate-50 is beaten by users-1
    assert {name for name, lv in levels.items() if lv.pareto} == {"users-1", "users-2", "users-4"}
    assert queue_ms({"first_delta_ms": 3.0, "server_prompt_ms": 5.0}) == 0.0
    assert queue_ms({"first_delta_ms": 3.0, "server_prompt_ms": None}) is None


def test_the_sentence_names_the_most_users_within_the_slo():
    slo = CapacitySLO(1.0, 15.0)
    served = serving_capacity(summarise(RECORDS, slo), "n:e:m", slo)
    assert served["users"] == 2 and served["measured_up_to"] == 4
    assert served["sentence"] == ("serves 2 concurrent users with TTFT p95 ≤ 0.83 s and ≥ 18.0 tok/s each "
                                  "(SLO: TTFT p95 ≤ 1 s, ≥ 15 tok/s each; measured up to 4)")
    strict = CapacitySLO(0.1, 15.0)
    none = serving_capacity(summarise(RECORDS, strict), "n:e:m", strict)
    assert none["users"] == 0 and none["sentence"].startswith("meets the SLO (TTFT p95 ≤ 0.1 s, ≥ 15 tok/s each) at no "
                                                               "concurrency measured: at 1 user(s) TTFT p95 0.20 s")


def test_a_level_with_a_failed_call_never_meets_the_slo():
    records = [{"type": "meta"}, level_line("users-1", 1, 20.0, calls=2, errors=1), call("users-1", 100, 30.0)]
    (level,) = summarise(records, CapacitySLO(10.0, 1.0))
    assert not level.meets_slo


def test_the_slo_is_canonical_data_and_a_run_overrides_it():
    assert capacity_slo() == CapacitySLO(2.0, 5.0)
    assert capacity_slo().with_overrides({"ttft_p95_s": 0.5}) == CapacitySLO(0.5, 5.0)
    assert capacity_slo().with_overrides({"user_tokens_per_sec": 0}) == CapacitySLO(2.0, 0)


def test_report_has_the_sentence_the_table_and_the_plot(fake, tmp_path):
    _, url = fake
    run_suites(targets(url), options(capacity={"max_users": 2, "ttft_p95_s": 5.0}), tmp_path, "run-1")
    done = report(tmp_path)
    datafiles.validate(done.metadata, "metadata", "metadata.json")
    capacity = done.metadata["capacity"]
    assert capacity["slo"] == {"ttft_p95_s": 5.0, "user_tokens_per_sec": 5.0}  # the run's override, recorded
    (served,) = capacity["serving"]
    assert served["users"] == 2 and served["sentence"].startswith("serves 2 concurrent users with TTFT p95 ≤ ")
    assert f"**node:llamacpp:fake: {served['sentence']}**" in done.markdown
    assert "## Capacity: how many users, at what latency" in done.markdown and "| node:llamacpp:fake | 2 user(s)" in done.markdown
    assert "capacity.png" in done.plots and (tmp_path / "capacity.png").exists()


def test_run_flags_set_the_top_level_and_the_slo(fake, tmp_path, capsys):
    _, url = fake
    assert main(["run", "--target-url", url, "--engine", "llamacpp", "--models", "fake", "--hardware", str(HARDWARE),
                 "--submissions-dir", str(tmp_path), "--submitter-handle", "tester", "--device-tag", "test-box",
                 "--force-load", "--phases", "capacity", "--smoke", "--num-predict", "16", "--capacity-users", "2",
                 "--slo-ttft-p95", "1.5", "--slo-user-tps", "3"]) == 0
    (ledger,) = tmp_path.rglob("run.jsonl")
    meta = next(read_records(ledger))
    assert meta["options"]["capacity"] == {"max_users": 2, "ttft_p95_s": 1.5, "user_tokens_per_sec": 3.0}
    assert [r["level"] for r in lines(ledger.parent, "capacity")] == ["users-1", "users-2", "rate-50"]
    with pytest.raises(SystemExit) as refused:
        main(["run", "--target-url", url, "--models", "fake", "--capacity-users", "0"])
    assert refused.value.code == 2 and "--capacity-users: '0' must be from 1" in capsys.readouterr().err


def test_auto_estimates_capacity_from_its_levels_and_rate():
    phase = CapacityPhase(load_suite(), 3)
    assert phase.estimate_seconds(50.0, 2048, 1) < phase.estimate_seconds(25.0, 2048, 1)
    assert CapacityPhase(load_suite(), 8).estimate_seconds(50.0, 2048, 1) > phase.estimate_seconds(50.0, 2048, 1)
    hardware = Hardware.load(GOLDEN_DIR / "linux-vps-cpu-4c-8gb.json")
    (hello, capacity) = estimate_phases(decide(hardware, load_profiles(), {}), 50.0, ["hello", "capacity"], 1)
    assert capacity.phase == "capacity" and capacity.calls == 2 + 4 + 6 + 6 + 6 and capacity.seconds > 0
    json.dumps(capacity.__dict__)


def test_sweep_measures_the_closed_loop_without_a_run_folder_for_tune():
    seen = []

    def call(user, turn):
        seen.append((user, turn))
        return CallResult(text="x", first_delta_ms=100.0 * (user + 1), server_prompt_ms=5.0, tokens_per_sec=20.0,
                          completion_tokens=10)

    slo = CapacitySLO(0.25, 10.0)
    levels = sweep(call, 4, 2, slo)
    assert [(lv.users, lv.calls, lv.meets_slo) for lv in levels] == [(1, 2, True), (2, 4, True), (4, 8, False)]
    assert sorted(seen) == sorted((u, t) for n in (1, 2, 4) for u in range(n) for t in range(2))
    assert serving_capacity(levels, "sweep", slo)["users"] == 2
