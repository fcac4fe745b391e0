"""The two agent workflows over an injected chat function, and the records they emit.

`chat(messages, tools, max_tokens)` returns `(assistant_message, finish_reason, usage, error)`;
the message is `{"role": "assistant", "content", "reasoning_content", "tool_calls": [...]}`.
The loop never knows which client or sandbox it runs with.

- ralph: passes with a fresh context each; progress lives only on disk (the workspace and
  PROGRESS.md). Between passes the workspace is fingerprinted; `max_stale` unchanged passes in a
  row end the task `stagnated`; a pass that changed the workspace without a successful `done`
  gets the end-of-pass probe (the same gate).
- two-try: try 1 edits without running tests; the harness runs the gate; on failure try 2 gets
  the cleaned test output. pass@1 = passed after try 1; pass@2 = passed after try 1 or try 2.

Records (plain dicts, schema orchestrator/core/schemas/agent-record.schema.json) go to `on_record`:
`agent_call` per model call (with its duration), `agent_pass` per pass or try, `agent_run` per
task. Reasoning content is never put back into the history.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from orchestrator.core.errors import WeeyugaError
from orchestrator.evaluate.agent.gate import GateResult, cleaned_output, run_gate
from orchestrator.evaluate.sandbox.base import Sandbox, clip
from orchestrator.evaluate.agent.tasks import AgentTask, harness_config, toolchain_missing
from orchestrator.evaluate.agent.tools import MAX_FAILED_DONES, PROGRESS_FILE, TEST_OUTPUT_CHARS, Toolbox, ToolStats

ChatFn = Callable[[list[dict], list[dict], int], tuple[Any, Any, Any, Any]]
OnRecord = Callable[[dict], None]
OUTCOMES = ("completed", "stagnated", "budget", "fault", "skipped", "interrupted")
# Not progress: caches, dependencies and build output the tools or test runners leave behind.
FINGERPRINT_SKIP_DIRS = {"__pycache__", ".pytest_cache", "node_modules", "build", ".cache"}
FINGERPRINT_SKIP_FILES = {PROGRESS_FILE}


class AgentInterrupted(Exception):
    """should_stop() said stop (SIGINT/SIGTERM in the runner)."""


@dataclass(frozen=True)
class Budgets:
    context_tokens: int
    steps_per_pass: int
    passes: int
    max_tokens: int
    command_timeout_s: float
    max_stale: int

    @classmethod
    def defaults(cls, **overrides: Any) -> "Budgets":
        values = dict(harness_config()["budgets"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AgentTaskResult:
    task: str
    language: str
    outcome: str
    reason: str
    pass_at_1: bool | None
    pass_at_2: bool | None
    passes: int
    tool_calls: int
    duration_s: float


@dataclass(frozen=True)
class AgentSummary:
    workflow: str
    results: tuple[AgentTaskResult, ...]
    already_done: tuple[str, ...]  # skipped on resume: an agent_run was already recorded
    interrupted: bool

    def to_json(self) -> dict[str, Any]:
        return {"workflow": self.session.workflow, "results": [asdict(r) for r in self.results],
                "already_done": list(self.already_done), "interrupted": self.interrupted}


def fingerprint(workspace: Path) -> str:
    """SHA-256 over every regular file (path, NUL, bytes, NUL) in path order, leaving out
    PROGRESS.md and caches, so note-taking and cache churn do not count as progress."""
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(workspace):
        dirs[:] = sorted(d for d in dirs if d not in FINGERPRINT_SKIP_DIRS)
        for name in sorted(files):
            path = Path(folder, name)
            if name in FINGERPRINT_SKIP_FILES or name.endswith(".pyc") or path.is_symlink() or not path.is_file():
                continue
            digest.update(path.relative_to(workspace).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def history_entry(message: dict) -> dict:
    """The assistant turn as it goes back into the history: content and tool calls, no reasoning."""
    entry: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    if calls:
        entry["tool_calls"] = [{"id": c.get("id") or f"call_{i}", "type": "function",
                                "function": {"name": str((c.get("function") or {}).get("name") or ""),
                                             "arguments": arguments_text((c.get("function") or {}).get("arguments"))}}
                               for i, c in enumerate(calls)]
    return entry


def arguments_text(arguments: Any) -> str:
    """Arguments as the JSON string the API defines; some servers send an object instead."""
    if isinstance(arguments, str):
        return arguments or "{}"
    return json.dumps(arguments if arguments is not None else {})


def estimated_tokens(messages: list[dict]) -> int:
    return len(json.dumps(messages)) // 4


@dataclass(frozen=True)
class PassEnd:
    ended: str  # completed | done | model_stop | max_steps | context | done_loop | error
    steps: int
    gate: GateResult | None  # the last gate `done` ran in this pass
    writes_after_gate: bool
    error: str


@dataclass(frozen=True)
class AgentSession:
    """What every task of a run shares: the model, the workflow and its budgets, where records go."""

    chat: ChatFn
    workflow: str  # a key of WORKFLOWS
    budgets: Budgets
    sandbox_factory: Callable[[], Sandbox]
    on_record: OnRecord
    sampling: Mapping[str, Any]
    should_stop: Callable[[], bool]
    clock: Callable[[], float]


@dataclass
class TaskRun:
    """One attempt at one task: its sandbox, counters, and the records it emits."""

    task: AgentTask
    attempt: int
    sandbox: Sandbox
    session: AgentSession
    tools: ToolStats = field(default_factory=ToolStats)
    model_calls: int = 0
    call_errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    gate_s: float = 0.0
    pass_reasons: list = field(default_factory=list)

    def emit(self, kind: str, **fields: Any) -> None:
        self.session.on_record({"record": kind, "task": self.task.id, "task_version": self.task.version,
                        "workflow": self.session.workflow, "attempt": self.attempt, **fields})

    def toolbox(self, gated_done: bool) -> Toolbox:
        return Toolbox(self.sandbox, self.task, self.session.budgets.command_timeout_s, gated_done, self.tools)

    def call_model(self, messages: list[dict], toolbox: Toolbox, pass_index: int, step: int) -> tuple[dict | None, int | None, str]:
        """(message, context tokens the call reported, error); message is None when the call failed."""
        if self.session.should_stop():
            raise AgentInterrupted()
        started = self.session.clock()
        message, finish, usage, error = self.session.chat(messages, toolbox.specs(), self.session.budgets.max_tokens)
        usage = usage if isinstance(usage, dict) else {}
        self.model_calls += 1
        prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        failed = bool(error) or not isinstance(message, dict)
        self.call_errors += failed
        self.emit("agent_call", pass_index=pass_index, step=step, duration_s=round(self.session.clock() - started, 4),
                  finish_reason=finish if isinstance(finish, str) else None, error=str(error or "no message") if failed else None,
                  prompt_tokens=prompt, completion_tokens=completion,
                  tool_calls=0 if failed else len(message.get("tool_calls") or []))
        if failed:
            return None, None, str(error or "the client returned no message")
        return message, int(usage.get("total_tokens") or prompt + completion) or None, ""

    def converse(self, messages: list[dict], toolbox: Toolbox, pass_index: int) -> PassEnd:
        """One context: call, run the tool calls, feed results back, until a stop or a budget."""
        steps = calls = 0
        gate: GateResult | None = None
        writes_at_gate = toolbox.stats.writes
        while True:
            if steps >= self.session.budgets.steps_per_pass:
                return PassEnd("max_steps", steps, gate, toolbox.stats.writes > writes_at_gate, "")
            calls += 1
            message, context_tokens, error = self.call_model(messages, toolbox, pass_index, calls)
            if message is None:
                return PassEnd("error", steps, gate, toolbox.stats.writes > writes_at_gate, error)
            entry = history_entry(message)
            messages.append(entry)
            if not entry.get("tool_calls"):
                return PassEnd("model_stop", steps, gate, toolbox.stats.writes > writes_at_gate, "")
            for call in entry["tool_calls"]:
                steps += 1
                outcome = toolbox.call(call["function"]["name"], call["function"]["arguments"])
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": outcome.text})
                if outcome.gate is not None:
                    gate, writes_at_gate = outcome.gate, toolbox.stats.writes
                    self.gate_s += outcome.gate.duration_s
                if outcome.finished:
                    return PassEnd("completed" if toolbox.gated_done else "done", steps, gate, False, "")
            if toolbox.failed_dones >= MAX_FAILED_DONES:
                return PassEnd("done_loop", steps, gate, False, "")
            if (context_tokens or estimated_tokens(messages)) >= self.session.budgets.context_tokens:
                return PassEnd("context", steps, gate, toolbox.stats.writes > writes_at_gate, "")

    def gate(self) -> GateResult:
        result = run_gate(self.sandbox, self.task, self.session.budgets.command_timeout_s)
        self.gate_s += result.duration_s
        return result

    def emit_pass(self, pass_index: int, end: PassEnd, fp: str, changed: bool, gate: GateResult | None,
                  probe: bool, started: float, counts_before: Counter, tokens_before: tuple[int, int]) -> None:
        self.pass_reasons.append(end.ended)
        self.emit("agent_pass", pass_index=pass_index, ended=end.ended, steps=end.steps, fingerprint=fp,
                  workspace_changed=changed, gate_ran=gate is not None, gate_passed=bool(gate and gate.passed),
                  gate_by_probe=probe, gate_reason=gate.reason if gate else None,
                  tests_passed=gate.tests_passed if gate else None, tests_failed=gate.tests_failed if gate else None,
                  tool_counts=dict(self.tools.counts - counts_before),
                  prompt_tokens=self.prompt_tokens - tokens_before[0],
                  completion_tokens=self.completion_tokens - tokens_before[1],
                  duration_s=round(self.session.clock() - started, 4), error=end.error or None)

    def system_prompt(self, key: str) -> dict:
        text = harness_config()["prompts"][key].replace("{editable}", ", ".join(self.task.editable))
        return {"role": "system", "content": text}


def run_ralph(run: TaskRun) -> tuple[str, str, int | None, dict]:
    budgets = run.session.budgets
    previous = fingerprint(run.sandbox.workspace)
    stale = error_streak = 0
    last_error = ""
    for index in range(1, budgets.passes + 1):
        if run.session.should_stop():
            raise AgentInterrupted()
        started, counts_before, tokens_before = run.session.clock(), Counter(run.tools.counts), (run.prompt_tokens, run.completion_tokens)
        toolbox = run.toolbox(gated_done=True)
        messages = [run.system_prompt("ralph_system"), {"role": "user", "content": run.task.prompt}]
        end = run.converse(messages, toolbox, index)
        fp = fingerprint(run.sandbox.workspace)
        changed = fp != previous
        gate, probe = end.gate, False
        if end.ended != "completed" and changed and (gate is None or end.writes_after_gate):
            gate, probe = run.gate(), True
        run.emit_pass(index, end, fp, changed, gate, probe, started, counts_before, tokens_before)
        if end.ended == "completed":
            return "completed", f"pass {index}: done, and the gate passed ({gate.reason})", index, {}
        if probe and gate.passed:
            return "completed", f"pass {index} ended {end.ended}; the end-of-pass probe passed ({gate.reason})", index, {}
        error_streak = error_streak + 1 if end.ended == "error" else 0
        last_error = end.error or last_error
        if error_streak >= budgets.max_stale:
            return "fault", f"every model call failed in {error_streak} passes in a row: {last_error}", None, {}
        stale = 0 if changed else stale + 1
        if stale >= budgets.max_stale:
            return "stagnated", f"the workspace did not change in {stale} passes in a row (last pass ended {end.ended})", None, {}
        previous = fp
    if run.model_calls and run.call_errors == run.model_calls:  # fewer passes than max_stale, every one failed
        return "fault", f"every model call failed: {last_error}", None, {}
    return "budget", f"all {budgets.passes} passes used without passing the gate", None, {}


def run_two_try(run: TaskRun) -> tuple[str, str, int | None, dict]:
    messages = [run.system_prompt("two_try_system"), {"role": "user", "content": run.task.prompt}]
    previous = fingerprint(run.sandbox.workspace)
    gate: GateResult | None = None
    for attempt in (1, 2):
        if attempt == 2:
            output = clip(cleaned_output(gate.output, run.sandbox), TEST_OUTPUT_CHARS // 2, TEST_OUTPUT_CHARS // 2)
            retry = harness_config()["prompts"]["two_try_retry"]
            text = retry.replace("{editable}", ", ".join(run.task.editable)).replace("{output}", output)
            messages.append({"role": "user", "content": text})
        started, counts_before, tokens_before = run.session.clock(), Counter(run.tools.counts), (run.prompt_tokens, run.completion_tokens)
        end = run.converse(messages, run.toolbox(gated_done=False), attempt)
        fp = fingerprint(run.sandbox.workspace)
        gate = run.gate()
        run.emit_pass(attempt, end, fp, fp != previous, gate, False, started, counts_before, tokens_before)
        previous = fp
        if gate.passed:
            return "completed", f"try {attempt}: the gate passed ({gate.reason})", attempt, {"pass_at_1": attempt == 1, "pass_at_2": True}
        if end.ended == "error" and run.call_errors == run.model_calls:
            return "fault", f"every model call failed: {end.error}", None, {"pass_at_1": False, "pass_at_2": False}
    return "budget", f"both tries failed the gate ({gate.reason})", None, {"pass_at_1": False, "pass_at_2": False}


# The workflows by name: each runs one attempt and returns (outcome, reason, completed at pass/try, extra fields).
WORKFLOWS: dict[str, Callable[[TaskRun], tuple[str, str, int | None, dict]]] = {"ralph": run_ralph, "two-try": run_two_try}


def run_task(task: AgentTask, attempt: int, session: AgentSession) -> dict:
    """One attempt at one task from its pristine seed; returns (and emits) its agent_run record."""
    started = session.clock()
    sandbox: Sandbox | None = None
    run: TaskRun | None = None
    extra: dict = {}
    completed_at = None
    try:
        sandbox = session.sandbox_factory()
        run = TaskRun(task, attempt, sandbox, session)
        sandbox.prepare(task)
        outcome, reason, completed_at, extra = WORKFLOWS[session.workflow](run)
    except (AgentInterrupted, KeyboardInterrupt):
        outcome, reason = "interrupted", "stopped by the operator before the task ended"
    except (OSError, WeeyugaError) as exc:  # the harness failed (sandbox, disk): this task's fault line, the run goes on
        outcome, reason = "fault", f"the harness failed: {exc}"
    finally:
        if sandbox is not None:
            sandbox.destroy()
    record = agent_run_record(task, attempt, session, outcome, reason, sandbox, run, completed_at, extra,
                              round(session.clock() - started, 4))
    session.on_record(record)
    return record


def agent_run_record(task: AgentTask, attempt: int, session: AgentSession, outcome: str, reason: str,
                     sandbox: Sandbox | None, run: TaskRun | None, completed_at: int | None = None,
                     extra: Mapping[str, Any] | None = None, duration_s: float = 0.0) -> dict:
    """The agent_run line, for an attempt that ran (`run`) or one skipped before it started (None: zeros)."""
    extra = extra or {}
    tools = run.tools if run else ToolStats()
    prompt, completion = (run.prompt_tokens, run.completion_tokens) if run else (0, 0)
    return {"record": "agent_run", "task": task.id, "task_version": task.version, "workflow": session.workflow,
            "attempt": attempt, "language": task.language, "size": task.size, "kind": task.kind,
            "outcome": outcome, "reason": reason, "budgets": session.budgets.to_json(), "sampling": dict(session.sampling),
            "sandbox": sandbox.kind if sandbox else None, "net_isolated": sandbox.net_isolated if sandbox else None,
            "completed_at": completed_at, "passes": len(run.pass_reasons) if run else 0,
            "pass_reasons": run.pass_reasons if run else [], "duration_s": duration_s,
            "gate_s": round(run.gate_s, 4) if run else 0.0, "model_calls": run.model_calls if run else 0,
            "model_call_errors": run.call_errors if run else 0, "tool_calls": sum(tools.counts.values()),
            "tool_counts": dict(tools.counts), "tool_errors": tools.errors, "bytes_read": tools.bytes_read,
            "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "pass_at_1": extra.get("pass_at_1"), "pass_at_2": extra.get("pass_at_2")}


def run_agent_tasks(tasks: Iterable[AgentTask], chat: ChatFn, workflow: str, budgets: Budgets | None,
                    sandbox_factory: Callable[[], Sandbox], on_record: OnRecord = lambda record: None,
                    *, sampling: Mapping[str, Any] | None = None, completed_tasks: frozenset[str] = frozenset(),
                    previous_attempts: Mapping[str, int] | None = None, should_stop: Callable[[], bool] = lambda: False,
                    clock: Callable[[], float] = time.monotonic,
                    toolchain_check: Callable[[str], str | None] = toolchain_missing,
                    skip_reason: str | None = None) -> AgentSummary:
    """Run each task once (resume: tasks in `completed_tasks` are left out; any other task starts
    from its pristine seed with attempt = previous attempts + 1). Stops at an interruption.
    `skip_reason`: why no task may run here (no sandbox contains model-written code); each is
    recorded `skipped` with it."""
    if workflow not in WORKFLOWS:
        raise ValueError(f"workflow must be one of {', '.join(WORKFLOWS)}, not {workflow!r}")
    session = AgentSession(chat, workflow, budgets or Budgets.defaults(), sandbox_factory, on_record, sampling or {},
                           should_stop, clock)
    previous_attempts = previous_attempts or {}
    results, already_done = [], []
    interrupted = False
    for task in tasks:
        if task.id in completed_tasks:
            already_done.append(task.id)
            continue
        if should_stop():
            interrupted = True
            break
        attempt = previous_attempts.get(task.id, 0) + 1
        missing = None if skip_reason else toolchain_check(task.language)
        if skip_reason or missing:
            why = f"no sandbox: {skip_reason}" if skip_reason else f"toolchain missing: {missing}"
            record = agent_run_record(task, attempt, session, "skipped", why, None, None)
            on_record(record)
        else:
            record = run_task(task, attempt, session)
        results.append(AgentTaskResult(task.id, task.language, record["outcome"], record["reason"], record["pass_at_1"],
                                       record["pass_at_2"], record["passes"], record["tool_calls"], record["duration_s"]))
        if record["outcome"] == "interrupted":
            interrupted = True
            break
    return AgentSummary(workflow, tuple(results), tuple(already_done), interrupted)


def resume_state(records: Iterable[Mapping[str, Any]]) -> tuple[frozenset[str], dict[str, int]]:
    """From the ledger's agent records: tasks that finished (an agent_run other than
    `interrupted`) and the highest attempt number seen per task."""
    finished, attempts = set(), {}
    for record in records:
        if record.get("record") not in ("agent_call", "agent_pass", "agent_run"):
            continue
        attempts[record["task"]] = max(attempts.get(record["task"], 0), int(record["attempt"]))
        if record["record"] == "agent_run" and record["outcome"] != "interrupted":
            finished.add(record["task"])
    return frozenset(finished), attempts
