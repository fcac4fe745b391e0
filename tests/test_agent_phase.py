"""The agent phase on the spine: the FAKE OpenAI server's scripted tool-call turns drive real
sandboxes and the real 3-run gate; every model call is a `call` line, agent_pass/agent_run are
typed ledger lines, resume after kill -9 reruns only the half-done task with the next attempt."""

import json

import pytest

from orchestrator.core import datafiles
from orchestrator.cli import main
from orchestrator.publish.compare import compare, render_markdown
from orchestrator.core.ledger import read_records
from orchestrator.core.paths import REPO_ROOT
from orchestrator.measure.phases import load_phase
from orchestrator.flows.pipeline import byo_targets
from orchestrator.measure.run import RunOptions, run_suites
from tests.fakes.agent_model import solver_turns
from tests.fakes.openai_server import start_in_thread

TIGHT = {"passes": 2, "steps_per_pass": 8, "max_tokens": 64, "command_timeout_s": 60}


def agent_options(tasks, workflow="ralph", **budgets):
    return RunOptions(phases=["agent"], agent={"workflow": workflow, "tasks": list(tasks), "budgets": {**TIGHT, **budgets}})


def targets(url, model="fake-tools"):
    return byo_targets(url, [model], "llamacpp", "node:llamacpp", "node")


def lines(run_dir, kind=None):
    return [r for r in read_records(run_dir / "run.jsonl") if kind is None or r["type"] == kind]


@pytest.fixture
def fake():
    srv, state, url = start_in_thread()
    yield state, url
    srv.shutdown()


def test_scripted_solver_completes_through_ctx_chat_with_calls_passes_and_run_in_one_ledger(fake, tmp_path):
    state, url = fake
    state.tool_turns = solver_turns("py-slugify")
    result = run_suites(targets(url), agent_options(["py-slugify"]), tmp_path, "run-1")
    assert result.status == "complete"
    calls = lines(tmp_path, "call")
    assert [(c["phase"], c["prompt_id"], c["step"], c["attempt"]) for c in calls] == \
        [("agent", "py-slugify", step, 1) for step in range(1, len(solver_turns("py-slugify")) + 1)]
    assert all(c["finish_reason"] == "tool_calls" and c["error"] is None for c in calls)
    assert {t["function"]["name"] for t in state.requests[0]["tools"]} >= {"read_file", "write_file", "done"}
    assert state.requests[1]["messages"][-1]["role"] == "tool"  # the assembled tool call went back with its result
    (run,) = lines(tmp_path, "agent_run")
    assert (run["cell_id"], run["task"], run["attempt"], run["outcome"], run["completed_at"]) == \
        ("node:llamacpp:fake-tools", "py-slugify", 1, "completed", 1)
    assert run["model_calls"] == len(calls) and run["tool_counts"]["done"] == 1
    (one_pass,) = lines(tmp_path, "agent_pass")
    assert one_pass["gate_passed"] and one_pass["ended"] == "completed"
    meta = lines(tmp_path, "meta")[0]
    assert meta["suites"]["agent"]["mode"] == "agent" and meta["options"]["agent"]["tasks"] == ["py-slugify"]


def test_kill_9_mid_task_resumes_only_that_task_from_its_seed_with_the_next_attempt(fake, tmp_path):
    state, url = fake
    state.tool_turns = solver_turns("py-median-fix") + solver_turns("py-slugify")
    run_suites(targets(url), agent_options(["py-slugify", "py-median-fix"]), tmp_path, "run-1")
    ledger = (tmp_path / "run.jsonl").read_bytes().splitlines(keepends=True)
    # kill -9 after py-slugify's second call: its later lines never reached the disk, the last one torn
    cut = [i for i, raw in enumerate(ledger) if b'"prompt_id": "py-slugify"' in raw][1]
    (tmp_path / "run.jsonl").write_bytes(b"".join(ledger[:cut + 1]) + b'{"type": "agent_pass", "cell')
    state.tool_turns = solver_turns("py-slugify")
    requests_before = len(state.requests)
    result = run_suites(targets(url), RunOptions(phases=["hello"]), tmp_path, resume=True)
    assert result.status == "complete"
    runs = lines(tmp_path, "agent_run")
    assert [(r["task"], r["attempt"], r["outcome"]) for r in runs] == \
        [("py-median-fix", 1, "completed"), ("py-slugify", 2, "completed")]
    resumed = [c for c in lines(tmp_path, "call") if c["attempt"] == 2]
    assert [c["step"] for c in resumed] == list(range(1, len(solver_turns("py-slugify")) + 1))
    assert len(state.requests) - requests_before == len(resumed)  # py-median-fix was not asked again


def test_interrupt_records_interrupted_and_the_resume_starts_attempt_2(fake, tmp_path):
    state, url = fake
    state.tool_turns = solver_turns("py-slugify")

    def stop_after_two_calls(message, fraction, seen=[]):
        seen.append(message)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_suites(targets(url), agent_options(["py-slugify"]), tmp_path, "run-1", progress=stop_after_two_calls)
    assert [r["outcome"] for r in lines(tmp_path, "agent_run")] == ["interrupted"]
    state.tool_turns = solver_turns("py-slugify")
    run_suites(targets(url), RunOptions(phases=["hello"]), tmp_path, resume=True)
    assert [(r["attempt"], r["outcome"]) for r in lines(tmp_path, "agent_run")] == [(1, "interrupted"), (2, "completed")]


