"""Glue between stages that the CLI commands share: run folders, targets, run-then-record."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import BadInput
from .paths import data_dir
from .procs import run_captured
from .resources import listener_pid_source
from .record import RunContext, record
from .run import Cell, RunOptions, RunResult, Target, check_run_dir, detect_engine, new_run_id, run_suites

HANDLE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,38}$")


def validate_handle(handle: str) -> str:
    """Handles become folder names: only [a-z0-9-], so nothing escapes submissions/."""
    if not HANDLE_PATTERN.match(handle or ""):
        raise BadInput(f"submitter handle {handle!r} must be 1-39 characters of a-z, 0-9 and '-', starting with a letter or digit")
    return handle


def default_handle() -> str:
    """From git config user.name, made folder-safe; 'anonymous' when unset."""
    try:
        name = run_captured(["git", "config", "user.name"], timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        name = ""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:39]
    return slug or "anonymous"


def submissions_root(explicit: str | None = None) -> Path:
    return Path(explicit) if explicit else data_dir("submissions")


def new_run_dir(root: Path, handle: str, device_tag: str, run_id: str | None = None) -> tuple[Path, str]:
    run_id = run_id or new_run_id()
    return root / validate_handle(handle) / device_tag / f"run-{run_id}", run_id


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
    if not re.match(r"^https?://[^/\s]+$", base_url):
        raise BadInput(f"--target-url {target_url!r} must look like http://127.0.0.1:8080")
    engine = engine or detect_engine(base_url)
    prefix = cell_id_prefix or f"{device_tag}:{engine}"
    if prefix.count(":") != 1:
        raise BadInput(f"--cell-id-prefix {prefix!r} must be <node>:<engine>")
    api = "ollama" if engine == "ollama" else "openai"
    port = urlsplit(base_url).port
    pid = listener_pid_source(port) if port else (lambda: None)  # a local runtime's RSS can still be sampled
    return [Target(Cell(f"{prefix}:{model}", engine, model, base_url, api), pid=pid) for model in models]


@dataclass
class RecordedRun:
    result: RunResult
    manifest: Path
    status: str  # complete | interrupted | failed


def run_recorded(targets: list[Target], options: RunOptions, run_dir: Path, run_id: str, context: RunContext,
                 resume: bool = False, **run_kwargs: Any) -> RecordedRun:
    """Run the suites and always leave a manifest, whether the run ends, fails or is interrupted."""
    check_run_dir(run_dir, resume)  # before the manifest is touched: a refusal must not overwrite it
    run_dir.mkdir(parents=True, exist_ok=True)
    record(run_dir, context, "running")
    status = "failed"
    try:
        result = run_suites(targets, options, run_dir, run_id, resume=resume, **run_kwargs)
        status = result.status
        return RecordedRun(result, run_dir / "manifest.json", status)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        record(run_dir, context, status)
