"""The ralph and two-try loops against a scripted model, through the real ProcessSandbox and gate."""

from __future__ import annotations

import json

import pytest

from orchestrator.core import datafiles
from orchestrator.evaluate.agent import Budgets, load_tasks, resume_state, run_agent_tasks
from orchestrator.evaluate.sandbox.process import ProcessSandbox
from orchestrator.evaluate.agent.loop import fingerprint
from tests.fakes.agent_model import FAIL, ScriptedModel, solution_files, solver_turns

TASKS = {task.id: task for task in load_tasks()}
BUDGETS = Budgets(context_tokens=100_000, steps_per_pass=8, passes=5, max_tokens=256, command_timeout_s=60, max_stale=2)
SLUG = solution_files("py-slugify")["slug.py"]
NO_TOOLCHAIN_CHECK = {"toolchain_check": lambda language: None}


def run(task_id: str, turns: list, workflow: str = "ralph", budgets: Budgets = BUDGETS, **kwargs):
    records: list[dict] = []
    model = kwargs.pop("model", None) or ScriptedModel(turns)
    summary = run_agent_tasks([TASKS[task_id]], model, workflow, budgets, ProcessSandbox, on_record=records.append,
                              sampling={"temperature": 0.0}, **NO_TOOLCHAIN_CHECK, **kwargs)
    for record in records:
        datafiles.validate(record, "agent-record", f"{record['record']} record")
    final = [r for r in records if r["record"] == "agent_run"]
    assert len(final) == 1
    return final[0], [r for r in records if r["record"] == "agent_pass"], model, summary


def test_solve_and_done_completes_in_one_pass():
    final, passes, model, summary = run("py-slugify", [[("write_file", {"path": "slug.py", "content": SLUG})],
                                                       [("done", {"summary": "ok"})]])
    assert (final["outcome"], final["completed_at"], final["passes"]) == ("completed", 1, 1)
    assert passes[0]["ended"] == "completed" and passes[0]["gate_passed"] and passes[0]["tests_passed"] == 5
    assert final["tool_counts"] == {"write_file": 1, "done": 1} and final["model_calls"] == 2
    assert final["sandbox"] == "process" and isinstance(final["net_isolated"], bool)
    assert summary.results[0].outcome == "completed" and final["pass_at_1"] is None
    assert model.tool_names[0] == ["list_dir", "read_file", "write_file", "edit_file", "run_tests", "done"]


def test_forgetting_done_is_completed_by_the_end_of_pass_probe():
    final, passes, _, _ = run("py-slugify", [[("write_file", {"path": "slug.py", "content": SLUG})], "All finished."])
    assert final["outcome"] == "completed" and "end-of-pass probe" in final["reason"]
    assert passes[0]["ended"] == "model_stop" and passes[0]["gate_by_probe"] and passes[0]["gate_passed"]


def test_done_without_solving_is_refused_and_the_task_stagnates():
    final, passes, model, _ = run("py-slugify", [[("done", {"summary": "trust me"})]] * 3)
    assert final["outcome"] == "stagnated"
    assert passes[0]["ended"] == "done_loop"  # three failed dones with no edit between them
    assert passes[0]["gate_ran"] and not passes[0]["gate_passed"]
    tool_reply = model.requests[1][-1]
    assert tool_reply["role"] == "tool" and tool_reply["content"].startswith("Verification FAILED")


def test_writing_a_test_file_is_refused_and_cannot_complete():
    cheat = "def test_nothing():\n    assert True\n"
    final, _, model, _ = run("py-slugify", [[("write_file", {"path": "tests/test_slug.py", "content": cheat})],
                                            [("done", {"summary": "ok"})]])
    assert final["outcome"] != "completed" and final["tool_errors"] >= 1
    assert "tests are the specification" in model.requests[1][-1]["content"]


@pytest.mark.parametrize("path", ["../escape.py", "/tmp/escape.py", "sub/../../escape.py"])
def test_escaping_the_workspace_is_refused(path, tmp_path):
    final, _, model, _ = run("py-slugify", [[("write_file", {"path": path, "content": "x = 1\n"})]])
    assert model.requests[1][-1]["content"].startswith("ERROR:")
    assert final["tool_errors"] == 1


