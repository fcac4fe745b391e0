"""The gate: the only way an agent task completes (the `done` tool and the end-of-pass probe).

Before every run the pristine tests are copied back in; the task's tests then run THREE times
and each run's structured output is parsed (JUnit XML from pytest and node's test runner, TAP
from the C++ harness). A run passes only when its command exited 0, the report shows exactly the
task's `expected_tests` passed, and nothing failed or errored. Exit codes alone never count, so
a solution that exits 0 before the tests run (`os._exit(0)`, `process.exit(0)`) fails, and so
does one that passes one time in two.

Known hole (as in the Go harness): code under test runs in the test process and could write a
forged report before exiting. Acceptable for the non-adversarial models this measures.
"""

from __future__ import annotations

import re
import shutil
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

from orchestrator.evaluate.sandbox.base import CommandResult, Sandbox
from orchestrator.evaluate.agent.tasks import AgentTask

GATE_RUNS = 3
REPORT_LIMIT_BYTES = 4 * 2**20
TAP_PLAN = re.compile(r"^1\.\.(\d+)\s*$")
TAP_RESULT = re.compile(r"^(not ok|ok)\b")
TIMINGS = re.compile(r"\b(in|duration_ms|time=)\s*\"?[\d.]+\s*m?s?\"?|\(\d+(\.\d+)?m?s\)")


@dataclass(frozen=True)
class Counts:
    passed: int
    failed: int
    problem: str  # why the report could not be read; "" when it could


@dataclass(frozen=True)
class TestRun:
    passed: bool
    tests_passed: int
    tests_failed: int
    reason: str
    output: str
    duration_s: float


@dataclass(frozen=True)
class GateResult:
    passed: bool
    runs: tuple[TestRun, ...]
    reason: str
    duration_s: float

    @property
    def tests_passed(self) -> int:
        return self.runs[-1].tests_passed if self.runs else 0

    @property
    def tests_failed(self) -> int:
        return self.runs[-1].tests_failed if self.runs else 0

    @property
    def output(self) -> str:
        return self.runs[-1].output if self.runs else ""


def junit_counts(xml_bytes: bytes) -> Counts:
    try:
        root = ElementTree.fromstring(xml_bytes)
    except ElementTree.ParseError as exc:
        return Counts(0, 0, f"the JUnit report is not valid XML ({exc})")
    passed = failed = 0
    for case in root.iter("testcase"):
        outcomes = {child.tag for child in case}
        if outcomes & {"failure", "error"}:
            failed += 1
        elif "skipped" not in outcomes:
            passed += 1
    errors = sum(int(suite.get("errors") or 0) for suite in root.iter("testsuite"))
    return Counts(passed, failed + max(0, errors - failed), "")


def tap_counts(output: str) -> Counts:
    planned = None
    passed = failed = 0
    for line in output.splitlines():
        plan = TAP_PLAN.match(line)
        if plan and planned is None:
            planned = int(plan.group(1))
        result = TAP_RESULT.match(line)
        if result:
            passed, failed = (passed + 1, failed) if result.group(1) == "ok" else (passed, failed + 1)
    if planned is None:
        return Counts(passed, failed, "no TAP plan line (1..N): the test program did not start its tests")
    if passed + failed != planned:
        return Counts(passed, failed, f"TAP planned {planned} tests but reported {passed + failed}: the program stopped early")
    return Counts(passed, failed, "")


def run_tests_once(sandbox: Sandbox, task: AgentTask, timeout_s: float) -> tuple[CommandResult, Counts]:
    """The task's command, steps in order, stopping at the first failing step; the counts come
    from the structured report, never from the exit code."""
    report = sandbox.scratch / "report.xml"
    build = sandbox.scratch / "build"
    report.unlink(missing_ok=True)
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    outputs = []
    result = CommandResult(0, "", False, 0.0)
    for step in task.test_command:
        argv = sandbox.resolve_program(step, {"report": str(report), "build": str(build)})
        if argv is None:
            return CommandResult(127, f"{step[0]}: not installed", False, 0.0), Counts(0, 0, f"{step[0]} is not installed")
        result = sandbox.run(argv, timeout_s)
        outputs.append(result.output)
        if result.exit_code != 0:
            break
    combined = CommandResult(result.exit_code, "\n".join(outputs), result.timed_out, result.duration_s)
    if task.report == "tap":
        return combined, tap_counts(result.output)
    if not report.is_file():
        return combined, Counts(0, 0, "the test runner wrote no report: the tests did not run to the end")
    with open(report, "rb") as handle:
        return combined, junit_counts(handle.read(REPORT_LIMIT_BYTES))


def judge(task: AgentTask, result: CommandResult, counts: Counts) -> str:
    """Why this run does not pass; "" when it passes."""
    if result.timed_out:
        return "the tests ran past the command timeout"
    if counts.problem:
        return counts.problem
    if counts.failed:
        return f"{counts.failed} test(s) failed"
    if result.exit_code != 0:
        return f"the test command exited {result.exit_code}"
    if counts.passed != task.expected_tests:
        return f"{counts.passed} test(s) passed where the task has {task.expected_tests}"
    return ""


def verify_once(sandbox: Sandbox, task: AgentTask, timeout_s: float) -> TestRun:
    sandbox.restore_tests(task)
    started = time.monotonic()
    result, counts = run_tests_once(sandbox, task, timeout_s)
    why = judge(task, result, counts)
    return TestRun(not why, counts.passed, counts.failed, why or f"{counts.passed} passed", result.output,
                   time.monotonic() - started)


def run_gate(sandbox: Sandbox, task: AgentTask, timeout_s: float, runs: int = GATE_RUNS) -> GateResult:
    """Pass only when all `runs` runs pass; stops at the first failing run."""
    started = time.monotonic()
    done: list[TestRun] = []
    for index in range(runs):
        run = verify_once(sandbox, task, timeout_s)
        done.append(run)
        if not run.passed:
            reason = f"run {index + 1} of {runs}: {run.reason}"
            return GateResult(False, tuple(done), reason, time.monotonic() - started)
    return GateResult(True, tuple(done), f"{runs} of {runs} runs passed", time.monotonic() - started)


def cleaned_output(text: str, sandbox: Sandbox) -> str:
    """Test output for the model: no absolute sandbox paths and no timings, so two failures of
    the same kind read the same."""
    text = text.replace(str(sandbox.workspace.resolve()) + "/", "").replace(str(sandbox.workspace) + "/", "")
    text = text.replace(str(sandbox.scratch), "<scratch>")
    return TIMINGS.sub("", text)
