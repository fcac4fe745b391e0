"""The Docker sandboxes behind the agent suite's `Sandbox` and codeexec's `CodeRunner`.

`DockerSandbox` keeps the process sandbox's attempt folder (workspace/ and scratch/, prepared and
read by the file tools on the host) and runs every command in ONE container per task attempt,
started at the first command and removed by `destroy()`; the attempt folder is bind-mounted at
its host path, so the gate's report and build paths read the same on both sides.
`DockerCodeRunner` runs each codeexec program in a container of its own, removed in `finally`.
"""

from __future__ import annotations

import shutil
from typing import Any

from orchestrator.evaluate.sandbox.contain import CODE_PREFIX, Containment, attempt_folder
from orchestrator.evaluate.sandbox.base import CommandResult, clip, killed_note
from orchestrator.evaluate.sandbox.process import ProcessSandbox
from orchestrator.evaluate.agent.tasks import fill
from orchestrator.evaluate.sandbox.code import OUTPUT_LIMIT, RunOutcome
from orchestrator.evaluate.sandbox.docker.config import SandboxConfig, load_config
from orchestrator.evaluate.sandbox.docker.engine import Container, connect


DOCKER = Containment("docker", True, "a Docker container: no network, read-only root, memory and pids limits")


class DockerSandbox(ProcessSandbox):
    kind = "docker"

    def __init__(self, client: Any = None, config: SandboxConfig | None = None) -> None:
        self.config = config or load_config()
        super().__init__(containment=DOCKER)  # its limits are the container's (profiles/sandbox.yaml)
        self.container = Container(client or connect(), self.config, self.base, "agent")

    def resolve_program(self, argv: tuple[str, ...], substitutions: dict[str, str]) -> list[str] | None:
        """Inside the image: `{python}` is its Python; other programs are found on its PATH by the
        engine (a missing one is exit code 127, as from a shell)."""
        return [fill(arg, {"python": self.config.python, **substitutions}) for arg in argv]

    def run(self, argv: list[str], timeout_s: float) -> CommandResult:
        result = self.container.exec(argv, self.workspace, self.environment(), timeout_s)
        output = (result.stdout + result.stderr).decode("utf-8", errors="replace")
        if result.timed_out:
            output += killed_note(timeout_s)
        return CommandResult(result.exit_code, clip(output), result.timed_out, result.duration_s)

    def destroy(self) -> None:
        try:
            self.container.remove()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


class DockerCodeRunner:
    """codeexec's runner: `python -I -B script` in a fresh container per program."""

    net_isolated = True

    def __init__(self, client: Any = None, config: SandboxConfig | None = None) -> None:
        self.config = config or load_config()
        self.client = client or connect()

    def run(self, files: dict[str, str], script: str, seconds: float) -> RunOutcome:
        holder = attempt_folder(CODE_PREFIX)
        try:
            work = holder / "work"
            work.mkdir()
            for name, text in files.items():
                (work / name).write_text(text, encoding="utf-8")
            container = Container(self.client, self.config, work, "codeexec")
            env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8"}
            try:
                result = container.exec([self.config.python, "-I", "-B", script], work, env, seconds)
            finally:
                container.remove()
        finally:
            shutil.rmtree(holder, ignore_errors=True)
        return RunOutcome(result.exit_code, tail(result.stdout), tail(result.stderr), result.timed_out,
                          result.duration_s, self.net_isolated)


def tail(data: bytes) -> str:
    return data[-OUTPUT_LIMIT:].decode("utf-8", errors="replace")
