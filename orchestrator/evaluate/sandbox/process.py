"""Where an agent's code runs: the small `Sandbox` interface and `ProcessSandbox`, the default.

The loop only sees the interface; `orchestrator/evaluate/sandbox/docker/` has the Docker one beside this one. A
ProcessSandbox is a fresh temp folder per attempt holding `workspace/` (seed + pristine tests)
and `scratch/` (reports, build output, HOME and TMPDIR of the commands; outside the workspace so
file tools never see it). Commands run in their own process group with a scrubbed environment,
rlimits, a wall timeout that kills the whole group, and no network where `unshare -rn` works.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from orchestrator.core import procs
from orchestrator.evaluate.agent.tasks import HARNESS_FILES_DIR, TESTS_FOLDER, AgentTask, memory_limit_mb, resolve_program

OUTPUT_HEAD_BYTES = 6 * 1024
OUTPUT_TAIL_BYTES = 6 * 1024
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"


class SandboxEscape(ValueError):
    """A path that resolves outside the workspace."""


@dataclass(frozen=True)
class CommandResult:
    exit_code: int | None  # None when the wall timeout killed it
    output: str  # stdout and stderr together, clipped head + tail
    timed_out: bool
    duration_s: float


@dataclass(frozen=True)
class Limits:
    cpu_s: int = 120
    file_size_mb: int = 64
    open_files: int = 256
    memory_mb: int | None = None  # address space; None where the runtime cannot live under one (node)


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


@lru_cache(maxsize=None)
def network_isolation_works() -> bool:
    """Probed once: can this user make an empty network namespace (`unshare -rn`)?"""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    try:
        return procs.run_captured([unshare, "-rn", "true"], timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def inside(workspace: Path, relative: str) -> Path:
    """The real path of `relative` under `workspace`; symlinks are resolved first, so a link that
    points outside is refused like `..` or an absolute path."""
    root = workspace.resolve()
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        raise SandboxEscape(f"{relative}: outside the workspace")
    return candidate


class ProcessSandbox:
    kind = "process"

    def __init__(self, limits: Limits | None = None, isolate_network: bool = True) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="weeyuga-agent-"))
        self.workspace = self.base / "workspace"
        self.scratch = self.base / "scratch"
        self.limits = limits
        self.net_isolated = isolate_network and network_isolation_works()

    def prepare(self, task: AgentTask) -> None:
        shutil.rmtree(self.workspace, ignore_errors=True)
        shutil.rmtree(self.scratch, ignore_errors=True)
        shutil.copytree(task.seed_dir, self.workspace, symlinks=False)
        for folder in ("home", "tmp", "build"):
            (self.scratch / folder).mkdir(parents=True)
        if self.limits is None:
            self.limits = Limits(memory_mb=memory_limit_mb(task.language))
        self.restore_tests(task)

    def resolve_program(self, argv: tuple[str, ...], substitutions: dict[str, str]) -> list[str] | None:
        """A task command as this sandbox runs it; None when its program is not installed."""
        return resolve_program(argv, substitutions)

    def restore_tests(self, task: AgentTask) -> None:
        tests = self.workspace / TESTS_FOLDER
        if tests.is_symlink() or tests.is_file():
            tests.unlink()
        shutil.rmtree(tests, ignore_errors=True)
        shutil.copytree(task.tests_dir, tests, symlinks=False)
        for name in task.harness:
            shutil.copyfile(HARNESS_FILES_DIR / name, tests / name)

    def environment(self) -> dict[str, str]:
        """Nothing of the caller's environment: no HOME, proxies, tokens or tool settings."""
        return {
            "PATH": SANDBOX_PATH, "HOME": str(self.scratch / "home"), "TMPDIR": str(self.scratch / "tmp"),
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "NO_COLOR": "1", "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1", "PYTHONHASHSEED": "0",
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # only pytest itself: faster, and no plugin can alter verdicts
        }

    def apply_limits(self) -> None:
        """In the child before exec."""
        procs.die_with_parent()
        limits = self.limits or Limits()
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_mb * 2**20,) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if limits.memory_mb:
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * 2**20,) * 2)

    def run(self, argv: list[str], timeout_s: float) -> CommandResult:
        if self.net_isolated:
            argv = [shutil.which("unshare") or "unshare", "-rn", *argv]
        log_path = self.scratch / "command.log"
        options = procs.spawn_options()
        options["preexec_fn"] = self.apply_limits
        started = time.monotonic()
        timed_out = False
        with open(log_path, "wb") as log:  # a file, not a pipe, so RLIMIT_FSIZE caps the output too
            try:
                proc = subprocess.Popen(argv, cwd=self.workspace, env=self.environment(), stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, **options)
            except OSError as exc:
                return CommandResult(127, f"cannot start {argv[0]}: {exc}", False, time.monotonic() - started)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                procs.kill_group(proc)  # also whatever the command left running in its group
                proc.wait()
        output = log_path.read_bytes().decode("utf-8", errors="replace")
        if timed_out:
            output += killed_note(timeout_s)
        return CommandResult(None if timed_out else proc.returncode, clip(output), timed_out, time.monotonic() - started)

    def read_file(self, relative: str) -> bytes:
        return inside(self.workspace, relative).read_bytes()

    def write_file(self, relative: str, data: bytes) -> None:
        path = inside(self.workspace, relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def list_dir(self, relative: str) -> list[tuple[str, bool, int]]:
        folder = inside(self.workspace, relative)
        entries = []
        for child in sorted(folder.iterdir()):
            is_dir = child.is_dir() and not child.is_symlink()
            entries.append((child.name, is_dir, 0 if is_dir else child.lstat().st_size))
        return entries

    def destroy(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)
