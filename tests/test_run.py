"""The runner against the FAKE SSE server: ledger shape, cold/warm, lanes, resume, gates, manifest."""

import json
from collections import Counter

import pytest

from orchestrator.measure import run as run_module
from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.core.ledger import call_key, read_records
from orchestrator.flows.pipeline import byo_targets, run_recorded
from orchestrator.plan.profiles import load_profiles
from orchestrator.publish.manifest import RunContext
from orchestrator.measure.run import Cell, RunOptions, Target, run_suites
from orchestrator.measure.suites import load_suite
from tests.fakes.openai_server import start_in_thread


@pytest.fixture(scope="module")
def fake_url():
    srv, state, url = start_in_thread()
    yield url
    srv.shutdown()


def targets(url, models=("fake",)):
    return byo_targets(url, list(models), "llamacpp", "node:llamacpp", "node")


def calls(run_dir):
    return [r for r in read_records(run_dir / "run.jsonl") if r["type"] == "call"]


def test_hello_is_one_first_call_and_n_warm_per_prompt_with_meta_and_end(fake_url, tmp_path):
    result = run_suites(targets(fake_url), RunOptions(phases=["hello"], runs=3), tmp_path, "run-1")
    records = list(read_records(tmp_path / "run.jsonl"))
    meta, end = records[0], records[-1]
    assert meta["type"] == "meta" and end["type"] == "end" and result.finished
    for field in ("benchmark_run_id", "harness_version", "git_sha", "git_dirty", "started_at_utc", "host",
                  "load_avg_start", "cells_planned", "suites", "env"):
        assert field in meta
    assert meta["cells_planned"] == ["node:llamacpp:fake"] and meta["suites"]["hello"]["version"] == 1
    assert "finished_at_utc" in end and "load_avg_end" in end and end["status"] == "complete"
    # A runtime we did not start cannot be made cold: its first call is process_warm, never cold.
    per_prompt = Counter((c["prompt_id"], c["load_state"]) for c in calls(tmp_path))
    assert per_prompt == {(p, s): n for p in ("P-EASY", "P-MEDIUM", "P-HARD") for s, n in (("process_warm", 1), ("warm", 3))}
    first = [c for c in calls(tmp_path) if c["load_state"] == "process_warm"]
    assert {c["cold_kind"] for c in first} == {"process_warm"} and {c["run_idx"] for c in first} == {0}
    assert all(c["format_ok"] is not None and c["error"] is None for c in calls(tmp_path))


def test_managed_target_restarts_for_each_cold_call(fake_url, tmp_path):
    restarts = []
    target = Target(Cell("node:llamacpp:fake", "llamacpp", "fake", fake_url), restart=lambda: restarts.append(1) or 1.0)
    run_suites([target], RunOptions(phases=["hello", "5q"], runs=1), tmp_path, "run-1")
    assert len(restarts) == 3
    assert {c["cold_kind"] for c in calls(tmp_path) if c["load_state"] == "cold"} == {"restart"}
    # 5q follows warm calls, so none of it is cold
    assert {c["load_state"] for c in calls(tmp_path) if c["phase"] == "5q"} == {"warm"}


def test_unreachable_cell_is_a_skipped_record_and_the_run_goes_on(fake_url, tmp_path):
    dead = byo_targets("http://127.0.0.1:9", ["ghost"], "llamacpp", "node:llamacpp", "node")
    result = run_suites(dead + targets(fake_url), RunOptions(phases=["5q"]), tmp_path, "run-1")
    skipped = [r for r in read_records(tmp_path / "run.jsonl") if r["type"] == "skipped"]
    assert [s["cell_id"] for s in skipped] == ["node:llamacpp:ghost"] and "unreachable" in skipped[0]["reason"]
    assert result.calls == 5 and {c["cell_id"] for c in calls(tmp_path)} == {"node:llamacpp:fake"}


