"""Quality records, scoring, reporting, compare, rescore and inspect: pure functions on records."""

import dataclasses
import json

import pytest

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput
from orchestrator.evaluate.quality.packs import PACK_ORDER, load_pack, load_packs
from orchestrator.evaluate.quality.records import effective, rescore
from orchestrator.evaluate.quality.runner import ChatError, run_pack_scenarios
from orchestrator.evaluate.quality.scoring import (Interval, case_timeout, classify, difference_interval, failure_breakdown,
                                                   inspect, markdown_table, one_liner, pack_scores, percentile, wilson)
from tests.quality_controls import goldens, message

GOLDENS = goldens()
QUICK = load_packs(("toolcall", "instruct"), mode="quick")


def golden_chat(wrong=(), errors=None):
    """A chat that answers each scenario with its golden, except the scenario ids in `wrong`
    (answered with junk) and in `errors` (answered with that ChatError)."""
    index = {tuple(json.dumps(m) for m in s.messages): (p.id, s.id) for p in load_packs(PACK_ORDER) for s in p.scenarios}
    calls = []

    def chat(messages, tools, max_tokens, timeout_s):
        pack, scenario = index[tuple(json.dumps(m) for m in messages)]
        calls.append((scenario, max_tokens, timeout_s))
        if errors and scenario in errors:
            return None, None, errors[scenario]
        if scenario in wrong:
            return {"content": "no idea", "tool_calls": []}, "stop", None
        return message(GOLDENS[pack][scenario]), "stop", None

    chat.calls = calls
    return chat


def ticking(step=0.5):
    now = [0.0]

    def clock():
        now[0] += step
        return now[0]
    return clock


def test_records_are_schema_valid_and_reference_their_responses():
    chat = golden_chat(wrong={"TC-03"}, errors={"IF-02": ChatError("http_error", "HTTP 500 from /v1/chat/completions")})
    seen = []
    run = run_pack_scenarios(QUICK, chat, cell_id="node:llama.cpp:smollm2", measured_tps=25.0, clock=ticking(),
                             on_record=lambda record, line: seen.append((record["scenario"], line["key"])))
    for number, record in enumerate(run.records, 1):
        datafiles.validate(record, "quality-record", f"record {number}")
    assert [s for s, _ in seen] == [r["scenario"] for r in run.records]
    assert [line["key"] for line in run.responses] == [r["response_ref"] for r in run.records]
    by_id = {r["scenario"]: r for r in run.records}
    assert by_id["TC-03"]["failure_mode"] == "wrong_answer"
    assert (by_id["IF-02"]["failure_mode"], by_id["IF-02"]["passed"]) == ("http_error", False)
    assert by_id["TC-01"]["timeout_s"] == 120.0  # 60 s at 50 tok/s reference, measured 25 tok/s
    assert by_id["TC-01"]["net_isolated"] is None and by_id["TC-01"]["latency_s"] == 0.5
    assert chat.calls[0][1:] == (512, 120.0)


def test_a_timeout_is_a_failure_not_a_crash_and_resume_runs_only_missing_arms():
    chat = golden_chat(errors={"TC-02": ChatError("timeout", "no answer after 60 s")})
    first = run_pack_scenarios(QUICK, chat, repeat=2, clock=ticking())
    timed_out = [r for r in first.records if r["scenario"] == "TC-02"]
    assert [r["failure_mode"] for r in timed_out] == ["timeout", "timeout"] and timed_out[0]["latency_s"] is None
    done = {(r["cell_id"], r["pack"], r["scenario"], r["repeat_idx"]) for r in first.records[:20]}
    second = run_pack_scenarios(QUICK, golden_chat(), repeat=2, done=done, clock=ticking())
    assert len(second.records) == len(first.records) - 20
    assert not done & {(r["cell_id"], r["pack"], r["scenario"], r["repeat_idx"]) for r in second.records}
    with pytest.raises(ValueError):
        ChatError("unreachable", "not a failure mode")


def test_timeout_scaling_and_ceiling():
    pack = load_pack("math")  # 90 s at 50 tok/s, 1024 tokens, ceiling 600 s
    assert case_timeout(pack, None) == 90
    assert case_timeout(pack, 500.0) == 90  # a fast machine keeps the pack's time
    assert case_timeout(pack, 25.0) == 180
    assert case_timeout(pack, 25.0, 2048) == 360
    assert case_timeout(pack, 1.0) == 600
    assert case_timeout(pack, 0.0) == 90


def test_percentiles():
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.95) == 3.0
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 0.95) == 19.0 and percentile(values, 0.5) == 11.0


def record(pack, scenario, passed, repeat_idx=0, latency=1.0, mode=None, version=1):
    return {"type": "quality", "cell_id": "c", "pack": pack, "pack_version": version, "scenario": scenario,
            "repeat_idx": repeat_idx, "verifier_version": 1, "passed": passed,
            "failure_mode": "passed" if passed else (mode or "wrong_answer"), "detail": "ok" if passed else "expected 4, got 5",
            "score": None, "latency_s": latency, "response_ref": ["quality", "c", pack, scenario, repeat_idx]}


