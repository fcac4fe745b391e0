"""`ProcessSandbox`: the agent suite's sandbox without Docker.

The loop only sees `Sandbox` (base.py); `docker/` has the Docker one beside this one. A ProcessSandbox is a
`ContainedFolder` (contain.py: the attempt folder, containment, rlimits, wall timeout) prepared
with the task's seed and pristine tests, whose tests/ the commands cannot change, plus the file
tools' view of its workspace: relative paths only, no symlink or hard link that leads outside.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from orchestrator.evaluate.agent.tasks import HARNESS_FILES_DIR, TESTS_FOLDER, AgentTask, memory_limit_mb, resolve_program
from orchestrator.evaluate.sandbox.base import CommandResult, SandboxEscape, clip, killed_note
from orchestrator.evaluate.sandbox.contain import ContainedFolder, Limits

def inside(workspace: Path, relative: str) -> Path:
    """The real path of `relative` under `workspace`; symlinks are resolved first, so a link that
    points outside is refused like `..` or an absolute path."""
    if "\0" in relative:
        raise SandboxEscape(f"{relative!r}: a path cannot hold a NUL byte")
    root = workspace.resolve()
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        raise SandboxEscape(f"{relative}: outside the workspace")
    return candidate


def own_file(workspace: Path, relative: str) -> Path:
    """`inside`, and when the path exists: a regular file that no hard link shares with a file
    outside the workspace (its link count is more than the workspace's own links to it, or it lives
    on another device)."""
    path = inside(workspace, relative)
    try:
        info = path.lstat()
    except FileNotFoundError:
        return path
    if not stat.S_ISREG(info.st_mode):
        raise SandboxEscape(f"{relative}: not a regular file")
    root = workspace.resolve()
    if info.st_dev != root.stat().st_dev:
        raise SandboxEscape(f"{relative}: on another device than the workspace")
    if info.st_nlink > 1 and links_within(root, info) < info.st_nlink:
        raise SandboxEscape(f"{relative}: a hard link to a file outside the workspace")
    return path


def links_within(root: Path, info: os.stat_result) -> int:
    found = 0
    for folder, _, files in os.walk(root):
        for name in files:
            other = os.lstat(os.path.join(folder, name))
            found += (other.st_dev, other.st_ino) == (info.st_dev, info.st_ino)
    return found


class ProcessSandbox(ContainedFolder):
    kind = "process"

    def prepare(self, task: AgentTask) -> None:
        self.make_folders()
        shutil.copytree(task.seed_dir, self.workspace, symlinks=False, dirs_exist_ok=True)
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

    def frozen(self) -> tuple[Path, ...]:
        tests = self.workspace / TESTS_FOLDER
        return (tests,) if tests.is_dir() and not tests.is_symlink() else ()

    def run(self, argv: list[str], timeout_s: float) -> CommandResult:
        log_path = self.scratch / "command.log"
        code, timed_out, seconds = self.execute(argv, timeout_s, log_path, log_path)
        output = log_path.read_bytes().decode("utf-8", errors="replace")
        if timed_out:
            output += killed_note(timeout_s)
        return CommandResult(code, clip(output), timed_out, seconds)

    def read_file(self, relative: str) -> bytes:
        return own_file(self.workspace, relative).read_bytes()

    def write_file(self, relative: str, data: bytes) -> None:
        """A new file renamed over the old one: never a write through a link the code planted."""
        path = own_file(self.workspace, relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = path.with_name(f".{path.name}.weeyuga-new")
        fresh.unlink(missing_ok=True)
        fresh.write_bytes(data)
        os.replace(fresh, path)

    def list_dir(self, relative: str) -> list[tuple[str, bool, int]]:
        folder = inside(self.workspace, relative)
        entries = []
        for child in sorted(folder.iterdir()):
            is_dir = child.is_dir() and not child.is_symlink()
            entries.append((child.name, is_dir, 0 if is_dir else child.lstat().st_size))
        return entries
