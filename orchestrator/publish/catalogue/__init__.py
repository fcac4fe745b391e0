"""An index of every submitted run: deterministic, incremental, and cheap at 100,000 runs.

Reads manifest.json, metadata.json and hardware.json of each `submissions/<handle>/<tag>/run-<id>/`,
and from run.jsonl (streamed) only the `quality` and `agent_run` lines; skips EXAMPLE, and lists
invalid runs with the reason instead of stopping. Contributed folders are hostile: each is checked by
runfolder and read with datafiles' strict readers and bounded limits before anything is parsed; a
run whose decode rate is above its memory-bandwidth roofline is refused. Comparable runs' robust
outliers are marked (outliers.py).

`update_catalogue` keeps an index (index.py) of what each run folder contributed, keyed by the
files' hashes, so a rebuild re-reads only new or changed runs and drops removed ones; its outputs
are the Parquet export (export.py), append-only, and catalogue.json, a bounded summary (counts,
invalid runs, where the export is). Both equal what a full rebuild writes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core import datafiles
from orchestrator.core.errors import os_failure
from orchestrator.core.urls import strip_url_credentials
from orchestrator.publish.catalogue.index import CatalogueIndex
from orchestrator.core.atomic import check_replaceable, write_json_atomic
from orchestrator.publish.catalogue.outliers import outlier_marks
from orchestrator.publish.catalogue.runs import CATALOGUE_SCHEMA, GENERATED_BY, catalogue_entry, read_run, run_folders
from orchestrator.publish.catalogue.settings import settings

__all__ = ["CatalogueResult", "build_catalogue", "catalogue_entry", "read_run", "run_folders",
           "update_catalogue"]


@dataclass(frozen=True)
class CatalogueResult:
    out: Path
    export_dir: Path
    index_file: Path
    counts: dict[str, int]
    invalid: list[dict[str, str]]  # the first profiles/catalogue.yaml `invalid_listed` of them
    reread: int  # run folders parsed this time (new or changed)
    unchanged: int  # run folders taken from the index
    dropped: int  # run folders gone since the last build
    files_written: int  # export files written or rewritten


def update_catalogue(root: Path, out: Path, export_dir: Path | None = None, index_file: Path | None = None,
                     rescan: bool = False) -> CatalogueResult:
    """Bring catalogue.json and the Parquet export (default: `<out stem>.parquet/` beside it) up to date
    with the submissions folder, re-reading only the run folders that are new or changed since the
    index (default: `<out stem>.index.sqlite`) last saw them (`rescan`: also those with a file edited
    in place; index.py)."""
    if not out.parent.is_dir():  # before the index is opened beside it
        raise os_failure(out, FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)))
    check_replaceable(out)
    export_dir = export_dir or out.with_name(out.stem + ".parquet")
    index_file = index_file or out.with_name(out.stem + ".index.sqlite")
    check_replaceable(index_file)

    with CatalogueIndex.open(index_file, root) as index:
        change = index.refresh(export_dir, rescan)
        try:
            if change.changed or not index.output_current(out):
                summary = index.summary(export_dir)
                write_json_atomic(out, summary)
                index.wrote_output(out)
            else:  # the summary this index wrote, untouched: no scan of the index for its counts
                summary = datafiles.read_json(out)
            index.commit()  # only once the outputs are written: a failure above re-reads those runs next time
        except BaseException:
            for path in change.new_files:
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            raise
        for path in change.superseded:  # after the commit: until then the index still lists them
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
    return CatalogueResult(out, export_dir, index_file, summary["counts"], summary["invalid"], change.reread,
                           change.unchanged, change.dropped, change.files_written)


def build_catalogue(root: Path) -> dict[str, Any]:
    """The whole catalogue as one document, from scratch and in memory: the summary, and every run's
    entry with its cells' outlier marks. For a handful of runs (tests, `rules suggest`); at crowd scale
    the export is the catalogue."""
    records = [record for entry in run_folders(root).values() if (record := read_run(Path(entry.path))) is not None]
    valid = sorted((r for r in records if r.entry is not None), key=lambda r: (r.sort_key, r.path))
    invalid = sorted((r for r in records if r.entry is None), key=lambda r: r.path.split("/"))
    groups: dict[str, dict[tuple[str, str | None], float]] = {}
    for record in valid:
        for cell in record.cells:
            if cell.decode_rate is not None:
                groups.setdefault(cell.group_key, {})[(record.path, cell.cell_id)] = cell.decode_rate
    marks = {member: reason for rates in groups.values() for member, reason in outlier_marks(rates, settings().outliers).items()}
    runs = [record.entry | {"outliers": [{"cell_id": cell_id, "reason": reason} for (path, cell_id), reason in marks.items()
                                         if path == record.path]} for record in valid]
    by = [run["completeness"] for run in runs]
    counts = {"runs": len(runs), "complete": by.count("complete"), "partial": by.count("partial"),
              "invalid": len(invalid), "failed": by.count("failed"), "outliers": len(marks)}
    document = {"schema_version": CATALOGUE_SCHEMA, "generated_by": GENERATED_BY, "counts": counts,
                "invalid": [{"path": r.path, "reason": r.invalid_reason} for r in invalid], "runs": runs}
    return json.loads(strip_url_credentials(json.dumps(document, ensure_ascii=False)))
