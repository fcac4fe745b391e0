"""The agent suite's sandbox interface, which the loop, the gate and the file tools see (the
process sandbox in process.py and the Docker one in docker/ implement it), and what they share.
It imports no sandbox, so the agent package never loads one by importing the interface."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from orchestrator.evaluate.agent.tasks import AgentTask

OUTPUT_HEAD_BYTES = 6 * 1024
OUTPUT_TAIL_BYTES = 6 * 1024


class SandboxEscape(ValueError):
    """A path that resolves outside the workspace."""


@dataclass(frozen=True)
class CommandResult:
    exit_code: int | None  # None when the wall timeout killed it
    output: str  # stdout and stderr together, clipped head + tail
    timed_out: bool
    duration_s: float


class Sandbox(Protocol):
    kind: str
    net_isolated: bool
    workspace: Path  # a host folder holding the task's files (a bind mount for container sandboxes)
    scratch: Path  # reports and build output, outside the workspace

    def prepare(self, task: AgentTask) -> None: ...
    def resolve_program(self, argv: tuple[str, ...], substitutions: dict[str, str]) -> list[str] | None: ...
    def restore_tests(self, task: AgentTask) -> None: ...
    def run(self, argv: list[str], timeout_s: float) -> CommandResult: ...
    def read_file(self, relative: str) -> bytes: ...
    def write_file(self, relative: str, data: bytes) -> None: ...
    def list_dir(self, relative: str) -> list[tuple[str, bool, int]]: ...
    def destroy(self) -> None: ...


def killed_note(timeout_s: float) -> str:
    return f"\n[killed: the command ran longer than {timeout_s:g} s]"


def clip(text: str, head: int = OUTPUT_HEAD_BYTES, tail: int = OUTPUT_TAIL_BYTES) -> str:
    if len(text) <= head + tail:
        return text
    return f"{text[:head]}\n[… {len(text) - head - tail} characters left out …]\n{text[-tail:]}"
