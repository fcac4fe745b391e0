"""One contributed run folder, read for the catalogue: checked (runfolder), its documents read with
datafiles' strict readers, and turned into a catalogue entry and its export rows. The index and the
export build on this module; nothing here knows about either."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from orchestrator import __version__
from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput, read_failure
from orchestrator.core.ledger import ledger_line
from orchestrator.core.physics import above_roofline
from orchestrator.publish.catalogue.rows import LEDGER_KINDS, CellSummary, cell_summaries, ledger_kind, run_rows
from orchestrator.publish.catalogue.settings import CatalogueSettings, settings
from orchestrator.core.runfolder import HARDWARE_NAME, LEDGER_NAME, MANIFEST_NAME, METADATA_NAME, check_regular_files, run_identity
from orchestrator.core.methodology import methodology
from orchestrator.plan.decide.facts import hardware_class
from orchestrator.plan.probe import Hardware

CATALOGUE_SCHEMA = "catalogue-2"
GENERATED_BY = f"weeyuga {__version__} catalogue"
# What a run folder contributes, read in this order; the last two may be absent. The documents are read
# whole (kilobytes in practice); the ledger a line at a time.
DOCUMENTS = (MANIFEST_NAME, METADATA_NAME, HARDWARE_NAME)
INPUTS = (*DOCUMENTS, LEDGER_NAME)
OPTIONAL_INPUTS = (HARDWARE_NAME, LEDGER_NAME)
# run.jsonl lines worth parsing contain one of these; the rest of a ledger is never decoded.
LEDGER_MARKERS = tuple(f'"{kind}"'.encode() for kind in LEDGER_KINDS)
HEADLINE_FIELDS = ["cell_id", "phase", "n_calls", "n_errors", "tokens_per_sec_mean", "warm_first_delta_ms_p50",
                   "warm_total_duration_ms_p50", "success_rate"]


def run_folders(root: Path, value: Callable[[os.DirEntry], Any] = lambda entry: entry) -> dict[str, Any]:
    """Every `<handle>/<tag>/run-*` under root, links included (refused later, never followed): its
    path relative to root -> `value` of its directory entry (by default the entry, whose lstat,
    `entry.stat(follow_symlinks=False)`, is one short lookup in its folder)."""
    found: dict[str, Any] = {}
    for prefix, device in device_folders(root).items():
        found.update(runs_in(device.path, prefix, value))
    return found


def device_folders(root: Path) -> dict[str, os.DirEntry]:
    """Every `<handle>/<tag>/` folder under root (EXAMPLE and links left out), by that prefix."""
    if not root.is_dir():
        raise BadInput(f"{root}: no such submissions folder")
    return {f"{handle.name}/{tag.name}/": tag for handle in _real_dirs(str(root)) if handle.name != "EXAMPLE"
            for tag in _real_dirs(handle.path)}


def runs_in(device: str, prefix: str, value: Callable[[os.DirEntry], Any]) -> dict[str, Any]:
    """The `run-*` entries of one device folder (links included): prefix + name -> `value` of the entry,
    applied during the walk (os.scandir and strings, not pathlib: at 100,000 runs this is most of a pass)."""
    with os.scandir(device) as entries:
        return {prefix + e.name: value(e) for e in entries
                if e.name.startswith("run-") and (e.is_symlink() or e.is_dir(follow_symlinks=False))}


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
    """What one run folder contributes: a catalogue entry, its export rows and their per-cell
    summaries, or why it is invalid."""

    path: str  # <handle>/<tag>/run-<id>, relative to the submissions folder
    hashes: dict[str, str | None]  # sha256 of each input, None where an optional one is absent
    entry: dict[str, Any] | None = None
    rows: tuple[dict[str, Any], ...] = ()
    invalid_reason: str | None = None
    cells: tuple[CellSummary, ...] = ()

    @property
    def sort_key(self) -> tuple[str, str, str, str]:
        entry = self.entry or {}
        return (entry.get("device_tag") or "", entry.get("submitter_handle") or "", entry.get("started_at_utc") or "",
                entry.get("run_id") or "")


def run_path(run_dir: Path) -> str:
    return "/".join(run_dir.parts[-3:])


@dataclass(frozen=True)
class LedgerScan:
    """run.jsonl read once, a line at a time: its hash, and the raw lines worth parsing (those naming
    a kind in LEDGER_KINDS), or why they cannot be used. Memory is bounded by the limits, whatever
    the ledger's size."""

    sha256: str
    lines: list[tuple[int, bytes, bool]]  # (line number, bytes, whether a newline ended it)
    problem: str | None = None


