"""The gate and the tools' confinement, on the real ProcessSandbox."""

from __future__ import annotations

import json

import pytest

from orchestrator.evaluate.agent import load_tasks
from orchestrator.evaluate.sandbox.process import ProcessSandbox
from orchestrator.evaluate.agent.gate import junit_counts, run_gate, tap_counts
from orchestrator.evaluate.agent.tools import Toolbox

TASKS = {task.id: task for task in load_tasks()}


def sandboxes(factory):
    """Yields prepare(task_id) -> a sandbox from `factory` holding that task; destroys them all after."""
    made = []

    def prepare(task_id: str):
        sandbox = factory()
        sandbox.prepare(TASKS[task_id])
        made.append(sandbox)
        return sandbox

    yield prepare
    for sandbox in made:
        sandbox.destroy()


@pytest.fixture
def sandbox_for():
    yield from sandboxes(ProcessSandbox)


def test_junit_counts_passes_failures_errors_and_skips():
    xml = b"""<testsuites><testsuite errors="1">
      <testcase name="a"/><testcase name="b"><failure message="x"/></testcase>
      <testcase name="c"><skipped/></testcase><testcase name="d"><error/></testcase></testsuite></testsuites>"""
    counts = junit_counts(xml)
    assert (counts.passed, counts.failed, counts.problem) == (1, 2, "")
    assert junit_counts(b"<testsuites><testcase").problem.startswith("the JUnit report is not valid XML")


def test_tap_counts_need_a_plan_and_every_result():
    assert tap_counts("1..2\nok 1 - a\nok 2 - b\n").passed == 2
    assert tap_counts("1..2\nok 1 - a\nnot ok 2 - b\n# why\n").failed == 1
    assert "stopped early" in tap_counts("1..3\nok 1 - a\n").problem
    assert "no TAP plan" in tap_counts("ok 1 - a\n").problem


@pytest.mark.parametrize("task_id", sorted(TASKS))
def test_every_seed_fails_the_gate(task_id, sandbox_for):
    """Half of fairness (the solver test in test_agent_loop.py is the other half): an untouched
    seed never passes."""
    gate = run_gate(sandbox_for(task_id), TASKS[task_id], timeout_s=60)
    assert not gate.passed and len(gate.runs) == 1  # stops at the first failing run


@pytest.mark.parametrize("task_id, path, cheat", [
    ("js-roman", "roman.js", "process.exit(0);\nmodule.exports = { toRoman: () => 'I' };\n"),
    ("cpp-gcd", "src/numeric.cpp", '#include "numeric.hpp"\n#include <cstdlib>\n'
                                   "long long gcd(long long a, long long b) { std::exit(0); }\n"
                                   "long long lcm(long long a, long long b) { std::exit(0); }\n"),
])
def test_exiting_zero_before_the_tests_finish_is_rejected(task_id, path, cheat, sandbox_for):
    sandbox = sandbox_for(task_id)
    sandbox.write_file(path, cheat.encode())
    gate = run_gate(sandbox, TASKS[task_id], timeout_s=60)
    assert not gate.passed
    assert gate.runs[0].reason.startswith(("0 test(s) passed", "1 test(s) passed", "TAP planned"))


def test_tampered_tests_are_replaced_by_the_pristine_ones_before_verification(sandbox_for):
    sandbox = sandbox_for("py-slugify")
    sandbox.write_file("tests/test_slug.py", b"def test_ok():\n    assert True\n")  # behind the tools' back
    gate = run_gate(sandbox, TASKS["py-slugify"], timeout_s=60)
    assert not gate.passed and gate.runs[0].tests_failed == 5


def call(toolbox: Toolbox, name: str, **arguments):
    return toolbox.call(name, json.dumps(arguments))


def test_file_tools_refuse_escapes_tests_and_foreign_files(sandbox_for, tmp_path):
    sandbox = sandbox_for("py-inventory")
    toolbox = Toolbox(sandbox, TASKS["py-inventory"], 30, gated_done=True)
    outside = tmp_path / "secret.txt"
    outside.write_text("do not read")
    (sandbox.workspace / "link.txt").symlink_to(outside)
    (sandbox.workspace / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    refusals = {
        "parent": call(toolbox, "read_file", path="../scratch/home"),
        "absolute": call(toolbox, "read_file", path=str(outside)),
        "symlink file": call(toolbox, "read_file", path="link.txt"),
        "symlink folder": call(toolbox, "list_dir", path="linkdir"),
        "write through symlink": call(toolbox, "write_file", path="linkdir/x.py", content="x"),
        "test file": call(toolbox, "write_file", path="tests/test_inventory.py", content="x"),
        "test edit": call(toolbox, "edit_file", path="tests/test_inventory.py", old_string="import", new_string="x"),
        "conftest": call(toolbox, "write_file", path="conftest.py", content="x"),
        "not editable": call(toolbox, "write_file", path="inventory/sub/deep.py", content="x"),
    }
    for what, outcome in refusals.items():
        assert outcome.error and outcome.text.startswith("ERROR:"), what
    assert "do not read" not in "".join(o.text for o in refusals.values())
    assert "tests are the specification" in refusals["test file"].text
    assert "inventory/*.py" in refusals["not editable"].text
    assert toolbox.stats.errors == len(refusals)
    assert outside.read_text() == "do not read" and not (tmp_path / "x.py").exists()


def test_file_tools_do_their_work(sandbox_for):
    sandbox = sandbox_for("py-median-fix")
    toolbox = Toolbox(sandbox, TASKS["py-median-fix"], 30, gated_done=True)
    listing = call(toolbox, "list_dir", path=".").text
    assert "stats.py (" in listing and "tests/" in listing
    assert "values.sort()" in call(toolbox, "read_file", path="stats.py").text
    assert call(toolbox, "edit_file", path="stats.py", old_string="values", new_string="xs").text.startswith("ERROR: old_string occurs")
    assert not call(toolbox, "edit_file", path="stats.py", old_string="values.sort()", new_string="values = sorted(values)").error
    assert not call(toolbox, "write_file", path="PROGRESS.md", content="notes").error
    assert call(toolbox, "read_file", path="stats.py").text.count("sorted(values)") == 1
    assert toolbox.stats.bytes_read > 0 and toolbox.stats.errors == 1
    assert call(toolbox, "write_file", path="stats.py", content=None).error
    assert toolbox.call("read_file", "{not json").text.startswith("ERROR: arguments are not valid JSON")
    assert call(toolbox, "done", summary="x").text.startswith("Verification FAILED")
