"""Ports, process groups and pidfiles: what lets a later weeyuga reap a runtime that escaped."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from orchestrator.core.atomic import write_json_atomic
from orchestrator.core.paths import state_dir
from orchestrator.plan.runtimes import HOST
from orchestrator.runtime.launch.failures import LaunchError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like the servers themselves: TIME_WAIT leftovers from our last run do not count, a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            raise LaunchError("port_in_use", f"port {port} on {HOST} is already in use; pick another with --port") from None


def pid_dir() -> Path:
    return state_dir() / "pids"


def _process_start_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_orphans() -> list[int]:
    """Kill runtimes recorded by a weeyuga that has since died; the parent-death signal's second line."""
    reaped = []
    for record_path in pid_dir().glob("*.json") if pid_dir().is_dir() else []:
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            record_path.unlink(missing_ok=True)
            continue
        if _alive(record["owner_pid"]) and _process_start_time(record["owner_pid"]) == record.get("owner_started"):
            continue  # its weeyuga is still running
        started = _process_start_time(record["pid"])
        if started is not None and abs(started - record["started"]) < 1.0:  # same process, not a reused pid
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record["pid"], signal.SIGKILL)
            reaped.append(record["pid"])
        record_path.unlink(missing_ok=True)
    return reaped


def write_pidfile(proc: subprocess.Popen, argv: list[str]) -> Path:
    pid_dir().mkdir(parents=True, exist_ok=True)
    path = pid_dir() / f"{proc.pid}.json"
    write_json_atomic(path, {"pid": proc.pid, "argv": argv, "started": _process_start_time(proc.pid) or time.time(),
                             "owner_pid": os.getpid(), "owner_started": _process_start_time(os.getpid())})
    return path
