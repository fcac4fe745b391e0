"""Child processes: each in its own session and process group, and gone on every exit path.

`run_captured` is for short commands (git, sysctl, pip, llama-fit-params): output captured, an
optional timeout, and on a timeout, an error or Ctrl-C the whole group is killed and reaped
before the exception goes on. Long-lived children (llama-server, cmake) use `spawn_options`
and `kill_group` from their own supervisors.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
from typing import Any


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so every `finally` that stops a runtime, or removes a
    staging file, runs. (Here rather than in runtime.launch: the catalogue needs it without importing
    the runtimes.)"""
    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError, AttributeError):
            signal.signal(sig, raise_interrupt)


def die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)


def spawn_options() -> dict[str, Any]:
    """Popen keywords: a new session (so a new process group) that dies with us on Linux."""
    return {"start_new_session": True, "preexec_fn": die_with_parent if sys.platform.startswith("linux") else None}


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def run_captured(argv: list[str], timeout: float | None = None, cwd: str | os.PathLike | None = None,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """What subprocess.run with capture_output and text gives, with the group discipline.

    Raises OSError when the program cannot start and subprocess.TimeoutExpired on a timeout.
    """
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace", cwd=cwd, env=env, **spawn_options())
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        kill_group(proc)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def binary_version(binary: str, args: tuple[str, ...] = ("--version",)) -> str | None:
    """The text after "version" in `<binary> --version`: llama-server prints `version: <v> (build …)`
    (to stderr), Ollama `ollama version is <v>`."""
    try:
        done = run_captured([binary, *args], timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    for line in (done.stdout + done.stderr).splitlines():
        match = re.search(r"version\W*(?:is\s+)?(.+)", line, re.IGNORECASE)
        if match:
            return match.group(1).strip()
    return None
