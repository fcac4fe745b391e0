"""Live weeyuga runs on this machine: two benchmarks sharing the CPUs both report numbers that are
neither's, so a run registers itself under the state folder and a second one refuses to start
without --force-load (issue #16).

An entry is `<state>/runs/<pid>.json` with the process's start time; an entry whose process is gone,
or whose pid now belongs to a later process (another start time), is stale and removed, as launch
treats its pidfiles.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from orchestrator.measure import contention
from orchestrator.core.atomic import write_json_atomic
from orchestrator.core.errors import WeeyugaError
from orchestrator.core.paths import state_dir


def runs_dir() -> Path:
    return state_dir() / "runs"


def start_time(pid: int) -> float | None:
    table = contention.process_table  # the host's, or the stand-in unit tests pin
    try:
        return table.Process(pid).create_time()
    except table.Error:
        return None


def live_runs() -> list[dict[str, Any]]:
    """Other runs registered and still alive; stale entries are deleted on the way."""
    folder = runs_dir()
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            entry = json.loads(path.read_text())
            pid, started = int(entry["pid"]), entry["started"]
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if pid == os.getpid():
            continue
        now = start_time(pid)
        if now is None or started is None or abs(now - started) >= 1.0:
            path.unlink(missing_ok=True)
            continue
        found.append(entry)
    return found


def register(run_id: str) -> Path | None:
    """This process as a live run (until `unregister`); an unwritable state folder never fails the run."""
    path = runs_dir() / f"{os.getpid()}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {"pid": os.getpid(), "started": start_time(os.getpid()), "run_id": run_id})
    except (OSError, WeeyugaError):
        return None
    return path


def unregister(path: Path | None) -> None:
    """Remove the entry, and the folders it made if nothing else is in them (no litter beside a run folder)."""
    if path is not None:
        for gone in (path.unlink, path.parent.rmdir, path.parent.parent.rmdir):
            try:
                gone()
            except OSError:  # not empty (another live run, a pidfile): leave it
                return


def describe(runs: list[dict[str, Any]]) -> str:
    return ", ".join(f"pid {r['pid']} (run {r.get('run_id') or 'unknown'})" for r in runs)
