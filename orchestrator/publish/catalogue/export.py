"""Parquet export of the catalogue's rows, and SQL over it, with DuckDB.

Why DuckDB: one self-contained wheel with no dependencies that both writes Parquet and runs SQL,
so `weeyuga catalogue --query` needs nothing else; pyarrow would write Parquet but could not run the
maintainers' queries. Analysts need neither: the export is plain Parquet
(`SELECT … FROM 'catalogue.parquet/*.parquet'` in DuckDB, pyarrow, pandas, polars, Spark, Trino).

The export is a folder of `batch-NNNNNN.parquet` files, append-only: a build that adds runs writes
their rows to new files (at most `batch_runs` runs each); a file is rewritten only when one of its
runs is removed or changed or one of its cells' outlier mark changes, and small files are merged
once they pile up (index.py decides which). Every file is written beside its final name and renamed
into place. Row order across files means nothing. Columns and their meaning: rows.COLUMNS.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core.errors import BadInput, os_failure
from orchestrator.publish.catalogue.rows import COLUMNS
from orchestrator.publish.catalogue.settings import settings

QUERY_TABLE = "catalogue"  # what --query's SQL selects from
FILE_GLOB = "batch-*.parquet"
LEFTOVERS = ("rows-*.parquet", ".batch-*.tmp")  # an older layout's files, and staging a killed build left


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def batch_file(export_dir: Path, batch: int) -> Path:
    return export_dir / f"batch-{batch:06d}.parquet"


def export_files(export_dir: Path) -> list[Path]:
    return sorted(export_dir.glob(FILE_GLOB))


def files_in(export_dir: Path) -> list[Path]:
    """Every file of ours in the folder: export files, and leftovers to clear away."""
    return export_files(export_dir) + [file for pattern in LEFTOVERS for file in sorted(export_dir.glob(pattern))]


def file_signature(file: Path) -> str:
    try:
        st = os.lstat(file)
    except OSError:
        return ""
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}" if stat.S_ISREG(st.st_mode) else ""


def _connect():
    import duckdb  # deferred: a pass with nothing to write never pays DuckDB's import

    db = duckdb.connect()
    db.execute("SET enable_progress_bar = false")  # its bar would land in the command's output
    return db


def _copy(db, select: str, target: Path, parameters: list[Any] | None = None) -> None:
    """COPY the query's rows to `target` as Parquet, written beside it and renamed into place."""
    import duckdb  # deferred, as above

    written = target.with_name(f".{target.name}.tmp")
    try:
        db.execute(f"COPY ({select}) TO {sql_string(str(written))} (FORMAT parquet, COMPRESSION zstd)", parameters)
        os.replace(written, target)
    except OSError as exc:
        raise os_failure(target, exc) from None
    except duckdb.IOException as exc:  # DuckDB's own writes: a full disk is the usual cause
        full = "space" in str(exc).lower()
        raise os_failure(target, OSError(errno.ENOSPC if full else errno.EIO, str(exc).splitlines()[0])) from None
    finally:
        with contextlib.suppress(OSError):
            written.unlink(missing_ok=True)


JSON_COLUMNS = "{" + ", ".join(f"{sql_string(name)}: {sql_string(kind)}" for name, kind, _ in COLUMNS) + "}"


class BatchWriter:
    """New runs' rows, a batch of runs to a file: staged as JSON lines, then one Parquet file."""

    def __init__(self, export_dir: Path, first_batch: int, batch_runs: int):
        self.export_dir, self.batch, self.batch_runs = export_dir, first_batch, batch_runs
        self.staging: Path | None = None
        self.fh = None
        self.runs = 0
        self.written: list[tuple[int, int, Path]] = []  # (batch, runs, file)

    def add(self, rows: str) -> int:
        """Stage one run's rows (JSON text, a row a line); the batch they will be in."""
        if self.fh is None:
            try:
                self.export_dir.mkdir(parents=True, exist_ok=True)
                self.staging = self.export_dir / f".batch-{self.batch:06d}.ndjson.tmp"
                self.fh = open(self.staging, "w", encoding="utf-8")
            except OSError as exc:
                raise os_failure(self.export_dir, exc) from None
        try:
            self.fh.write(rows)
        except OSError as exc:
            raise os_failure(self.staging, exc) from None
        self.runs += 1
        batch = self.batch
        if self.runs >= self.batch_runs:
            self._flush()
        return batch

    def _flush(self) -> None:
        target = batch_file(self.export_dir, self.batch)
        try:
            self.fh.close()
            with contextlib.closing(_connect()) as db:
                _copy(db, f"SELECT * FROM read_json({sql_string(str(self.staging))}, columns = {JSON_COLUMNS}, "
                          "format = 'newline_delimited', maximum_object_size = 1073741824)", target)
        except OSError as exc:
            raise os_failure(self.staging, exc) from None
        finally:
            self.fh = None
            with contextlib.suppress(OSError):
                self.staging.unlink(missing_ok=True)
        self.written.append((self.batch, self.runs, target))
        self.batch, self.runs = self.batch + 1, 0

    def close(self) -> list[tuple[int, int, Path]]:
        if self.fh is not None:
            self._flush()
        return self.written

    def abort(self) -> None:
        """A failure or signal: the staging file and every file written go."""
        if self.fh is not None:
            with contextlib.suppress(OSError):
                self.fh.close()
            self.fh = None
        for leftover in [self.staging] + [file for _, _, file in self.written]:
            if leftover is not None:
                with contextlib.suppress(OSError):
                    leftover.unlink(missing_ok=True)


