"""Run untrusted Python in a throw-away folder, contained: the code runner behind `codeexec`.

`CodeRunner` is the whole interface (files in, exit code and output out), so the agent suite's
Sandbox can replace `SubprocessSandbox` later. This one runs the files in a fresh temp folder
as a child in its own process group with:
- rlimits: CPU seconds, file size (stdout and stderr go to files, so output is capped too),
  no core dumps, address space;
- a wall-clock timeout that kills the whole process group;
- a scrubbed environment (PATH, HOME and TMPDIR only) and `python -I -B`;
- no network: `unshare -rn` (a new user and network namespace with no interfaces) when this
  kernel allows it, recorded as `net_isolated`; without it only the harness's audit hook stands;
- the harness's audit hook (see codeexec) refuses writes outside the folder, process creation,
  sockets and ctypes. It is containment for honest mistakes, not a boundary against code that
  sets out to escape (a hostile model can still read files the user can read).
"""

from __future__ import annotations

import functools
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orchestrator.core import procs

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


@functools.lru_cache(maxsize=1)
def unshare_works() -> bool:
    """Whether `unshare -rn` can make an empty network namespace here (not in every container)."""
    tool = shutil.which("unshare")
    if not tool:
        return False
    try:
        return procs.run_captured([tool, "-rn", "true"], timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _limits(cpu_s: int, file_bytes: int, memory_bytes: int):
    def apply() -> None:
        procs.die_with_parent()
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    return apply


class SubprocessSandbox:
    def __init__(self, memory_bytes: int = 512 * 2**20, file_bytes: int = 2 * 2**20, isolate_network: bool = True,
                 python: str | None = None) -> None:
        self.memory_bytes = memory_bytes
        self.file_bytes = file_bytes
        self.net_isolated = isolate_network and unshare_works()
        self.python = python or sys.executable  # the Python weeyuga runs on, which the tests assume

    def run(self, files: dict[str, str], script: str, seconds: float) -> RunOutcome:
        with tempfile.TemporaryDirectory(prefix="weeyuga-code-") as holder:
            work = Path(holder) / "work"  # the code's folder; its output files sit beside it, not in it
            work.mkdir()
            for name, text in files.items():
                (work / name).write_text(text, encoding="utf-8")
            prefix = [shutil.which("unshare") or "unshare", "-rn"] if self.net_isolated else []
            env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8"}
            options = procs.spawn_options()
            # The CPU limit is a backstop past the wall clock (one thread cannot use more CPU than wall
            # time), so a loop is always stopped by the wall timeout and reported as one.
            options["preexec_fn"] = _limits(int(seconds) + 2, self.file_bytes, self.memory_bytes)
            started = time.monotonic()
            with open(Path(holder) / "stdout", "wb") as out, open(Path(holder) / "stderr", "wb") as err:
                proc = subprocess.Popen([*prefix, self.python, "-I", "-B", script], cwd=work, env=env,
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=err, **options)
                try:
                    code: int | None = proc.wait(timeout=seconds)
                except subprocess.TimeoutExpired:
                    code = None
                finally:
                    procs.kill_group(proc)  # also whatever it started, on every exit path
                    proc.wait()
            wall = time.monotonic() - started
            return RunOutcome(code, _tail(Path(holder) / "stdout"), _tail(Path(holder) / "stderr"),
                              code is None, wall, self.net_isolated)


def _tail(path: Path) -> str:
    data = path.read_bytes()
    return data[-OUTPUT_LIMIT:].decode("utf-8", errors="replace")