def scan_ledger(path: Path, limits: CatalogueSettings) -> LedgerScan | None:
    """None when the folder has no run.jsonl. Opened non-blocking and refused unless a regular file
    under the ledger size limit (a FIFO cannot hang the catalogue)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise read_failure(path, exc) from None
    digest, lines, problem, kept = hashlib.sha256(), [], None, 0
    with os.fdopen(fd, "rb", buffering=2**20) as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BadInput(f"{path}: not a regular file; refusing to read it")
        if info.st_size > datafiles.LEDGER_LIMIT_BYTES:
            raise BadInput(f"{path}: {info.st_size} bytes is more than the {datafiles.LEDGER_LIMIT_BYTES} this file may have")
        number, size = 0, 0

        def read_piece() -> bytes:
            nonlocal size
            piece = fh.readline(limits.ledger_line_bytes + 1)
            digest.update(piece)
            size += len(piece)
            if size > datafiles.LEDGER_LIMIT_BYTES:
                raise BadInput(f"{path}: more than the {datafiles.LEDGER_LIMIT_BYTES} bytes this file may have")
            return piece

        try:
            while line := read_piece():
                number += 1
                marked = any(marker in line for marker in LEDGER_MARKERS)
                long = not line.endswith(b"\n") and len(line) > limits.ledger_line_bytes
                end = line
                while not end.endswith(b"\n") and len(end) > limits.ledger_line_bytes and (end := read_piece()):
                    marked = marked or any(marker in end for marker in LEDGER_MARKERS)  # the rest: hashed, never held
                if problem or not marked:
                    continue
                kept += len(line)
                if long:
                    problem = f"{path} (line {number}): a quality or agent line longer than {limits.ledger_line_bytes} bytes"
                elif len(lines) >= limits.ledger_rows_per_run:
                    problem = f"{path}: more than {limits.ledger_rows_per_run} quality and agent lines"
                elif kept > limits.ledger_record_bytes:
                    problem = f"{path}: quality and agent lines of more than {limits.ledger_record_bytes} bytes in all"
                else:
                    lines.append((number, line, line.endswith(b"\n")))
        except OSError as exc:
            raise read_failure(path, exc) from None
    return LedgerScan(digest.hexdigest(), [] if problem else lines, problem)


def read_documents(run_dir: Path) -> dict[str, bytes | None]:
    """The documents' bytes, after the folder passed runfolder's checks (regular files only)."""
    check_regular_files(run_dir)
    present = {entry.name for entry in run_dir.iterdir()}
    return {name: datafiles.read_bytes(run_dir / name) if name in present or name not in OPTIONAL_INPUTS else None
            for name in DOCUMENTS}


def read_run(run_dir: Path, known_hashes: dict[str, str | None] | None = None) -> RunRecord | None:
    """Read one run folder; None when its inputs hash to `known_hashes` (nothing to re-parse)."""
    path = run_path(run_dir)
    limits = settings()
    try:
        blobs = read_documents(run_dir)
        ledger = scan_ledger(run_dir / LEDGER_NAME, limits)
    except BadInput as exc:
        return RunRecord(path, {}, invalid_reason=str(exc).replace(str(run_dir) + "/", ""))
    hashes = {name: hashlib.sha256(data).hexdigest() if data is not None else None for name, data in blobs.items()}
    hashes[LEDGER_NAME] = ledger.sha256 if ledger else None
    if hashes == known_hashes:
        return None
    try:
        if ledger and ledger.problem:
            raise BadInput(ledger.problem)
        return parse_run(run_dir, path, hashes, blobs, ledger.lines if ledger else [], limits)
    except BadInput as exc:
        return RunRecord(path, hashes, invalid_reason=str(exc).replace(str(run_dir) + "/", ""))
    except RecursionError:  # a document nested thousands of levels deep: json's decoder gives up
        return RunRecord(path, hashes, invalid_reason="a JSON document or ledger line nested too deeply to read")


def parse_run(run_dir: Path, path: str, hashes: dict[str, str | None], blobs: dict[str, bytes | None],
              ledger_lines: list[tuple[int, bytes, bool]], limits: CatalogueSettings) -> RunRecord:
    documents = {}
    for name, schema in ((MANIFEST_NAME, "manifest"), (METADATA_NAME, "metadata")):
        documents[name] = datafiles.decode_json(blobs[name], run_dir / name)
        datafiles.validate(documents[name], schema, str(run_dir / name))
    manifest, metadata = documents[MANIFEST_NAME], documents[METADATA_NAME]
    identity = run_identity(manifest, f"{run_dir / 'manifest.json'}")
    if f"run-{identity.run_id}" != run_dir.name:
        raise BadInput("folder name does not match manifest run_id")
    if impossible := above_roofline(metadata, limits.roofline_tolerance):
        raise BadInput(f"decode faster than the memory bandwidth allows ({'; '.join(impossible)}; "
                       f"tolerance {limits.roofline_tolerance:g}x): never catalogued")
    label = None
    if blobs[HARDWARE_NAME] is not None:
        hardware_file = run_dir / HARDWARE_NAME
        label, _ = hardware_class(Hardware.from_dict(datafiles.decode_json(blobs[HARDWARE_NAME], hardware_file),
                                                     str(hardware_file)))
    entry = catalogue_entry(run_dir, manifest, metadata)
    records = ledger_records(ledger_lines, run_dir / LEDGER_NAME)
    rows = run_rows(path, manifest, metadata, records, entry["completeness"], label)
    escapes = any(b"\\ud" in data.lower() for data in [*(b for b in blobs.values() if b), *(line for _, line, _ in ledger_lines)])
    if escapes and not _unicode_text([entry, rows]):
        raise BadInput("a \\u escape that is not Unicode text (a lone surrogate) in manifest.json, metadata.json or run.jsonl")
    return RunRecord(path, hashes, entry, tuple(rows), cells=tuple(cell_summaries(rows)))


def _unicode_text(document: Any) -> bool:
    """Whether every string in it is text a file can hold: a lone surrogate (`\\ud800`) is valid JSON, not text."""
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def ledger_records(lines: list[tuple[int, bytes, bool]], source: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) of the ledger's `quality` and `agent_run` lines. A line that does not
    parse refuses the run, except a torn last line (a crash mid-write), which the ledger drops too."""
    found = []
    for index, (number, line, whole) in enumerate(lines):
        record = ledger_line(line, whole, f"{source} (line {number}): not valid JSON: {{}}")
        if isinstance(record, dict) and ledger_kind(record):
            found.append((number, record))
    return found