def test_error_calls_are_recorded_and_the_run_continues(fake_url, tmp_path):
    run_suites(targets(fake_url, ("fake-500", "fake")), RunOptions(phases=["5q"]), tmp_path, "run-1")
    by_cell = Counter((c["cell_id"], c["error"] is None) for c in calls(tmp_path))
    assert by_cell == {("node:llamacpp:fake-500", False): 5, ("node:llamacpp:fake", True): 5}


def test_parallel_phases_record_lanes_and_aggregate(fake_url, tmp_path):
    run_suites(targets(fake_url, ("fake", "fake-nousage")), RunOptions(phases=["parallel_same", "parallel_mixed"]),
               tmp_path, "run-1")
    lanes = [r for r in read_records(tmp_path / "run.jsonl") if r["type"] == "lanes"]
    assert [(r["phase"], r["lanes"]) for r in lanes] == [("parallel_same", 3)] * 2 + [("parallel_mixed", 4)]
    assert all(r["aggregate_tokens_per_sec"] > 0 and r["errors"] == 0 for r in lanes)
    mixed = [c for c in calls(tmp_path) if c["phase"] == "parallel_mixed"]
    assert {c["cell_id"] for c in mixed} == {"node:llamacpp:fake", "node:llamacpp:fake-nousage"}
    assert sorted({c["lane"] for c in mixed}) == [0, 1, 2, 3]


def test_parallel_mixed_with_one_model_is_skipped_with_reason(fake_url, tmp_path):
    run_suites(targets(fake_url), RunOptions(phases=["parallel_mixed"]), tmp_path, "run-1")
    skipped = [r for r in read_records(tmp_path / "run.jsonl") if r["type"] == "skipped"]
    assert skipped[0]["phase"] == "parallel_mixed" and "two models" in skipped[0]["reason"]


def test_edge_append_grows_one_conversation(fake_url, tmp_path):
    srv, state, url = start_in_thread()
    try:
        run_suites(targets(url), RunOptions(phases=["edge_append"]), tmp_path, "run-1")
    finally:
        srv.shutdown()
    lengths = [len(body["messages"]) for body in state.requests]
    assert lengths == [2 + 2 * i for i in range(len(lengths))] and len(lengths) == 12


def test_smoke_edge_append_runs_one_turn_as_the_manifest_says(fake_url, tmp_path):
    run_recorded(targets(fake_url), RunOptions(phases=["edge_append"], smoke=True), tmp_path, "run-1", RunContext())
    assert [(c["phase"], c["prompt_id"]) for c in calls(tmp_path)] == [("edge_append", "EA-01")]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    smoke = next(d for d in manifest["deviations"] if d["knob"] == "smoke")
    assert "one item per phase" in smoke["why"] and manifest["status"] == "complete"


def test_a_run_where_every_call_fails_ends_failed_with_the_reason(fake_url, tmp_path):
    recorded = run_recorded(targets(fake_url, ("fake-500",)), RunOptions(phases=["hello", "5q"], runs=1), tmp_path,
                            "run-1", RunContext())
    end = list(read_records(tmp_path / "run.jsonl"))[-1]
    assert end["type"] == "end" and end["status"] == "failed" and recorded.status == "failed"
    assert end["status_reason"].startswith("all 11 calls failed (first error: HTTP 500")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["status_reason"] == end["status_reason"]


def test_one_success_keeps_a_run_complete_and_no_call_at_all_fails_it(fake_url, tmp_path):
    mixed = run_suites(targets(fake_url, ("fake-500", "fake")), RunOptions(phases=["5q"], smoke=True), tmp_path / "a", "run-1")
    assert mixed.errors == 1 and mixed.status == "complete"
    dead = byo_targets("http://127.0.0.1:9", ["ghost"], "llamacpp", "node:llamacpp", "node")
    nothing = run_suites(dead, RunOptions(phases=["5q"]), tmp_path / "b", "run-2")
    assert nothing.status == "failed" and nothing.failure.startswith("no call was made (node:llamacpp:ghost: unreachable")
    probe = run_suites(dead, RunOptions(phases=["5q"], probe_only=True), tmp_path / "c", "run-3")
    assert probe.status == "complete", "a probe plans no calls"


