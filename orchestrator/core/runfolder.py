"""A run folder made elsewhere (a contributor's, or an earlier run's), checked before it is read.

`submit`, `catalogue` and `report` read folders a stranger may have written, so each of them
checks the folder here first: it holds only regular files (no symbolic link, device, FIFO or
sub-folder that could point outside it), and the identifiers its manifest names (run id,
handle, device tag) are spelled as the command line requires, because they become paths.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core.errors import BadInput, read_failure

# The files of a run folder, named here once.
LEDGER_NAME = "run.jsonl"
RESPONSES_NAME = "responses.jsonl"
SAMPLES_NAME = "samples.jsonl"
MANIFEST_NAME = "manifest.json"
HARDWARE_NAME = "hardware.json"
METADATA_NAME = "metadata.json"
REPORT_NAME = "run.md"
HTML_NAME = "run.html"

RUN_ID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
HANDLE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,38}$")
TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")


def validate_run_id(run_id: Any, source: str = "run id") -> str:
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise BadInput(f"{source}: run id {run_id!r} is not a uuid (8-4-4-4-12 hex digits)")
    return run_id


def validate_handle(handle: str) -> str:
    """Handles become folder names: only [a-z0-9-], so nothing escapes submissions/."""
    if not isinstance(handle, str) or not HANDLE_PATTERN.fullmatch(handle):  # fullmatch: `$` lets a trailing newline through
        raise BadInput(f"submitter handle {handle!r} must be 1-39 characters of a-z, 0-9 and '-', starting with a letter or digit")
    return handle


def validate_device_tag(tag: str, source: str = "device tag") -> str:
    if not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag):
        raise BadInput(f"{source} {tag!r}: use 1-48 characters of a-z, 0-9 and '-', starting with a letter or digit")
    return tag


def check_regular_files(run_dir: Path) -> None:
    """Refuse a folder that is itself a link, or holds anything but regular files."""
    try:
        if stat.S_ISLNK(run_dir.lstat().st_mode):
            raise BadInput(f"{run_dir}: is a symbolic link; a run folder must be a real folder")
        entries = sorted(run_dir.iterdir())
    except OSError as exc:
        raise read_failure(run_dir, exc) from None
    for entry in entries:
        mode = entry.lstat().st_mode
        if stat.S_ISLNK(mode):
            raise BadInput(f"{entry}: a symbolic link in a run folder; only regular files are allowed")
        if not stat.S_ISREG(mode):
            kind = "folder" if stat.S_ISDIR(mode) else "device, FIFO or socket"
            raise BadInput(f"{entry}: a {kind} in a run folder; only regular files are allowed")


@dataclass(frozen=True)
class RunIdentity:
    run_id: str
    submitter_handle: str
    device_tag: str


def run_identity(manifest: dict[str, Any], source: str) -> RunIdentity:
    """The manifest's run id, handle and tag, validated as strictly as on the command line."""
    try:
        handle = validate_handle(manifest.get("submitter_handle"))
        tag = validate_device_tag(manifest.get("device_tag"))
    except BadInput as exc:
        raise BadInput(f"{source}: {exc}") from None
    return RunIdentity(validate_run_id(manifest.get("run_id"), source), handle, tag)