def test_repeat_statistics_are_population_std_and_cv():
    # Three arms of four scenarios: pass rates 1.0, 0.5, 0.75.
    outcomes = [[True, True, True, True], [True, False, True, False], [True, True, True, False]]
    records = [record("math", f"MA-0{i + 1}", ok, arm) for arm, row in enumerate(outcomes) for i, ok in enumerate(row)]
    (score,) = pack_scores(records)
    assert (score.passed, score.total, score.repeat) == (9, 12, 3)
    assert score.mean == pytest.approx(0.75)
    assert score.std == pytest.approx(((0.25 ** 2 + 0.25 ** 2 + 0) / 3) ** 0.5)
    assert score.cv == pytest.approx(score.std / 0.75)
    single = pack_scores([record("math", "MA-01", True)])[0]
    assert (single.repeat, single.std, single.cv) == (1, None, None)
    zero = pack_scores([record("math", "MA-01", False, arm) for arm in range(3)])[0]
    assert (zero.mean, zero.std, zero.cv) == (0.0, 0.0, None)


def quick_records():
    rows = [record("toolcall", f"TC-{i:02d}", i not in (3, 7, 9), latency=float(i)) for i in range(1, 13)]
    rows += [record("instruct", f"IF-{i:02d}", i != 4, latency=2.0) for i in range(1, 6)]
    rows[-1] = {**rows[-1], "passed": False, "failure_mode": "timeout", "detail": "no answer after 60 s", "latency_s": None}
    return rows


def test_markdown_table_breakdown_and_one_liner():
    scores = pack_scores(quick_records())
    assert markdown_table(scores) == "\n".join([
        "| Pack | Pass / Total | Score | 95% CI | Checks met | Easy | Medium | Hard | p50 latency | p95 latency | Status |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        "| toolcall (v1) | 9 / 12 | 75% | 47%–91% | – | – | – | – | 7.0s | 11.0s | ok |",
        "| instruct (v1) | 3 / 5 | 60% | 23%–88% | – | – | – | – | 2.0s | 2.0s | 1 serving error(s) |",
        "| TOTAL | 12 / 17 | 71% | 47%–87% |  |  |  |  |  |  |  |",
    ])
    assert one_liner(scores, "quick", "2026-11-29") == (
        "Quality: toolcall 9/12 (75%, 95% CI 47%–91%) · instruct 3/5 (60%, 95% CI 23%–88%) (quick, packs v1, 2026-11-29)")
    assert failure_breakdown(quick_records()) == [
        "- toolcall TC-03: wrong_answer (expected 4, got 5)",
        "- toolcall TC-07: wrong_answer (expected 4, got 5)",
        "- toolcall TC-09: wrong_answer (expected 4, got 5)",
        "- instruct IF-04: wrong_answer (expected 4, got 5)",
        "- instruct IF-05: timeout (no answer after 60 s)",
    ]


def test_wilson_interval_is_honest_at_the_edges_and_narrows_with_n():
    assert (wilson(0, 10).low, round(wilson(0, 10).high, 4)) == (0.0, 0.2775)  # never the 0–0 of p ± z·se
    assert wilson(10, 10).low == pytest.approx(0.7225, abs=1e-4) and wilson(10, 10).high == pytest.approx(1.0)
    assert (round(wilson(5, 10).low, 4), round(wilson(5, 10).high, 4)) == (0.2366, 0.7634)
    assert wilson(100, 200).half_width < 0.07 < wilson(50, 100).half_width
    assert wilson(0, 0) == Interval(0.0, 1.0)


def test_difference_interval_calls_only_significant_differences():
    assert difference_interval(50, 100, 65, 100).excludes_zero()  # +15 points on 100 each
    assert not difference_interval(5, 16, 8, 16).excludes_zero()  # +19 points on 16 each: noise
    assert difference_interval(65, 100, 50, 100).high < 0  # the sign follows b − a


def test_tiers_and_check_level_accuracy_show_partial_compliance():
    rows = [{**record("instruct", f"IF-G00{i}", ok), "level": level, "checks_met": met, "checks_asked": 4}
            for i, (ok, level, met) in enumerate([(True, "easy", 4), (False, "easy", 3), (False, "medium", 2),
                                                  (False, "hard", 1), (False, "hard", 0)])]
    rows.append(record("instruct", "IF-01", True))  # an old record: no tier, no check counts
    (score,) = pack_scores(rows)
    assert (score.checks_met, score.checks_asked, score.check_accuracy) == (10, 20, 0.5)
    assert score.tiers == {"easy": {"passed": 1, "total": 2}, "medium": {"passed": 0, "total": 1},
                           "hard": {"passed": 0, "total": 2}}
    assert (score.low, score.high) == (round(wilson(2, 6).low, 4), round(wilson(2, 6).high, 4))
    assert "| instruct (v1) | 2 / 6 | 33% | 10%–70% | 10/20 (50%) | 1/2 | 0/1 | 0/2 |" in markdown_table([score])