def test_interrupted_run_resumes_without_duplicates_and_continues_edge_append_mid_conversation(tmp_path):
    options = RunOptions(phases=["hello", "5q", "edge_append"], runs=2)
    before_append, turns_before = 9 + 5, 5  # hello 3 x (1 cold + 2 warm), 5q 5; then 5 of edge_append's 12 turns
    seen = []

    def interrupt_inside_edge_append(message, fraction):
        seen.append(message)
        if len(seen) == before_append + turns_before:
            raise KeyboardInterrupt

    srv, state, url = start_in_thread()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_suites(targets(url), options, tmp_path, "run-1", progress=interrupt_inside_edge_append)
        with open(tmp_path / "run.jsonl", "ab") as fh:
            fh.write(b'{"type": "call", "cell_id": "torn')  # a write cut short by kill -9
        assert [c["phase"] for c in calls(tmp_path)].count("edge_append") == turns_before
        requests_before = len(state.requests)
        result = run_suites(targets(url), RunOptions(phases=["hello"]), tmp_path, resume=True)
        resumed_requests = state.requests[requests_before:]
    finally:
        srv.shutdown()
    records = list(read_records(tmp_path / "run.jsonl"))
    keys = [call_key(c) for c in calls(tmp_path)]
    assert len(keys) == len(set(keys)) == 9 + 5 + 12
    assert result.run_id == "run-1" and [r["type"] for r in records].count("resume") == 1
    assert records[-1]["type"] == "end" and (tmp_path / "run.jsonl").read_bytes().endswith(b"\n")
    # The resume ran only edge_append's remaining turns, in order...
    prompts = {item.id: item.prompt for item in load_suite("edge_append").items}
    resumed = calls(tmp_path)[before_append + turns_before:]
    assert [(c["phase"], c["prompt_id"]) for c in resumed] == [("edge_append", i) for i in list(prompts)[turns_before:]]
    assert len(resumed_requests) == len(resumed)  # no warm-up or repeated turn reached the server
    # ...each one carrying the whole conversation so far: the saved turns' prompts and answers, then the new ones.
    texts = {tuple(r["key"]): r["text"] for r in read_records(tmp_path / "responses.jsonl")}
    conversation = []
    for turn in [c for c in calls(tmp_path) if c["phase"] == "edge_append"]:
        conversation += [{"role": "user", "content": prompts[turn["prompt_id"]]},
                         {"role": "assistant", "content": texts[call_key(turn)]}]
    for turn, body in enumerate(resumed_requests, start=turns_before):
        history = [m for m in body["messages"] if m["role"] != "system"]
        assert history == conversation[:2 * turn] + [conversation[2 * turn]]


def test_new_run_refuses_a_folder_that_holds_one(fake_url, tmp_path):
    run_suites(targets(fake_url), RunOptions(phases=["5q"], smoke=True), tmp_path, "run-1")
    with pytest.raises(BadInput, match="--resume run-1"):
        run_suites(targets(fake_url), RunOptions(phases=["5q"]), tmp_path, "run-2")


def test_load_gate_refuses_unless_forced_and_records_it(fake_url, tmp_path, monkeypatch):
    monkeypatch.setattr(run_module, "host_load", lambda: (6.5, 5.0, 4.0))
    with pytest.raises(WeeyugaError, match="load average 6.50 is above 4.0.*--force-load"):
        run_suites(targets(fake_url), RunOptions(phases=["5q"]), tmp_path / "a", "run-1")
    run_suites(targets(fake_url), RunOptions(phases=["5q"], smoke=True, force_load=True), tmp_path / "b", "run-2")
    meta = next(read_records(tmp_path / "b" / "run.jsonl"))
    assert meta["gates"]["force_load"] is True and meta["load_avg_start"][0] == 6.5


