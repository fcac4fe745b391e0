"""Naming a runtime's failure: crashed by a signal, out of memory, port in use, model unreadable, exited."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from orchestrator.core.errors import WeeyugaError
from orchestrator.plan.runtimes import RuntimeDefinition

LOG_TAIL_LINES = 12


class LaunchError(WeeyugaError):
    """The runtime did not come up. `kind` is crashed | exited | oom | port_in_use | model_unreadable | timeout."""

    def __init__(self, kind: str, message: str, log_tail: str = "", what: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.log_tail = log_tail
        self.what = what or message.splitlines()[0]  # the failure in a phrase, without the command line


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGILL, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE}


def classify_failure(defn: RuntimeDefinition, log_text: str, returncode: int | None = None) -> str:
    """crashed | oom | port_in_use | model_unreadable | exited, from the exit status and the log.

    Out of memory wins over a crash signal (llama.cpp aborts when an allocation fails); a crash
    signal wins over the other markers, so a segfault is never reported as a plain exit.
    """
    lowered = log_text.lower()
    if any(marker.lower() in lowered for marker in defn.oom_markers):
        return "oom"
    if returncode is not None and returncode < 0 and -returncode in CRASH_SIGNALS:
        return "crashed"
    for kind, markers in (("port_in_use", defn.port_in_use_markers), ("model_unreadable", defn.load_failure_markers)):
        if any(marker.lower() in lowered for marker in markers):
            return kind
    return "exited"


def exit_description(returncode: int) -> str:
    """`killed by SIGSEGV` for a signal (Popen reports -N), `exited with code N` otherwise."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def crash_lines(defn: RuntimeDefinition, log_text: str, limit: int = 12) -> list[str]:
    """The backtrace-like lines of a log tail (abort messages, frames), newest last."""
    patterns = [re.compile(p) for p in defn.crash_markers]
    kept = [line.rstrip() for line in log_text.splitlines() if any(p.search(line) for p in patterns)]
    return kept[-limit:]


def describe_exit(defn: RuntimeDefinition, returncode: int, log_text: str) -> tuple[str, str]:
    """(kind, what happened) for a runtime process that has exited."""
    kind = classify_failure(defn, log_text, returncode)
    what = {"oom": "ran out of memory", "port_in_use": "could not bind its port",
            "model_unreadable": "could not load the model file",
            "crashed": f"crashed ({exit_description(returncode)})",
            "exited": exit_description(returncode)}[kind]
    if kind == "crashed":
        frames = crash_lines(defn, log_text)
        if frames:
            what += "; crash lines: " + " | ".join(frames)
    return kind, what
