"""Processes that tests start: the same signal disposition wherever pytest runs, and nothing left running
when a test fails.

A background job (`pytest &`, CI under nohup) starts every child with SIGINT ignored, and Python then
installs no KeyboardInterrupt handler: a test that interrupts a child with SIGINT would see it run on.
Each child here sets SIGINT to raise KeyboardInterrupt itself, as an interactive Python does.
"""

from __future__ import annotations

import subprocess
import sys

import psutil

# Run before the child's own code: SIGINT raises KeyboardInterrupt whatever the parent's disposition was.
INTERRUPTIBLE = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
STOP_WAIT_S = 15


def script_argv(script: str) -> list[str]:
    """`python -c SCRIPT` with SIGINT as an interactive Python has it."""
    return [sys.executable, "-c", INTERRUPTIBLE + script]


def weeyuga_argv(*args: str) -> list[str]:
    """`python -m orchestrator.cli ARGS` with SIGINT as an interactive Python has it."""
    return script_argv("import runpy; runpy.run_module('orchestrator.cli', run_name='__main__', alter_sys=True)") + list(args)


def stop_tree(proc: subprocess.Popen) -> None:
    """Stop a child and everything it started: SIGTERM first (weeyuga's own path stops its runtimes), then
    SIGKILL for whatever is left; the descendants are listed while the child still runs."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        family = []
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for child in family:
        try:
            child.kill()
        except psutil.Error:  # already gone: what weeyuga's SIGTERM path is for
            continue
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