def test_publication_gate_refuses_dirty_checkout(fake_url, tmp_path, monkeypatch):
    monkeypatch.setattr(run_module, "git_state", lambda: ("abc", True, ["orchestrator/run.py"]))
    with pytest.raises(WeeyugaError, match="modified weeyuga checkout.*--allow-dirty"):
        run_suites(targets(fake_url), RunOptions(phases=["5q"], for_publication=True), tmp_path, "run-1")
    run_suites(targets(fake_url), RunOptions(phases=["5q"], smoke=True, for_publication=True, allow_dirty=True),
               tmp_path / "ok", "run-2")
    meta = next(read_records(tmp_path / "ok" / "run.jsonl"))
    assert meta["git_dirty"] is True and meta["gates"]["allow_dirty"] is True


def test_manifest_records_overrides_and_skips(fake_url, tmp_path):
    profiles = load_profiles()
    options = RunOptions(phases=["5q"], num_ctx=2048, canonical_overrides={"num_ctx": {"canonical": 4096, "value": 2048}})
    run_recorded(targets(fake_url), options, tmp_path, "run-1", RunContext(canonical=profiles.canonical))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["run_id"] == "run-1"
    assert manifest["canonical_options_overrides"] == {"num_ctx": {"canonical": 4096, "value": 2048}}
    assert {"knob": "num_ctx", "value": 2048, "replaced": 4096, "source": "user", "kind": "canonical_option"} in manifest["deviations"]
    assert {p["phase"] for p in manifest["phases_skipped"]} == {"hello", "prompt_cache", "20q", "parallel_same", "parallel_mixed",
                                                                 "edge_append", "edge_suite"}
    assert calls(tmp_path)[0]["max_tokens"] == 32


def test_probe_mode_checks_health_and_makes_no_calls(fake_url, tmp_path):
    result = run_suites(targets(fake_url), RunOptions(phases=["hello"], probe_only=True), tmp_path, "run-1")
    assert result.calls == 0 and result.finished


def test_a_phase_past_its_seconds_stops_after_its_current_unit_and_says_so(fake_url, tmp_path):
    ticks = iter(range(0, 10**6, 10))  # every clock read is 10 s later
    options = RunOptions(phases=["5q", "hello"], runs=1, phase_seconds={"5q": 15.0})
    result = run_suites(targets(fake_url), options, tmp_path, "run-1", clock=lambda: float(next(ticks)))
    made = Counter(c["phase"] for c in calls(tmp_path))
    assert result.status == "complete" and made["hello"] == 6 and 1 <= made["5q"] < 5
    (skip,) = [r for r in read_records(tmp_path / "run.jsonl") if r["type"] == "skipped"]
    assert skip["phase"] == "5q" and skip["reason"].startswith(f"time budget: stopped after {made['5q']} of 5 units")
    assert list(read_records(tmp_path / "run.jsonl"))[0]["options"]["phase_seconds"] == {"5q": 15.0}


def test_a_phase_that_overran_takes_its_overrun_out_of_the_next_phases_slot(tmp_path):
    """phase_seconds is a schedule: hello's slot ends at 1 s, 5q's at 1 + 250 s from the first phase's start,
    however long hello's one unit took; each phase still runs at least one unit."""
    srv, state, url = start_in_thread()
    try:
        def per_request():  # each request the fake server has answered is 100 s of clock
            return lambda: 100.0 * len(state.requests)

        options = RunOptions(phases=["hello", "5q"], runs=1, phase_seconds={"hello": 1.0, "5q": 250.0})
        run_suites(targets(url), options, tmp_path / "both", "run-1", clock=per_request())
        alone = RunOptions(phases=["5q"], runs=1, phase_seconds={"5q": 251.0})
        run_suites(targets(url), alone, tmp_path / "alone", "run-2", clock=per_request())
    finally:
        srv.shutdown()
    made, made_alone = (Counter(c["phase"] for c in calls(tmp_path / d)) for d in ("both", "alone"))
    assert made["hello"] == 2 and made["5q"] < made_alone["5q"]  # hello's one unit: a cold and a warm call
