"""One contributed run folder, read for the catalogue: checked (runfolder), its documents read with
datafiles' strict readers, and turned into a catalogue entry and its export rows. The index and the
export build on this module; nothing here knows about either."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import __version__
from orchestrator.core import datafiles
from orchestrator.publish.catalogue.rows import LEDGER_KINDS, ledger_kind, run_rows
from orchestrator.core.errors import BadInput
from orchestrator.core.runfolder import HARDWARE_NAME, LEDGER_NAME, MANIFEST_NAME, METADATA_NAME, check_regular_files, run_identity
from orchestrator.core.methodology import methodology
from orchestrator.plan.decide.facts import hardware_class
from orchestrator.plan.probe import Hardware

CATALOGUE_SCHEMA = "catalogue-1"
GENERATED_BY = f"weeyuga {__version__} catalogue"
# What a run folder contributes, read in this order; the last two may be absent.
INPUT_LIMITS = {MANIFEST_NAME: datafiles.DOCUMENT_LIMIT_BYTES, METADATA_NAME: datafiles.DOCUMENT_LIMIT_BYTES,
                HARDWARE_NAME: datafiles.DOCUMENT_LIMIT_BYTES, LEDGER_NAME: datafiles.LEDGER_LIMIT_BYTES}
OPTIONAL_INPUTS = (HARDWARE_NAME, LEDGER_NAME)
# run.jsonl lines worth parsing contain one of these; the rest of a ledger is never decoded.
LEDGER_MARKERS = tuple(f'"{kind}"'.encode() for kind in LEDGER_KINDS)
HEADLINE_FIELDS = ["cell_id", "phase", "n_calls", "n_errors", "tokens_per_sec_mean", "warm_first_delta_ms_p50",
                   "warm_total_duration_ms_p50", "success_rate"]


def run_folders(root: Path) -> dict[str, str]:
    """Every `<handle>/<tag>/run-*` under root, links included (refused later, never followed): its
    path relative to root -> its path. Sorted; os.scandir and strings, not pathlib: at 20,000 runs
    the walk is most of an incremental build."""
    if not root.is_dir():
        raise BadInput(f"{root}: no such submissions folder")
    found = {}
    for handle in _real_dirs(str(root)):
        if handle.name == "EXAMPLE":
            continue
        for tag in _real_dirs(handle.path):
            with os.scandir(tag.path) as entries:
                runs = sorted((e.name, e.path) for e in entries
                              if e.name.startswith("run-") and (e.is_symlink() or e.is_dir(follow_symlinks=False)))
            found.update((f"{handle.name}/{tag.name}/{name}", path) for name, path in runs)
    return found


def _real_dirs(folder: str) -> list[os.DirEntry]:
    with os.scandir(folder) as entries:
        return sorted((e for e in entries if e.is_dir(follow_symlinks=False)), key=lambda e: e.name)


def catalogue_entry(run_dir: Path, manifest: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    selected = manifest.get("phases_selected") or []
    canonical = manifest.get("canonical_phases") or methodology().legacy_phases
    missing = [p for p in canonical if p not in selected]
    if manifest.get("status") == "failed":  # no result at all, not a partial one
        completeness, why = "failed", f"status failed: {manifest.get('status_reason') or 'the run stopped with an error'}"
    elif manifest.get("status") != "complete":
        completeness, why = "partial", f"status {manifest.get('status')}"
    elif missing:
        completeness, why = "partial", "phases not run: " + ", ".join(missing)
    else:
        completeness, why = "complete", None
    knobs = manifest.get("knobs") or {}
    return {
        "run_id": manifest["run_id"],
        "path": "/".join(run_dir.parts[-3:]),
        "submitter_handle": manifest.get("submitter_handle"),
        "device_tag": manifest.get("device_tag"),
        "started_at_utc": manifest.get("started_at_utc"),
        "hardware": manifest.get("hardware_summary"),
        "runtime": {k: (manifest.get("runtime") or {}).get(k) for k in ("name", "engine_version", "backend", "managed")},
        "knobs": {k: v.get("value") for k, v in knobs.items()},
        # What `weeyuga tune` measured on that machine, and what the rules had chosen instead.
        "tuned": {k: {"value": v.get("value"), "replaced": v.get("replaced"), "overrode": v.get("overrode")}
                  for k, v in sorted(knobs.items()) if v.get("source") == "tuned"},
        "models": sorted({c["model"] for c in manifest.get("cells", [])}),
        "phases": selected,
        "completeness": completeness,
        "partial_reason": why,
        "deviations": len(manifest.get("deviations") or []),
        "headline": [{k: row.get(k) for k in HEADLINE_FIELDS} for row in metadata.get("cells", [])],
        "status": manifest.get("status"),
        # phases other processes contended (issue #16): their figures are not the machine's own
        "contended_phases": [f"{f['cell_id']} {f['phase']}" for f in metadata.get("contended_phases") or []],
    }




@dataclass(frozen=True)
class RunRecord:
    """What one run folder contributes: a catalogue entry and its export rows, or why it is invalid."""

    path: str  # <handle>/<tag>/run-<id>, relative to the submissions folder
    hashes: dict[str, str | None]  # sha256 of each input, None where an optional one is absent
    entry: dict[str, Any] | None = None
    rows: tuple[dict[str, Any], ...] = ()
    invalid_reason: str | None = None

    @property
    def sort_key(self) -> tuple[str, str, str, str]:
        entry = self.entry or {}
        return (entry.get("device_tag") or "", entry.get("submitter_handle") or "", entry.get("started_at_utc") or "",
                entry.get("run_id") or "")


def run_path(run_dir: Path) -> str:
    return "/".join(run_dir.parts[-3:])


def read_inputs(run_dir: Path) -> dict[str, bytes | None]:
    """The input files' bytes, after the folder passed runfolder's checks (regular files only)."""
    check_regular_files(run_dir)
    present = {entry.name for entry in run_dir.iterdir()}
    return {name: datafiles.read_bytes(run_dir / name, limit) if name in present or name not in OPTIONAL_INPUTS else None
            for name, limit in INPUT_LIMITS.items()}


def input_hashes(blobs: dict[str, bytes | None]) -> dict[str, str | None]:
    return {name: hashlib.sha256(data).hexdigest() if data is not None else None for name, data in blobs.items()}


def read_run(run_dir: Path, known_hashes: dict[str, str | None] | None = None) -> RunRecord | None:
    """Read one run folder; None when its inputs hash to `known_hashes` (nothing to re-parse)."""
    path = run_path(run_dir)
    try:
        blobs = read_inputs(run_dir)
    except BadInput as exc:
        return RunRecord(path, {}, invalid_reason=str(exc).replace(str(run_dir) + "/", ""))
    hashes = input_hashes(blobs)
    if hashes == known_hashes:
        return None
    try:
        return parse_run(run_dir, path, hashes, blobs)
    except BadInput as exc:
        return RunRecord(path, hashes, invalid_reason=str(exc).replace(str(run_dir) + "/", ""))


def parse_run(run_dir: Path, path: str, hashes: dict[str, str | None], blobs: dict[str, bytes | None]) -> RunRecord:
    documents = {}
    for name, schema in ((MANIFEST_NAME, "manifest"), (METADATA_NAME, "metadata")):
        documents[name] = datafiles.decode_json(blobs[name], run_dir / name)
        datafiles.validate(documents[name], schema, str(run_dir / name))
    manifest, metadata = documents[MANIFEST_NAME], documents[METADATA_NAME]
    identity = run_identity(manifest, f"{run_dir / 'manifest.json'}")
    if f"run-{identity.run_id}" != run_dir.name:
        raise BadInput("folder name does not match manifest run_id")
    label = None
    if blobs[HARDWARE_NAME] is not None:
        hardware_file = run_dir / HARDWARE_NAME
        label, _ = hardware_class(Hardware.from_dict(datafiles.decode_json(blobs[HARDWARE_NAME], hardware_file),
                                                     str(hardware_file)))
    entry = catalogue_entry(run_dir, manifest, metadata)
    records = ledger_records(blobs[LEDGER_NAME] or b"", run_dir / LEDGER_NAME)
    rows = run_rows(path, manifest, metadata, records, entry["completeness"], label)
    return RunRecord(path, hashes, entry, tuple(rows))


def ledger_records(ledger: bytes, source: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) of the ledger's `quality` and `agent_run` lines. A line that does not
    parse refuses the run, except a torn last line (a crash mid-write), which the ledger drops too."""
    if not any(marker in ledger for marker in LEDGER_MARKERS):
        return []
    lines = ledger.split(b"\n")
    found = []
    for number, line in enumerate(lines, 1):
        if not any(marker in line for marker in LEDGER_MARKERS):
            continue
        try:
            record = datafiles.parse_json(line)
        except ValueError as exc:
            if number == len(lines):  # no newline after it: torn
                continue
            raise BadInput(f"{source} (line {number}): not valid JSON: {exc}") from None
        if isinstance(record, dict) and ledger_kind(record):
            found.append((number, record))
    return found
