"""Form: the folder rules, every schema, the privacy scan, and no hand edits (the report regenerated
from the ledger equals metadata.json and run.md byte for byte). The documents are read here, once;
the other checks work on what this returns."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput
from orchestrator.core.ledger import held, read_ledger, read_records
from orchestrator.core.runfolder import (HARDWARE_NAME, LEDGER_NAME, MANIFEST_NAME, METADATA_NAME, REPORT_NAME,
                                         RESPONSES_NAME, SAMPLES_NAME, check_regular_files, run_identity)
from orchestrator.publish.privacy import scan
from orchestrator.publish.report import REQUIRED_FILES, report
from orchestrator.publish.review.model import Finding, RunUnderReview, reject

CHECK = "form"
REGENERATED = (METADATA_NAME, REPORT_NAME)


def _optional_lines(path: Path) -> tuple[dict, ...] | None:
    return tuple(held(read_records(path), path)) if path.is_file() else None


def load(run_dir: Path) -> tuple[RunUnderReview | None, list[Finding]]:
    """The folder's documents, or the reasons it cannot be reviewed further."""
    try:
        check_regular_files(run_dir)
    except BadInput as exc:
        return None, [reject(CHECK, str(exc))]
    missing = [name for name in REQUIRED_FILES if not (run_dir / name).is_file()]
    if missing:
        return None, [reject(CHECK, f"missing {', '.join(missing)}: a run folder holds {', '.join(REQUIRED_FILES)}")]
    try:
        records = tuple(read_ledger(run_dir / LEDGER_NAME))
        if not records or records[0].get("type") != "meta":
            raise BadInput(f"{LEDGER_NAME}: the first line is not a meta record")
        manifest = datafiles.load(run_dir / MANIFEST_NAME, "manifest")
        identity = run_identity(manifest, MANIFEST_NAME)
        if run_dir.name != f"run-{identity.run_id}":
            raise BadInput(f"folder {run_dir.name} does not match the manifest's run id {identity.run_id}")
        if records[0].get("benchmark_run_id") != identity.run_id:
            raise BadInput(f"{LEDGER_NAME}'s run id {records[0].get('benchmark_run_id')} is not the manifest's {identity.run_id}")
        run = RunUnderReview(run_dir, datafiles.read_bytes(run_dir / LEDGER_NAME, datafiles.LEDGER_LIMIT_BYTES), records,
                             manifest, datafiles.load(run_dir / METADATA_NAME, "metadata"),
                             datafiles.load(run_dir / HARDWARE_NAME, "hardware"),
                             _optional_lines(run_dir / RESPONSES_NAME), _optional_lines(run_dir / SAMPLES_NAME))
    except BadInput as exc:
        return None, [reject(CHECK, str(exc).replace(f"{run_dir}/", ""))]
    return run, []


def check(run: RunUnderReview) -> list[Finding]:
    findings = [reject(CHECK, f"privacy: {finding}") for finding in scan(run.path)]
    return findings + hand_edits(run.path)


def hand_edits(run_dir: Path) -> list[Finding]:
    """Regenerate the report from a copy of the folder and compare it with what the folder holds."""
    with tempfile.TemporaryDirectory(prefix="weeyuga-review-") as scratch:
        copy = Path(scratch) / run_dir.name
        copy.mkdir()
        for entry in run_dir.iterdir():
            shutil.copyfile(entry, copy / entry.name)
        report(copy)
        findings = []
        for name in REGENERATED:
            held, made = (run_dir / name).read_bytes(), (copy / name).read_bytes()
            if held != made:
                line = next((n for n, (a, b) in enumerate(zip(held.split(b"\n"), made.split(b"\n")), 1) if a != b),
                            min(held.count(b"\n"), made.count(b"\n")) + 1)
                findings.append(reject(CHECK, f"{name} is not the report of this ledger (edited by hand? first "
                                              f"difference at line {line}; `weeyuga report` regenerates it)"))
        return findings
