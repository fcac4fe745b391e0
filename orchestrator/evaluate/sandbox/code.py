"""The code runner behind `codeexec`: files in, exit code and output out, in the process sandbox.

`CodeRunner` is the whole interface, so the Docker sandbox's `DockerCodeRunner` can stand in.
`ProcessCodeRunner` writes the files into a fresh `ContainedFolder` (contain.py: the containment,
rlimits, wall timeout and scrubbed environment the agent suite's commands get) and runs
`python -I -B script` there, stdout and stderr kept apart; it removes the folder afterwards.
The harness's audit hook (see codeexec) adds its own refusals inside the interpreter.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orchestrator.evaluate.sandbox.contain import CODE_PREFIX, ContainedFolder, Containment, Limits, probe_containment

OUTPUT_LIMIT = 64 * 1024  # characters of stdout/stderr kept for the verdict


@dataclass(frozen=True)
class RunOutcome:
    exit_code: int | None  # None when it was killed for running past the wall clock
    stdout: str
    stderr: str
    timed_out: bool
    wall_s: float
    net_isolated: bool


class CodeRunner(Protocol):
    net_isolated: bool

    def run(self, files: dict[str, str], script: str, seconds: float) -> RunOutcome:
        """Write `files` into a fresh folder, run `python script` there, remove the folder."""


class ProcessCodeRunner:
    def __init__(self, memory_mb: int = 512, file_size_mb: int = 2, containment: Containment | None = None,
                 python: str | None = None) -> None:
        self.memory_mb = memory_mb
        self.file_size_mb = file_size_mb
        self.containment = containment or probe_containment()
        self.net_isolated = self.containment.net_isolated
        self.python = python or sys.executable  # the Python weeyuga runs on, which the tests assume

    def run(self, files: dict[str, str], script: str, seconds: float) -> RunOutcome:
        # The CPU limit is a backstop past the wall clock (one thread cannot use more CPU than wall
        # time), so a loop is always stopped by the wall timeout and reported as one.
        limits = Limits(cpu_s=int(seconds) + 2, file_size_mb=self.file_size_mb, memory_mb=self.memory_mb)
        sandbox = ContainedFolder(limits, self.containment, prefix=CODE_PREFIX)
        try:
            for name, text in files.items():
                (sandbox.workspace / name).write_text(text, encoding="utf-8")
            stdout, stderr = sandbox.scratch / "stdout", sandbox.scratch / "stderr"
            code, timed_out, wall = sandbox.execute([self.python, "-I", "-B", script], seconds, stdout, stderr)
            return RunOutcome(code, tail(stdout), tail(stderr), timed_out, wall, self.net_isolated)
        finally:
            sandbox.destroy()


def tail(path: Path) -> str:
    return path.read_bytes()[-OUTPUT_LIMIT:].decode("utf-8", errors="replace")
