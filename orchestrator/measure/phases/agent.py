"""The agent phase: the agentic coding suite (orchestrator/agent/) on the spine.

One unit per task and cell. The library's injected `chat` is ctx.chat, so every model call is a
timed `call` line keyed (cell, "agent", task id, step = call number in the attempt, attempt);
its `agent_pass` and `agent_run` records go into the same ledger as typed lines.

Resume: a task with an `agent_run` line (other than `interrupted`) is not run again; any other
task starts from its pristine seed with the next attempt number (resume_state over its lines).

Settings (RunOptions.agent, recorded in the meta line): workflow, tasks, languages and budget
overrides from `weeyuga agent run`; empty means suites/agent/harness.json's `auto` set, small
enough for `weeyuga auto --phases ...,agent`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.evaluate.agent import Budgets, load_tasks, resume_state, run_agent_tasks
from orchestrator.evaluate.agent.tasks import TASKS_DIR, AgentTask, harness_config
from orchestrator.measure.cost import agent_seconds
from orchestrator.core.records import AgentRecord, CallKey
from orchestrator.core.runspec import RunOptions, Target
from orchestrator.evaluate.sandbox.docker.choice import run_sandbox
from orchestrator.measure.phases.base import Unit
from orchestrator.measure.phases.context import PhaseContext

PHASE_NAME = "agent"


def tree_sha256(root: Path) -> str:
    """Of every task file (path and bytes): a resume refuses a changed task set."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class AgentSettings:
    workflow: str
    tasks: tuple[AgentTask, ...]
    budgets: Budgets

    @classmethod
    def of(cls, options: RunOptions, root: Path = TASKS_DIR) -> "AgentSettings":
        chosen = options.agent or harness_config()["auto"]
        tasks = load_tasks(root, tuple(chosen.get("tasks") or ()), tuple(chosen.get("languages") or ()))
        return cls(chosen.get("workflow") or "ralph", tasks, Budgets.defaults(**(chosen.get("budgets") or {})))

    @property
    def tries(self) -> int:
        """Passes a task may take: two-try's two, or ralph's budget."""
        return 2 if self.workflow == "two-try" else self.budgets.passes

    def estimate_seconds(self, decode_tokens_per_sec: float) -> float:
        """The set at its budgets' ceiling (budget.agent_seconds)."""
        return agent_seconds(len(self.tasks), self.tries, self.budgets.steps_per_pass, self.budgets.max_tokens,
                             self.budgets.context_tokens, decode_tokens_per_sec)


class AgentPhase:
    name = PHASE_NAME
    kind = "agent"
    mode = "agent"
    version = 1

    def __init__(self, root: Path = TASKS_DIR, options: RunOptions | None = None) -> None:
        self.root = root
        self.sha256 = tree_sha256(root)
        self.options = options or RunOptions(phases=[self.name])  # what estimate_seconds sizes

    @classmethod
    def from_options(cls, options: RunOptions | None) -> "AgentPhase":
        """Its settings travel in the RunOptions each call gets; the tasks folder is the only state."""
        return cls(options=options)

    def groups(self, available: list[Target]) -> tuple[list[list[Target]], str | None]:
        return [[target] for target in available], None

    def units(self, cells: list[str], options: RunOptions) -> list[Unit]:
        """One per task, keyed by the most calls a first attempt can make (each call takes a step or
        ends its pass): progress and auto's call count are a ceiling, and most tasks stop sooner."""
        settings = AgentSettings.of(options, self.root)
        steps = range(1, settings.tries * settings.budgets.steps_per_pass + 1)
        return [Unit(self.name, (cells[0],), tuple(CallKey(cells[0], self.name, task.id, None, 0, step, 1) for step in steps))
                for task in settings.tasks]

    def estimate_seconds(self, decode_tokens_per_sec: float, num_predict: int, runs: int) -> float:
        return AgentSettings.of(self.options, self.root).estimate_seconds(decode_tokens_per_sec)

    def run_unit(self, unit: Unit, ctx: PhaseContext) -> None:
        cell_id, task_id = unit.cells[0], unit.keys[0].prompt_id
        settings = AgentSettings.of(ctx.options, self.root)
        task = next(t for t in settings.tasks if t.id == task_id)
        finished, attempts = resume_state(self.earlier_records(ctx, cell_id))
        if task.id in finished:
            return
        attempt = attempts.get(task.id, 0) + 1
        sandbox = run_sandbox(ctx.options.sandbox)
        summary = run_agent_tasks(
            [task], self.chat_for(ctx, cell_id, task.id, attempt), settings.workflow, settings.budgets,
            sandbox.agent_factory, on_record=lambda record: self.write(ctx, cell_id, record),
            sampling={"temperature": ctx.options.temperature}, previous_attempts=attempts,
            toolchain_check=sandbox.toolchain_check, skip_reason=sandbox.skip_reason)
        if summary.interrupted:  # the agent_run line says `interrupted`; the run stops here as any run does
            raise KeyboardInterrupt

    def earlier_records(self, ctx: PhaseContext, cell_id: str) -> list[dict[str, Any]]:
        """This cell's agent lines in the library's form; call lines count as attempts begun."""
        lines = []
        for record in ctx.state.records:
            if record.get("cell_id") != cell_id or record.get("phase") != self.name:
                continue
            if record["type"] == "call" and record.get("attempt") is not None:
                lines.append({"record": "agent_call", "task": record["prompt_id"], "attempt": record["attempt"]})
            elif record["type"] in ("agent_pass", "agent_run"):
                lines.append({"record": record["type"], **{k: v for k, v in record.items() if k != "type"}})
        return lines

    def write(self, ctx: PhaseContext, cell_id: str, record: dict[str, Any]) -> None:
        if record["record"] == "agent_call":
            return  # the model call is already its `call` line, timed by ctx.chat
        ctx.write(AgentRecord.of(cell_id, self.name, record))

    def chat_for(self, ctx: PhaseContext, cell_id: str, task_id: str, attempt: int):
        """The library's chat(messages, tools, max_tokens) as timed, recorded calls on this cell."""
        steps = iter(range(1, 1 << 30))

        def chat(messages: list[dict], tools: list[dict], max_tokens: int) -> tuple[Any, Any, Any, Any]:
            key = CallKey(cell_id, self.name, task_id, None, 0, next(steps), attempt)
            result = ctx.chat(ctx.request(key, messages, max_tokens, tools=tools), key_fields=key)
            usage = {"prompt_tokens": result.prompt_tokens or 0, "completion_tokens": result.completion_tokens or 0}
            return (None if result.error else result.message), result.finish_reason, usage, result.error

        return chat