def test_an_endpoint_that_always_fails_is_a_fault_and_the_run_failed(fake, tmp_path):
    _, url = fake
    result = run_suites(targets(url, "fake-500"), agent_options(["py-slugify"], max_stale=1), tmp_path, "run-1")
    (run,) = lines(tmp_path, "agent_run")
    assert run["outcome"] == "fault" and run["model_call_errors"] == run["model_calls"] > 0
    assert result.status == "failed" and "HTTP 500" in result.failure


def test_a_model_that_answers_without_tools_is_an_honest_outcome_in_a_complete_run(fake, tmp_path):
    _, url = fake
    result = run_suites(targets(url, "fake"), agent_options(["py-slugify"], workflow="two-try"), tmp_path, "run-1")
    (run,) = lines(tmp_path, "agent_run")
    assert run["outcome"] == "budget" and (run["pass_at_1"], run["pass_at_2"]) == (False, False)
    assert result.status == "complete"  # the run worked; the model did not solve the task


def test_the_auto_task_set_is_small_keyed_per_task_and_estimated_from_the_decode_rate():
    phase = load_phase("agent")
    units = phase.units(["n:e:m"], RunOptions(phases=["agent"]))
    assert [u.keys[0].prompt_id for u in units] == ["py-median-fix", "py-slugify"]
    assert [k.step for k in units[0].keys] == list(range(1, 2 * 8 + 1)) and {k.attempt for k in units[0].keys} == {1}
    assert units == phase.units(["n:e:m"], RunOptions(phases=["agent"])), "deterministic"
    assert phase.estimate_seconds(50.0, 2048, 5) > phase.estimate_seconds(100.0, 2048, 5) > 0
    assert phase.estimate_seconds(50.0, 2048, 5) < 15 * 60


HARDWARE = REPO_ROOT / "tests" / "fixtures" / "hardware" / "mac-m1-8gb.json"


def agent_cli(url, tmp_path, *extra):
    return main(["agent", "run", "--target-url", url, "--engine", "openai", "--models", "fake-tools",
                 "--hardware", str(HARDWARE), "--submissions-dir", str(tmp_path), "--submitter-handle", "tester",
                 "--device-tag", "test-box", "--force-load", *extra])


def test_cli_agent_run_writes_the_run_folder_report_and_exits_0_whatever_the_model_did(fake, tmp_path, capsys):
    state, url = fake
    state.tool_turns = [[], []] + solver_turns("py-slugify")  # py-impossible first: two passes that change nothing
    assert agent_cli(url, tmp_path, "--tasks", "py-slugify,py-impossible", "--passes", "2", "--steps-per-pass", "6",
                     "--max-tokens", "64", "--command-timeout", "60") == 0
    (run_dir,) = [p.parent for p in tmp_path.rglob("run.jsonl")]
    meta = lines(run_dir, "meta")[0]
    assert meta["options"]["agent"] == {"workflow": "ralph", "tasks": ["py-slugify", "py-impossible"], "languages": [],
                                        "budgets": {"passes": 2, "steps_per_pass": 6, "max_tokens": 64, "command_timeout_s": 60}}
    assert [(r["task"], r["outcome"]) for r in lines(run_dir, "agent_run")] == \
        [("py-impossible", "stagnated"), ("py-slugify", "completed")]
    assert main(["report", str(run_dir), "--no-plots"]) == 0
    metadata = json.loads((run_dir / "metadata.json").read_text())
    datafiles.validate(metadata, "metadata", "metadata.json")
    (cell,) = metadata["agent"]
    assert [(t["task"], t["outcome"]) for t in cell["tasks"]] == [("py-impossible", "stagnated"), ("py-slugify", "completed")]
    assert cell["pass_rates"]["python"]["completion_rate"] == 1.0 and cell["pass_rates"]["python"]["controls"] == 1
    text = (run_dir / "run.md").read_text()
    assert "## Agent tasks" in text and "cumulative" in text and "| py-slugify | python | completed |" in text
    assert "## Speed per cell and phase" not in text  # no speed phase ran


def test_cli_agent_run_refuses_an_unknown_task_in_one_line(fake, tmp_path, capsys):
    _, url = fake
    assert agent_cli(url, tmp_path, "--tasks", "no-such-task") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no agent task named no-such-task" in err


def test_cli_agent_run_exits_1_when_the_endpoint_fails_every_call(fake, tmp_path):
    _, url = fake
    args = ["agent", "run", "--target-url", url, "--engine", "openai", "--models", "fake-500", "--hardware", str(HARDWARE),
            "--submissions-dir", str(tmp_path), "--submitter-handle", "tester", "--device-tag", "test-box", "--force-load",
            "--tasks", "py-slugify", "--passes", "1"]
    assert main(args) == 1
    (run_dir,) = [p.parent for p in tmp_path.rglob("run.jsonl")]
    assert [r["outcome"] for r in lines(run_dir, "agent_run")] == ["fault"]


def test_compare_flags_a_task_that_stopped_completing():
    def doc(run_id, outcome):
        return {"run_id": run_id, "cells": [], "agent": [{"cell_id": "box:llamacpp:m", "workflow": "ralph", "pass_rates": {},
                "tasks": [{"task": "py-slugify", "outcome": outcome}, {"task": "py-impossible", "outcome": "stagnated"}]}]}
    result = compare([doc("a", "completed")], doc("b", "budget"))
    assert result.tasks_stopped_completing == ["py-slugify (llamacpp:m, ralph): completed in a, now budget"]
    assert result.regressions == 1 and "stopped completing" in render_markdown(result)
    assert compare([doc("a", "completed")], doc("b", "completed")).regressions == 0
