"""Parquet export of the catalogue's rows, and SQL over it, with DuckDB.

Why DuckDB: one self-contained wheel with no dependencies that both writes Parquet and runs SQL,
so `weeyuga catalogue --query` needs nothing else; pyarrow would write Parquet but could not run the
maintainers' queries. Analysts need neither: the export is plain Parquet
(`SELECT … FROM 'catalogue.parquet/*.parquet'` in DuckDB, `pandas.read_parquet`, polars, Spark).

The export is a folder of EXPORT_SHARDS files, `rows-NN.parquet`, each holding the rows of the runs
whose path hashes to it, in catalogue order: adding a run rewrites one shard, not the whole export.
Columns and their meaning: rows.COLUMNS.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from orchestrator.publish.catalogue.index import EXPORT_SHARDS, CatalogueIndex
from orchestrator.publish.catalogue.rows import COLUMNS
from orchestrator.core.errors import BadInput, os_failure

QUERY_TABLE = "catalogue"  # what --query's SQL selects from


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def shard_file(export_dir: Path, shard: int) -> Path:
    return export_dir / f"rows-{shard:02d}.parquet"


def export_glob(export_dir: Path) -> str:
    return str(export_dir / "rows-*.parquet")


def write_export(export_dir: Path, index: CatalogueIndex, dirty_shards: frozenset[int]) -> int:
    """Rewrite the dirty shards and any that are missing; returns how many were written."""
    try:
        export_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_failure(export_dir, exc) from None
    todo = sorted(s for s in range(EXPORT_SHARDS) if s in dirty_shards or not shard_file(export_dir, s).is_file())
    columns = "{" + ", ".join(f"{sql_string(name)}: {sql_string(kind)}" for name, kind, _ in COLUMNS) + "}"
    with contextlib.closing(duckdb.connect()) as db:
        for shard in todo:
            target = shard_file(export_dir, shard)
            staging, written = target.with_name(f".{target.name}.ndjson.tmp"), target.with_name(f".{target.name}.tmp")
            try:
                with open(staging, "w", encoding="utf-8") as fh:
                    fh.writelines(index.shard_rows(shard))
                db.execute(f"COPY (SELECT * FROM read_json({sql_string(str(staging))}, columns = {columns}, "
                           f"format = 'newline_delimited', maximum_object_size = 1073741824)) "
                           f"TO {sql_string(str(written))} (FORMAT parquet, COMPRESSION zstd)")
                os.replace(written, target)
            except OSError as exc:
                raise os_failure(target, exc) from None
            finally:
                for leftover in (staging, written):
                    with contextlib.suppress(OSError):
                        leftover.unlink(missing_ok=True)
    return len(todo)


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def query(export_dir: Path, sql: str, exclude_contended: bool = False) -> QueryResult:
    """Run a maintainer's SQL over the export (as table `catalogue`, without the rows of contended
    phases when asked). The rows are loaded into memory first and file access is then switched off,
    so the SQL can read or write nothing else."""
    where = " WHERE contended IS NOT TRUE" if exclude_contended else ""
    with contextlib.closing(duckdb.connect()) as db:
        db.execute(f"CREATE TABLE {QUERY_TABLE} AS SELECT * FROM read_parquet({sql_string(export_glob(export_dir))}){where}")
        db.execute("SET enable_external_access = false")
        db.execute("SET lock_configuration = true")
        try:
            cursor = db.execute(sql)
            columns = [d[0] for d in cursor.description or []]
            return QueryResult(columns, cursor.fetchall() if columns else [])
        except duckdb.Error as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInput(f"--query: {first_line}") from None


def render_table(result: QueryResult) -> str:
    """A plain text table: a header, a rule, one line a row, numbers to the right."""
    cells = [[_cell(v) for v in row] for row in result.rows]
    widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(result.columns)]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in result.rows) and result.rows
               for i in range(len(result.columns))]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(result.columns), line(["-" * w for w in widths])] + [line(row) for row in cells]
    return "\n".join(out) + f"\n({len(result.rows)} row{'s' if len(result.rows) != 1 else ''})\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.0f}"
    return " ".join(str(value).split())  # a newline inside a value would break the table
