"""The depth phase (#16 §2) against the FAKE OpenAI server: its frozen filler suite, the depths it
chooses, its call lines (warm, calibrated to the nominal depth, no shared prefix), resume, the
report (metadata, run.md table, plot) and auto's estimate."""

import hashlib
import json

import pytest

from orchestrator.core import datafiles
from orchestrator.flows.auto import estimate_phases
from orchestrator.core.errors import BadInput
from orchestrator.plan.decide import decide
from orchestrator.core.ledger import read_records
from orchestrator.measure.phases.depth import CALIBRATION, DepthPhase, depth_of, load_depth_suite, suite_path
from orchestrator.flows.pipeline import byo_targets
from orchestrator.plan.probe import Hardware
from orchestrator.plan.profiles import load_profiles
from orchestrator.publish.report import report
from orchestrator.plan.rulecheck import GOLDEN_DIR
from orchestrator.measure.run import RunOptions, run_suites
from orchestrator.measure.suites import parse_phases
from tests.fakes.openai_server import start_in_thread

CHARS_PER_TOKEN = 4.2


@pytest.fixture()
def fake():
    srv, state, url = start_in_thread()
    state.prompt_chars_per_token = CHARS_PER_TOKEN  # prompt tokens grow with the prompt, as on a real runtime
    yield state, url
    srv.shutdown()


def targets(url):
    return byo_targets(url, ["fake"], "llamacpp", "node:llamacpp", "node")


def options(**more):
    return RunOptions(**{"phases": ["hello", "depth"], "runs": 1, "num_ctx": 4096, "num_predict": 32, **more})


def depth_calls(run_dir):
    return [r for r in read_records(run_dir / "run.jsonl") if r["type"] == "call" and r["phase"] == "depth"]


def test_the_filler_suite_is_frozen_versioned_and_hashed():
    path = suite_path()
    doc = datafiles.load(path, "depth-suite")
    suite = load_depth_suite()
    assert suite.version == doc["version"] == 1 and suite.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    text = suite.filler_text(20_000)  # longer than the essay: it repeats in numbered parts
    assert text.startswith("Part 1.") and "\n\nPart 2.\n\n" in text and len(text) <= 20_000
    assert text == suite.filler_text(20_000) and not text.endswith(" ") and suite.filler_text(0) == ""
    assert suite.filler_text(100) == suite.filler_text(20_000)[:len(suite.filler_text(100))]


def test_a_prompt_without_the_nonce_first_is_refused(tmp_path):
    doc = json.loads(suite_path().read_text())
    doc["prompt"] = "{filler}\n\nReading {nonce}."
    bad = tmp_path / "depth.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(BadInput, match="prompt"):
        load_depth_suite(bad)


@pytest.mark.parametrize("num_ctx, answer, depths", [
    (4096, 64, [0, 1024, 2048, 3840]),  # up to num_ctx, less the answer and the headroom
    (2048, 16, [0, 1024, 1792]),
    (8192, 64, [0, 1024, 2048, 4096, 7680]),
    (1024, 64, [0, 768]),
    (300, 64, [0]),
])
def test_depths_double_up_to_the_context_less_room_for_the_answer(num_ctx, answer, depths):
    assert load_depth_suite().depths(num_ctx, answer) == depths


def test_depth_runs_only_when_named():
    assert "depth" not in parse_phases("all") and parse_phases("depth,hello") == ["hello", "depth"]


def test_depth_calls_are_warm_timed_call_lines_calibrated_to_their_depth_without_a_shared_prefix(fake, tmp_path):
    state, url = fake
    result = run_suites(targets(url), options(), tmp_path, "run-1")
    assert result.status == "complete"
    calls = depth_calls(tmp_path)
    assert [(c["prompt_id"], c["run_idx"]) for c in calls] == [
        ("depth-0", 0), ("depth-0", 1), (CALIBRATION, 0), ("depth-1024", 0), ("depth-1024", 1),
        ("depth-2048", 0), ("depth-2048", 1), ("depth-3840", 0), ("depth-3840", 1)]
    assert all(c["load_state"] == "warm" and c["error"] is None and c["first_delta_ms"] is not None
               and c["server_tokens_per_sec"] and c["max_tokens"] == 32 for c in calls)
    for c in calls:
        if depth_of(c["prompt_id"]):
            assert c["prompt_tokens"] == pytest.approx(depth_of(c["prompt_id"]), rel=0.02)
    prompts = [r["messages"][0]["content"] for r in state.requests if "essay" in r["messages"][0]["content"]]
    assert len(prompts) == len(calls) and len({p.split(".", 1)[0] for p in prompts}) == len(calls)  # a nonce each
    meta = next(read_records(tmp_path / "run.jsonl"))
    assert meta["suites"]["depth"] == {"version": 1, "sha256": load_depth_suite().sha256, "mode": "depth"}