def test_table_with_repeats_and_serving_errors():
    records = [record("toolcall", "TC-01", True, 0), record("toolcall", "TC-01", False, 1, mode="server_error")]
    table = markdown_table(pack_scores(records))
    assert table.splitlines()[0].endswith("| Status | Std | CV |")
    assert "| toolcall (v1) | 1 / 2 | 50% | 9%–91% | – | – | – | – | 1.0s | 1.0s | 1 serving error(s) | 0.500 | 1.000 |" in table
    assert failure_breakdown(records) == ["- toolcall TC-01 #1: server_error (expected 4, got 5)"]


def test_compare_classifies_every_scenario_against_three_baseline_runs():
    def run(passes):
        return [record("toolcall", sid, ok) for sid, ok in passes.items()]

    baselines = [run({"TC-01": True, "TC-02": True, "TC-03": False, "TC-04": True, "TC-05": False}),
                 run({"TC-01": True, "TC-02": False, "TC-03": False, "TC-04": True, "TC-05": True}),
                 run({"TC-01": True, "TC-02": True, "TC-03": True, "TC-04": False, "TC-05": False})]
    candidate = run({"TC-01": False, "TC-02": True, "TC-03": True, "TC-04": True, "TC-06": True})
    statuses = {d.scenario: d.status for d in classify(baselines, candidate)}
    assert statuses == {"TC-01": "regression", "TC-02": "stable_pass", "TC-03": "fix", "TC-04": "stable_pass",
                        "TC-05": "dropped", "TC-06": "new"}
    # Half the baseline calls passing counts as a pass: one run with two arms, pass and fail, plus two passes.
    half = [[record("math", "MA-01", True, 0), record("math", "MA-01", False, 1)],
            [record("math", "MA-01", False)], [record("math", "MA-01", True)]]
    assert classify(half, [record("math", "MA-01", False)])[0].status == "regression"
    with pytest.raises(BadInput, match="at least 3 baseline runs"):
        classify(baselines[:2], candidate)


def test_rescore_round_trip_appends_and_the_newest_verifier_wins(monkeypatch):
    chat = golden_chat(wrong={"TC-05"})
    run = run_pack_scenarios(QUICK, chat, clock=ticking())
    result = rescore(run.records, run.responses, QUICK, at="2026-11-29T23:00:00Z")
    assert len(result.records) == len(run.records) and result.changed == 0 and result.skipped == ()
    for rescored, original in zip(result.records, run.records):
        datafiles.validate(rescored, "quality-record", "rescore")
        assert (rescored["passed"], rescored["response_ref"]) == (original["passed"], original["response_ref"])
    # A newer tool_call verifier that (wrongly, for the test) passes everything: its verdicts win.
    from orchestrator.evaluate.quality import records as records_module
    from orchestrator.evaluate.quality.verdict import ok
    monkeypatch.setitem(records_module.VERSIONS, "tool_call", 2)
    monkeypatch.setattr(records_module, "verify", lambda scenario, message, finish, runner=None: ok("lenient"))
    newer = rescore(run.records, run.responses, QUICK, at="2026-11-29T23:05:00Z")
    assert newer.changed == 1
    merged = effective(list(run.records) + list(result.records) + list(newer.records))
    tc05 = next(r for r in merged if r["scenario"] == "TC-05")
    assert (tc05["passed"], tc05["verifier_version"], tc05["latency_s"]) == (True, 2, 0.5)
    # A pack file that changed since the run is not used to judge it.
    changed = dataclasses.replace(QUICK[0], sha256="0" * 64)
    skipped = rescore(run.records, run.responses, (changed, QUICK[1]), at="x")
    assert len(skipped.skipped) == len(QUICK[0].scenarios) and "is not the one loaded" in skipped.skipped[0]
    missing = rescore(run.records, run.responses[1:], QUICK, at="x")
    assert missing.skipped == ("toolcall/TC-01#0: no saved response",)


def test_inspect_filters():
    chat = golden_chat(wrong={"TC-05", "IF-03"})
    run = run_pack_scenarios(QUICK, chat, clock=ticking())
    failed = inspect(run.records, run.responses, failed=True)
    assert [r.record["scenario"] for r in failed] == ["TC-05", "IF-03"]
    assert failed[0].message["content"] == "no idea"
    assert [r.record["scenario"] for r in inspect(run.records, run.responses, scenario="TC-01")] == ["TC-01"]
    assert [r.record["scenario"] for r in inspect(run.records, run.responses, mode="wrong_structure")] == ["IF-03"]
    other = run_pack_scenarios(QUICK, golden_chat(wrong={"TC-05", "TC-06"}), clock=ticking())
    diff = inspect(run.records, run.responses, diff=other.records)
    assert [(r.record["scenario"], r.other["passed"]) for r in diff] == [("TC-06", False), ("IF-03", True)]