def test_tool_arguments_sent_as_an_object_are_accepted():
    class ObjectArguments(ScriptedModel):
        def __call__(self, messages, tools, max_tokens):
            message, finish, usage, error = super().__call__(messages, tools, max_tokens)
            for call in (message or {}).get("tool_calls") or []:
                call["function"]["arguments"] = json.loads(call["function"]["arguments"])
            return message, finish, usage, error

    final, _, _, _ = run("py-slugify", [], model=ObjectArguments([[("write_file", {"path": "slug.py", "content": SLUG})],
                                                                  [("done", {"summary": "ok"})]]))
    assert final["outcome"] == "completed" and final["tool_errors"] == 0


def test_an_unknown_tool_gets_the_list_of_valid_tools():
    _, _, model, _ = run("py-slugify", [[("shell", {"command": "ls"})]])
    reply = model.requests[1][-1]["content"]
    assert reply.startswith("ERROR: unknown tool 'shell'") and "write_file" in reply and "done" in reply


def test_os_exit_in_the_solution_never_completes():
    cheat = "import os\nos._exit(0)\n\ndef slugify(title):\n    return ''\n"
    final, passes, _, _ = run("py-slugify", [[("write_file", {"path": "slug.py", "content": cheat})],
                                             [("done", {"summary": "ok"})]] * 3)
    assert final["outcome"] in ("stagnated", "budget")
    assert passes[0]["gate_ran"] and not passes[0]["gate_passed"] and "no report" in passes[0]["gate_reason"]


def test_a_flaky_solution_fails_the_three_run_gate():
    # Passes on odd runs, fails on even ones: a counter file in the workspace flips each run.
    flaky = ("import pathlib, re\n_state = pathlib.Path('flip.txt')\n_n = int(_state.read_text()) if _state.exists() else 0\n"
             "_state.write_text(str(_n + 1))\n\ndef slugify(title):\n"
             "    slug = re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')\n    return slug if _n % 2 == 0 else slug + '!'\n")
    final, passes, _, _ = run("py-slugify", [[("write_file", {"path": "slug.py", "content": flaky})],
                                             [("done", {"summary": "ok"})]])
    assert final["outcome"] != "completed"
    assert passes[0]["gate_reason"].startswith("run 2 of 3")


def test_progress_notes_and_cache_churn_without_progress_stagnate():
    churn = []
    for i in range(5):  # each pass: rewrite the notes, run the tests (cache churn), stop
        churn += [[("write_file", {"path": "PROGRESS.md", "content": f"pass {i}: still thinking"}), ("run_tests", {})], "stop"]
    final, passes, _, _ = run("py-slugify", churn)
    assert final["outcome"] == "stagnated" and final["passes"] == 2
    assert [p["workspace_changed"] for p in passes] == [False, False]
    assert final["tool_counts"]["run_tests"] == 2


def test_an_endpoint_that_always_fails_is_a_fault():
    final, passes, _, _ = run("py-slugify", [FAIL] * 10)
    assert final["outcome"] == "fault" and "connection refused" in final["reason"]
    assert final["model_call_errors"] == final["model_calls"] == 2
    assert [p["ended"] for p in passes] == ["error", "error"]


def test_the_unsatisfiable_task_stagnates():
    best = solution_files("py-impossible")["parity.py"]
    turns = [[("write_file", {"path": "parity.py", "content": best})], [("done", {"summary": "ok"})]] * 6
    final, passes, _, _ = run("py-impossible", turns)
    assert final["outcome"] == "stagnated"
    assert not any(p["gate_passed"] for p in passes)


def test_reasoning_is_never_sent_back():
    model = ScriptedModel([[("list_dir", {"path": "."})], "stop"], reasoning="SECRET-CHAIN-OF-THOUGHT")
    run("py-slugify", [], model=model)
    later = str(model.requests[1])
    assert "SECRET-CHAIN-OF-THOUGHT" not in later and "reasoning_content" not in later


def test_a_pass_ends_at_the_step_budget_and_context_budget():
    budgets = Budgets(context_tokens=100_000, steps_per_pass=2, passes=1, max_tokens=64, command_timeout_s=30, max_stale=2)
    final, passes, _, _ = run("py-slugify", [[("list_dir", {"path": "."})]] * 4, budgets=budgets)
    assert passes[0]["ended"] == "max_steps" and final["outcome"] == "budget"
    tight = Budgets(context_tokens=300, steps_per_pass=9, passes=1, max_tokens=64, command_timeout_s=30, max_stale=2)
    model = ScriptedModel([[("list_dir", {"path": "."})]] * 4, usage_tokens=400)
    _, passes, _, _ = run("py-slugify", [], budgets=tight, model=model)
    assert passes[0]["ended"] == "context"