def test_a_resumed_depth_phase_sends_the_same_prompts_and_repeats_nothing(fake, tmp_path):
    state, url = fake
    run_suites(targets(url), options(phases=["depth"]), tmp_path / "whole", "run-1")
    whole = [r["messages"][0]["content"] for r in state.requests]
    ledger = tmp_path / "cut" / "run.jsonl"
    ledger.parent.mkdir()
    lines = (tmp_path / "whole" / "run.jsonl").read_text().splitlines()
    keep = next(i for i, line in enumerate(lines) if '"depth-1024"' in line)  # killed after the calibration call
    ledger.write_text("\n".join(lines[:keep]) + "\n")
    state.requests.clear()
    result = run_suites(targets(url), options(phases=["depth"]), tmp_path / "cut", "run-1", resume=True)
    assert result.status == "complete"
    assert [r["messages"][0]["content"] for r in state.requests][-6:] == whole[-6:]
    keys = [(c["prompt_id"], c["run_idx"]) for c in depth_calls(tmp_path / "cut")]
    assert len(keys) == len(set(keys)) == 9


def test_smoke_measures_depth_zero_and_the_first_depth_once(fake, tmp_path):
    _, url = fake
    run_suites(targets(url), options(phases=["depth"], smoke=True), tmp_path, "run-1")
    assert [c["prompt_id"] for c in depth_calls(tmp_path)] == ["depth-0", CALIBRATION, "depth-1024"]


def test_report_has_the_depth_rows_table_and_plot(fake, tmp_path):
    _, url = fake
    run_suites(targets(url), options(), tmp_path, "run-1")
    done = report(tmp_path)
    datafiles.validate(done.metadata, "metadata", "metadata.json")
    rows = done.metadata["depth"]
    assert [r["depth"] for r in rows] == [0, 1024, 2048, 3840] and all(r["n_calls"] == 2 for r in rows)
    assert rows[1]["prefill_tokens_per_sec_p50"] == pytest.approx(rows[1]["prompt_tokens_p50"] / 0.005, rel=0.01)
    assert rows[0]["roofline_fraction_p50"] is None  # a bring-your-own runtime: no GGUF, no roofline
    assert "## Speed at context depth" in done.markdown and "| node:llamacpp:fake | 2,048 | " in done.markdown
    assert "depth.png" in done.plots and (tmp_path / "depth.png").exists()
    assert "depth" not in report_without_depth(fake, tmp_path / "plain").metadata


def report_without_depth(fake, run_dir):
    _, url = fake
    run_suites(targets(url), options(phases=["hello"]), run_dir, "run-2")
    return report(run_dir)


def test_auto_estimates_the_depth_phase_from_the_plans_context():
    small = DepthPhase(load_depth_suite(), num_ctx=2048).estimate_seconds(50.0, 64, 1)
    large = DepthPhase(load_depth_suite(), num_ctx=16384).estimate_seconds(50.0, 64, 1)
    assert 0 < small < large
    hardware, profiles = Hardware.load(GOLDEN_DIR / "linux-vps-cpu-4c-8gb.json"), load_profiles()
    estimates = {ctx: estimate_phases(decide(hardware, profiles, {"num_ctx": ctx}), 50.0, ["hello", "depth"], 1)
                 for ctx in (2048, 8192)}
    (short,), (deep,) = ([e for e in estimates[ctx] if e.phase == "depth"] for ctx in (2048, 8192))
    assert short.calls == 1 + 2 * 3 and deep.calls == 1 + 2 * 5 and deep.seconds > short.seconds
