"""An index of every submitted run: deterministic, incremental, and cheap at tens of thousands of runs.

Reads manifest.json, metadata.json and hardware.json of each `submissions/<handle>/<tag>/run-<id>/`,
and from run.jsonl only the `quality` and `agent_run` lines; skips EXAMPLE, and lists invalid runs
with the reason instead of stopping. Contributed folders are hostile: each is checked by runfolder
and read with datafiles' strict readers before anything is parsed.

`update_catalogue` keeps an index (index.py) of what each run folder contributed, keyed
by the files' hashes, so a rebuild re-reads only new or changed runs and drops removed ones; its
outputs are catalogue.json and the Parquet export (export.py), both equal to a full rebuild.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core.errors import os_failure
from orchestrator.publish.catalogue.index import CatalogueIndex
from orchestrator.publish.catalogue.runs import catalogue_entry, read_run, run_folders
from orchestrator.core.atomic import write_text_atomic

__all__ = ["CatalogueResult", "build_catalogue", "catalogue_entry", "read_run", "run_folders", "update_catalogue"]


@dataclass(frozen=True)
class CatalogueResult:
    out: Path
    export_dir: Path
    counts: dict[str, int]
    invalid: list[dict[str, str]]
    reread: int  # run folders parsed this time (new or changed)
    unchanged: int  # run folders taken from the index
    dropped: int  # run folders gone since the last build
    shards_written: int


def build_catalogue(root: Path) -> dict[str, Any]:
    """The whole catalogue as a document, from scratch (an index in memory)."""
    with CatalogueIndex.open(None, root) as index:
        index.refresh()
        return index.catalogue()


def update_catalogue(root: Path, out: Path, export_dir: Path | None = None, index_file: Path | None = None) -> CatalogueResult:
    """Bring catalogue.json and the Parquet export (default: `<out stem>.parquet/` beside it) up to date
    with the submissions folder, re-reading only the run folders that are new or changed since the
    index (default: `<out stem>.index.sqlite`) last saw them."""
    from orchestrator.publish.catalogue.export import write_export  # deferred: duckdb costs start-up

    if not out.parent.is_dir():  # before the index is opened beside it
        raise os_failure(out, FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)))
    export_dir = export_dir or out.with_name(out.stem + ".parquet")
    index_file = index_file or out.with_name(out.stem + ".index.sqlite")

    with CatalogueIndex.open(index_file, root) as index:
        change = index.refresh()
        if change.changed or not index.output_current(out):
            write_text_atomic(out, index.catalogue_text())
            index.wrote_output(out)
        written = write_export(export_dir, index, change.dirty_shards)
        index.commit()  # only once both outputs are written: a failure above re-reads those runs next time
        counts, invalid = index.counts(), index.invalid()
    return CatalogueResult(out, export_dir, counts, invalid, change.reread, change.unchanged, change.dropped, written)