def test_two_try_counts_pass_at_1_and_cumulative_pass_at_2():
    broken = "def slugify(title):\n    return title.lower()\n"
    turns = [[("write_file", {"path": "slug.py", "content": broken})], [("done", {"summary": "try 1"})],
             [("write_file", {"path": "slug.py", "content": SLUG})], [("done", {"summary": "try 2"})]]
    final, passes, model, _ = run("py-slugify", turns, workflow="two-try")
    assert (final["outcome"], final["completed_at"], final["pass_at_1"], final["pass_at_2"]) == ("completed", 2, False, True)
    assert "run_tests" not in model.tool_names[0]
    retry = model.requests[2][-1]
    assert retry["role"] == "user" and "do not try to change them" in retry["content"] and "test_slug.py" in retry["content"]
    assert "/weeyuga-agent-" not in retry["content"]  # absolute sandbox paths are cleaned out
    assert [p["ended"] for p in passes] == ["done", "done"]

    first, _, _, _ = run("py-slugify", [[("write_file", {"path": "slug.py", "content": SLUG})]], workflow="two-try")
    assert (first["completed_at"], first["pass_at_1"], first["pass_at_2"]) == (1, True, True)


def test_two_try_never_completes_the_unsatisfiable_task():
    final, _, _, _ = run("py-impossible", [[("write_file", {"path": "parity.py", "content": "def parity(n):\n    return 'odd'\n"})]],
                         workflow="two-try")
    assert final["outcome"] == "budget" and (final["pass_at_1"], final["pass_at_2"]) == (False, False)


def test_missing_toolchain_is_skipped_with_the_reason():
    records: list[dict] = []
    summary = run_agent_tasks([TASKS["cpp-gcd"]], ScriptedModel([]), "ralph", BUDGETS, ProcessSandbox, on_record=records.append,
                              toolchain_check=lambda language: "g++ not found on PATH")
    assert summary.results[0].outcome == "skipped"
    assert records[0]["reason"] == "toolchain missing: g++ not found on PATH" and records[0]["net_isolated"] is None
    datafiles.validate(records[0], "agent-record", "skipped")


def test_resume_skips_finished_tasks_and_restarts_half_done_ones_with_the_next_attempt():
    ledger = [{"record": "agent_run", "task": "js-roman", "attempt": 1, "outcome": "stagnated"},
              {"record": "agent_pass", "task": "py-slugify", "attempt": 2}]
    finished, attempts = resume_state(ledger)
    assert finished == {"js-roman"} and attempts == {"js-roman": 1, "py-slugify": 2}
    records: list[dict] = []
    summary = run_agent_tasks([TASKS["js-roman"], TASKS["py-slugify"]], ScriptedModel([]), "ralph", BUDGETS,
                              ProcessSandbox, on_record=records.append, completed_tasks=finished, previous_attempts=attempts,
                              **NO_TOOLCHAIN_CHECK)
    assert summary.already_done == ("js-roman",)
    assert {r["attempt"] for r in records} == {3} and {r["task"] for r in records} == {"py-slugify"}


def test_an_operator_stop_ends_the_task_interrupted():
    calls = iter([False, False, True])
    final, _, _, summary = run("py-slugify", [[("list_dir", {"path": "."})]] * 5, should_stop=lambda: next(calls, True))
    assert final["outcome"] == "interrupted" and summary.interrupted


def test_fingerprint_ignores_progress_notes_and_caches(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    before = fingerprint(tmp_path)
    for cache in ("__pycache__", ".pytest_cache", "node_modules", "build"):
        (tmp_path / cache).mkdir()
        (tmp_path / cache / "junk").write_text("churn")
    (tmp_path / "PROGRESS.md").write_text("notes")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "PROGRESS.md").write_text("notes")
    assert fingerprint(tmp_path) == before
    (tmp_path / "a.py").write_text("x = 2\n")
    assert fingerprint(tmp_path) != before


@pytest.mark.parametrize("task_id", sorted(TASKS))
def test_the_scripted_solver_completes_every_satisfiable_task(task_id):
    """The reference solution, written through the tools, passes the real gate in the real sandbox."""
    final, passes, _, _ = run(task_id, solver_turns(task_id))
    if TASKS[task_id].kind == "unsatisfiable":
        assert final["outcome"] == "stagnated"
    else:
        assert final["outcome"] == "completed", final["reason"]
        assert passes[-1]["tests_passed"] == TASKS[task_id].expected_tests