def rewrite(sources: list[Path], target: Path, keep: list[str], marks: list[tuple[str, str, str]]) -> None:
    """Write `target` from the rows in `sources` of the runs in `keep`, each row's outlier columns set
    from `marks` ((run path, cell id or "", reason) of the marked cells)."""
    paths, cells, reasons = (list(column) for column in zip(*marks)) if marks else ([], [], [])
    with contextlib.closing(_connect()) as db:
        db.execute("CREATE TEMP TABLE keep AS SELECT unnest(?::VARCHAR[]) AS path", [keep])
        db.execute("CREATE TEMP TABLE marks AS SELECT unnest(?::VARCHAR[]) AS path, unnest(?::VARCHAR[]) AS cell, "
                   "unnest(?::VARCHAR[]) AS reason", [paths, cells, reasons])
        files = "[" + ", ".join(sql_string(str(source)) for source in sources) + "]"
        _copy(db, f"SELECT c.* REPLACE (m.reason IS NOT NULL AS outlier, m.reason AS outlier_reason) "
                  f"FROM read_parquet({files}) c LEFT JOIN marks m ON m.path = c.run_path AND m.cell = coalesce(c.cell_id, '') "
                  f"WHERE c.run_path IN (SELECT path FROM keep)", target)


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def query(export_dir: Path, sql: str, exclude_contended: bool = False) -> QueryResult:
    """Run a maintainer's SQL over the export (as table `catalogue`, without the rows of contended
    phases when asked). The rows are loaded into memory first and file access is then switched off,
    so the SQL can read or write nothing else; it runs under profiles/catalogue.yaml's memory, thread
    and time bounds."""
    import duckdb  # deferred, as above

    limits = settings()
    with contextlib.closing(_connect()) as db:
        db.execute(f"SET memory_limit = '{limits.query_memory_limit_mb}MiB'")
        db.execute(f"SET threads = {limits.query_threads}")
        statements = _statements(db, sql)
        files = export_files(export_dir)
        if files:
            where = " WHERE contended IS NOT TRUE" if exclude_contended else ""
            listed = "[" + ", ".join(sql_string(str(file)) for file in files) + "]"
            db.execute(f"CREATE TABLE {QUERY_TABLE} AS SELECT * FROM read_parquet({listed}){where}")
        else:
            db.execute(f"CREATE TABLE {QUERY_TABLE} ({', '.join(f'{name} {kind}' for name, kind, _ in COLUMNS)})")
        db.execute("SET enable_external_access = false")
        db.execute("SET lock_configuration = true")
        timer = threading.Timer(limits.query_timeout_s, db.interrupt)
        timer.start()
        try:
            cursor = None
            for statement in statements:
                cursor = db.execute(statement)
            columns = [d[0] for d in (cursor.description if cursor is not None else None) or []]
            return QueryResult(columns, cursor.fetchall() if columns else [])
        except duckdb.InterruptException:
            raise BadInput(f"--query: stopped after {limits.query_timeout_s:g} s (profiles/catalogue.yaml query.timeout_s)") from None
        except duckdb.Error as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInput(f"--query: {first_line}") from None
        finally:
            timer.cancel()


def _statements(db, sql: str) -> list[Any]:
    """The SQL's statements, or one line when there are none (blanks and comments only) or it does not parse."""
    import duckdb  # deferred, as above

    try:
        statements = db.extract_statements(sql)
    except duckdb.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"--query: {first_line}") from None
    if not statements:
        raise BadInput("--query: no SQL statement in it (only blanks or comments)")
    return statements


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
