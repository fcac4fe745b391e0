"""Glue between stages that the CLI commands share: run folders, targets, run-then-record."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from orchestrator.core.errors import BadInput, WeeyugaError, os_failure
from orchestrator.core.procs import run_captured
from orchestrator.measure.resources import listener_pid_source
from orchestrator.publish.manifest import RunContext, record
from orchestrator.core.runfolder import LEDGER_NAME, MANIFEST_NAME, validate_handle
from orchestrator.measure.run import RunOptions, RunResult, Target, check_run_dir, new_run_id, run_suites
from orchestrator.runtime import byo_target, detect_engine, runtime_for_engine

def default_handle() -> str:
    """From git config user.name, made folder-safe; 'anonymous' when unset."""
    try:
        name = run_captured(["git", "config", "user.name"], timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        name = ""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:39]
    return slug or "anonymous"


def new_run_dir(root: Path, handle: str, device_tag: str, run_id: str | None = None) -> tuple[Path, str]:
    run_id = run_id or new_run_id()
    return root / validate_handle(handle) / device_tag / f"run-{run_id}", run_id


def ensure_writable(folder: Path) -> None:
    """Fail in one line before minutes of installing and launching when the run cannot be written there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise os_failure(folder, exc) from None


def find_run_dir(root: Path, run_id: str) -> Path:
    if not re.fullmatch(r"[0-9a-f-]{8,36}", run_id):
        raise BadInput(f"{run_id!r} is not a run id (a uuid)")
    matches = sorted(root.glob(f"*/*/run-{run_id}*"))
    if not matches:
        raise BadInput(f"no run {run_id} under {root}; pass --submissions-dir if it lives elsewhere")
    if len(matches) > 1:
        raise BadInput(f"run id prefix {run_id} matches {len(matches)} runs; give the full id")
    return matches[0]


def byo_targets(target_url: str, models: list[str], engine: str | None, cell_id_prefix: str | None,
                device_tag: str) -> list[Target]:
    """Bring-your-own runtime: one cell per model at the same URL."""
    base_url = target_url.rstrip("/")
    try:
        parts = urlsplit(base_url)
        port = parts.port  # ValueError for a port out of range or not a number
        well_formed = re.fullmatch(r"https?://[^/\s]+", base_url) and parts.hostname
    except ValueError as exc:  # also a bracketed IPv6 literal left open
        raise BadInput(f"--target-url {target_url!r}: {exc}; it must look like http://127.0.0.1:8080") from None
    if not well_formed:
        raise BadInput(f"--target-url {target_url!r} must look like http://127.0.0.1:8080")
    engine = engine or detect_engine(base_url)
    prefix = cell_id_prefix or f"{device_tag}:{engine}"
    if prefix.count(":") != 1:
        raise BadInput(f"--cell-id-prefix {prefix!r} must be <node>:<engine>")
    runtime = runtime_for_engine(engine)
    pid = listener_pid_source(port) if port else (lambda: None)  # a local runtime's RSS can still be sampled
    return [byo_target(runtime, f"{prefix}:{model}", model, base_url, pid) for model in models]


@dataclass(frozen=True)
class RecordedRun:
    result: RunResult
    manifest: Path
    status: str  # complete | interrupted | failed


def run_recorded(targets: list[Target], options: RunOptions, run_dir: Path, run_id: str, context: RunContext,
                 resume: bool = False, **run_kwargs: Any) -> RecordedRun:
    """Run the suites and always leave a manifest, whether the run ends, fails or is interrupted.
    A run refused before its first ledger line (the load gate, say) leaves no folder behind."""
    check_run_dir(run_dir, resume)  # before the manifest is touched: a refusal must not overwrite it
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_failure(run_dir, exc) from None
    try:
        record(run_dir, context, "running")
        result = run_suites(targets, options, run_dir, run_id, resume=resume, **run_kwargs)
    except BaseException as exc:
        if created and not (run_dir / LEDGER_NAME).exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            # A full disk must not turn Ctrl-C or the original error into a different one; the ledger is kept.
            with contextlib.suppress(OSError, WeeyugaError):
                record(run_dir, context, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    status = result.status
    record(run_dir, context, status)
    return RecordedRun(result, run_dir / MANIFEST_NAME, status)
