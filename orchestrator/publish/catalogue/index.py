"""The catalogue's index: what each run folder contributed, how to tell that it changed, and which
Parquet file of the export holds its rows.

An SQLite file (the standard library's) holds one row per run folder (its input hashes, invalid
reason and export file) and one per run cell (its outlier group, decode rate, leaderboard row and
outlier mark): a few kilobytes a run, never the run's rows. Contributed run folders are append-only (a
pull request adds a folder and changes nothing else: the review workflow refuses the rest), so a refresh
looks for change one level up: it stats each device folder (`<handle>/<tag>/`, whose times change when a
run folder in it is added, removed, renamed or replaced) and lists only those that changed, comparing
each of their run folders' stat signature (inode and times: an entry added, removed or replaced in it)
with the stored one. A pass over 100,000 unchanged runs is a few thousand system calls, not 100,000
(one stat costs microseconds on an overlay file system). With `rescan`, every device folder is listed
and each run folder's input files are stat'ed too, which finds a file changed inside a run folder of an
unchanged device folder, or edited in place. Only where a signature differs are the files read and hashed, and only
where a hash differs is the run parsed again. New and changed runs' rows go to new export files
(export.py); a file that still holds a removed or changed run, or a run cell whose outlier mark
changed, is rewritten; small files are merged when they pile up. Anything the index cannot vouch
for (another submissions folder, another weeyuga version or row format, a damaged index, an
export file that is missing or not the one it wrote) is discarded and rebuilt: it is a cache,
never a source of truth.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import json
import multiprocessing
import os
import signal
import sqlite3
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from orchestrator.core.errors import BadInput, WeeyugaError, os_failure
from orchestrator.core.procs import die_with_parent
from orchestrator.core.urls import strip_url_credentials
from orchestrator.publish.catalogue import export
from orchestrator.publish.catalogue.outliers import outlier_marks
from orchestrator.publish.catalogue.rows import COLUMNS, PAGE_COLUMNS
from orchestrator.publish.catalogue.runs import (CATALOGUE_SCHEMA, GENERATED_BY, INPUTS, RunRecord, device_folders, read_run,
                                                 runs_in)
from orchestrator.publish.catalogue.settings import CatalogueSettings, settings

PARALLEL_FROM = 1000  # runs to read before worker processes pay for their start (about a CPU second)
TABLES = ("meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
          "runs (path TEXT PRIMARY KEY, signature INTEGER NOT NULL, files_signature TEXT NOT NULL, hashes TEXT NOT NULL, "
          "batch INTEGER, "
          "invalid_reason TEXT, completeness TEXT)",
          "cells (path TEXT NOT NULL, cell TEXT NOT NULL, group_key TEXT NOT NULL, decode_rate REAL, page_row TEXT, "
          "page_row_uncontended TEXT, mark TEXT, written_mark TEXT, PRIMARY KEY (path, cell))",
          "batches (id INTEGER PRIMARY KEY, runs INTEGER NOT NULL, signature TEXT NOT NULL)",
          "devices (path TEXT PRIMARY KEY, signature INTEGER NOT NULL)")
INDEXES = ("runs_by_batch ON runs (batch)", "cells_by_group ON cells (group_key)")
# A different version, catalogue schema, set of columns or table layout makes every stored entry suspect.
INDEX_FORMAT = json.dumps(["index-3", GENERATED_BY, CATALOGUE_SCHEMA, [name for name, _, _ in COLUMNS], PAGE_COLUMNS, TABLES])


def folder_signature(entry: os.DirEntry) -> int:
    """A run folder's inode and times, which change when an entry in it is added, removed or replaced,
    as one integer (Python's hash of ints is the same in every process; 0 when it is gone)."""
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return 0
    return hash((st.st_mode, st.st_ino, st.st_mtime_ns, st.st_ctime_ns))


def signature(path: str, inputs: tuple[str, ...] = INPUTS) -> str:
    """Cheap evidence that nothing in a run folder (or, with no inputs, a file) changed: lstat of it
    and of each input. Stored as a hash of the numbers: formatting 100,000 stat results costs more
    than the system calls. (Python's hash of a tuple of ints is the same in every process; a
    Python that hashes differently only makes the next refresh hash the files again.)"""
    facts = []
    for target in (path, *(f"{path}/{name}" for name in inputs)):
        try:
            st = os.lstat(target)
        except OSError:
            facts.append((0,))  # absent (not None: None's hash differs between processes before Python 3.12)
            continue
        facts.append((st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return str(hash(tuple(facts)))


@dataclass(frozen=True)
class StoredRun:
    """What the index keeps of one run folder, and its export rows (JSON text, one row a line) on
    their way to an export file."""

    path: str
    hashes: str
    invalid_reason: str | None
    completeness: str | None
    rows: str
    cells: list[tuple[str, str, float | None, str | None, str | None]]  # cell, group, rate, page rows


def _text(value: Any) -> str:
    return strip_url_credentials(json.dumps(value, ensure_ascii=False, allow_nan=False))


def stored_run(record: RunRecord) -> StoredRun:
    rows = strip_url_credentials("".join(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n" for row in record.rows))
    cells = [(c.cell_id or "", c.group_key, c.decode_rate, _text(c.page_row) if c.page_row else None,
              _text(c.page_row_uncontended) if c.page_row_uncontended else None) for c in record.cells]
    # a reason quotes what it refused, which may not be text a file can hold either
    reason = record.invalid_reason.encode("utf-8", "backslashreplace").decode() if record.invalid_reason else None
    return StoredRun(record.path, json.dumps(record.hashes), reason,
                     (record.entry or {}).get("completeness"), rows, cells)


def read_stored(job: tuple[str, Path, dict | None]) -> StoredRun | None:
    _, run_dir, known_hashes = job
    record = read_run(run_dir, known_hashes)
    return stored_run(record) if record is not None else None


def read_for_index(todo: list[tuple[str, Path, dict | None]]) -> Iterator[StoredRun | None]:
    """read_stored for each job, in worker processes when there are many (parsing and validating is
    CPU-bound: a full build spreads over every core); in order either way."""
    workers = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8)
    if len(todo) < PARALLEL_FROM or workers < 2:
        yield from map(read_stored, todo)
        return
    # spawn, not fork: the parent holds an SQLite connection and may hold DuckDB's threads
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=start_worker)
    try:
        yield from pool.map(read_stored, todo, chunksize=64)
    finally:  # on SIGTERM or an error too: no queued chunk is started, the running ones end
        pool.shutdown(wait=True, cancel_futures=True)


def start_worker() -> None:
    """In a worker: Ctrl-C and SIGTERM are the parent's to handle (it stops the pool; no traceback
    per worker), and a parent that is killed takes its workers with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    die_with_parent()


@dataclass
class Refresh:
    reread: int = 0
    unchanged: int = 0
    dropped: int = 0
    files_written: int = 0  # export files written or rewritten
    new_files: list[Path] = field(default_factory=list)  # written this time: removed if the build fails
    superseded: list[Path] = field(default_factory=list)  # files to remove once the index is committed

    @property
    def changed(self) -> bool:
        return bool(self.reread or self.dropped or self.files_written)


@dataclass(frozen=True)
class Walk:
    found: dict[str, int]  # run folder -> its signature, in the device folders listed this time
    known: dict[str, int]  # what the index holds for the runs of those and of the device folders gone
    devices: list[tuple[str, int]]  # (device folder, its signature) listed this time
    gone_devices: list[str]


# SQLite's result codes by name (Python 3.11+), or the words of its message (3.10)
SQLITE_KINDS = {"damaged": (("SQLITE_NOTADB", "SQLITE_CORRUPT"), ("not a database", "malformed")),
                "full": (("SQLITE_FULL",), ("disk is full",)),
                "locked": (("SQLITE_BUSY", "SQLITE_LOCKED"), ("is locked",))}


def sqlite_kind(exc: sqlite3.Error) -> str | None:
    name, text = getattr(exc, "sqlite_errorname", ""), str(exc)
    return next((kind for kind, (names, words) in SQLITE_KINDS.items()
                 if name.startswith(names) or any(word in text for word in words)), None)


def sqlite_failure(where: Path | str, exc: sqlite3.Error) -> WeeyugaError:
    """One line for an SQLite error that is not damage: a full disk, or a lock held by another program."""
    kind = sqlite_kind(exc)
    if kind == "full":
        return os_failure(where, OSError(errno.ENOSPC, str(exc)))
    if kind == "locked":
        return BadInput(f"{where}: the catalogue index is locked by another program; try again when it is done")
    return WeeyugaError(f"{where}: the catalogue index failed: {exc}")


@contextmanager
def exclusive(lock_file: Path, wait_s: float) -> Iterator[None]:
    """One catalogue build at a time per index: a second waits for the first (up to `wait_s`)."""
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        raise os_failure(lock_file, exc) from None
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BadInput(f"{lock_file}: another catalogue build has held this index for over {wait_s:g} s; "
                                   "try again when it ends") from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # releases the lock


class CatalogueIndex:
    def __init__(self, db: sqlite3.Connection, root: Path, fresh: bool, limits: CatalogueSettings):
        self.db, self.root, self.fresh, self.limits = db, root, fresh, limits

    @classmethod
    @contextmanager
    def open(cls, index_file: Path, root: Path) -> Iterator["CatalogueIndex"]:
        """The index for `root`, held exclusively; changes are kept only on commit()."""
        limits = settings()
        with exclusive(index_file.with_name(index_file.name + ".lock"), limits.lock_wait_s):
            db = cls._connect(index_file, root)
            try:
                fresh = db.execute("SELECT value FROM meta WHERE key = 'root'").fetchone() is None
                if fresh:
                    db.executemany("INSERT INTO meta VALUES (?, ?)", [("format", INDEX_FORMAT), ("root", str(root.resolve()))])
                yield cls(db, root, fresh, limits)
            except sqlite3.Error as exc:
                raise sqlite_failure(index_file, exc) from None
            finally:
                with contextlib.suppress(sqlite3.Error):
                    db.rollback()
                db.close()

    @staticmethod
    def _connect(index_file: Path, root: Path) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(index_file, timeout=5)
        except sqlite3.Error as exc:
            raise os_failure(index_file, OSError(errno.EIO, f"cannot open the catalogue index ({exc})")) from None
        try:
            CatalogueIndex._schema(db)
            stored = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('format', 'root')"))
            if stored and stored != {"format": INDEX_FORMAT, "root": str(root.resolve())}:
                for table in TABLES:
                    db.execute(f"DROP TABLE IF EXISTS {table.split()[0]}")
                CatalogueIndex._schema(db)
            return db
        except sqlite3.DatabaseError as exc:
            db.close()
            if sqlite_kind(exc) == "damaged":  # not a lock, not a full disk: start again
                index_file.unlink()
                return CatalogueIndex._schema(sqlite3.connect(index_file, timeout=5))
            raise sqlite_failure(index_file, exc) from None

    @staticmethod
    def _schema(db: sqlite3.Connection) -> sqlite3.Connection:
        for table in TABLES:
            db.execute(f"CREATE TABLE IF NOT EXISTS {table}")
        for index in INDEXES:
            db.execute(f"CREATE INDEX IF NOT EXISTS {index}")
        return db

    # Refresh -------------------------------------------------------------------------

    def refresh(self, export_dir: Path, rescan: bool = False) -> Refresh:
        """Bring the index and the export files in `export_dir` up to date with the submissions folder.
        Files written are listed in the result: the caller removes `new_files` if it cannot commit."""
        result = Refresh()
        try:
            self._refresh(export_dir, result, rescan)
        except BaseException:  # a failure, SIGTERM or Ctrl-C: nothing this build wrote is left behind
            for path in result.new_files:
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            raise
        return result

    def _refresh(self, export_dir: Path, result: Refresh, rescan: bool) -> None:
        touched = self._forget_damaged_batches(export_dir, result)
        walk = self._walk(rescan)
        found, known = walk.found, walk.known
        gone = known.keys() - found.keys()
        stale = set(self._batches(gone).values())
        touched |= self._forget(gone)
        # the set difference runs in C
        differ = {path for path, _ in found.items() - known.items()}
        files_now: dict[str, str] = {}  # each input file's stat, taken once
        if rescan:
            files_known = dict(self.db.execute("SELECT path, files_signature FROM runs"))
            files_now = {path: signature(f"{self.root}/{path}") for path in found}
            differ |= {path for path, sig in files_now.items() if sig != files_known.get(path)}
        # sorted: the walk's order is the file system's; the export's files are the same whatever it is
        todo = [(path, self.root / path, found[path], files_now.get(path) or signature(f"{self.root}/{path}"))
                for path in sorted(differ)]
        hashes = self._hashes([path for path, *_ in todo])
        batches = self._batches([path for path, *_ in todo])
        writer = export.BatchWriter(export_dir, self._next_batch(), self.limits.batch_runs)
        try:
            for stored in read_for_index([(path, run_dir, hashes.get(path)) for path, run_dir, *_ in todo]):
                if stored is None:  # touched, same bytes
                    continue
                result.reread += 1
                if stored.path in known:  # changed: what it was goes
                    stale.add(batches.get(stored.path))
                    touched |= self._forget([stored.path])
                batch = writer.add(stored.rows) if stored.rows else None
                self.db.execute("INSERT INTO runs VALUES (?, 0, '', ?, ?, ?, ?)",
                                (stored.path, stored.hashes, batch, stored.invalid_reason, stored.completeness))
                self.db.executemany("INSERT INTO cells VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                                    [(stored.path, *cell) for cell in stored.cells])
                touched |= {cell[1] for cell in stored.cells}
            written = writer.close()
        except BaseException:
            writer.abort()
            raise
        result.new_files += [file for _, _, file in written]
        for batch, runs, file in written:
            self.db.execute("INSERT INTO batches VALUES (?, ?, ?)", (batch, runs, export.file_signature(file)))
        self.db.executemany("UPDATE runs SET signature = ?, files_signature = ? WHERE path = ?",
                            [(sig, files_sig, path) for path, _, sig, files_sig in todo])
        result.files_written += len(written)
        self.db.executemany("DELETE FROM devices WHERE path = ?", [(prefix,) for prefix in walk.gone_devices])
        self.db.executemany("INSERT OR REPLACE INTO devices VALUES (?, ?)", walk.devices)
        runs = self.db.execute("SELECT count(*) FROM runs").fetchone()[0]
        result.dropped, result.unchanged = len(gone), runs - result.reread
        if self.fresh or touched:
            self._mark_outliers(None if self.fresh else touched)
            stale |= self._batches_with_new_marks(None if self.fresh else touched)
        self._rewrite(export_dir, stale - {None}, result)
        self._compact(export_dir, result)
        # what the index no longer lists: damaged, emptied or merged files, and a killed build's leftovers
        listed = {export.batch_file(export_dir, batch) for (batch,) in self.db.execute("SELECT id FROM batches")}
        result.superseded += [file for file in export.files_in(export_dir) if file not in listed]

    def _walk(self, rescan: bool) -> Walk:
        """The run folders of each device folder that is new or changed since the last build (with
        `rescan`, of every one), and what the index holds for those and for device folders that are
        gone. A device folder's signature is taken before it is listed: a run added meanwhile changes
        it again, for the next build."""
        devices = device_folders(self.root)
        signatures = {prefix: folder_signature(entry) for prefix, entry in devices.items()}
        stored = dict(self.db.execute("SELECT path, signature FROM devices"))
        listed = sorted(prefix for prefix, sig in signatures.items() if rescan or stored.get(prefix) != sig)
        gone_devices = sorted(stored.keys() - devices.keys())
        found: dict[str, int] = {}
        for prefix in listed:
            found.update(runs_in(devices[prefix].path, prefix, folder_signature))
        known: dict[str, int] = {}
        for prefix in [*listed, *gone_devices]:
            # every path that starts with "handle/tag/": '0' is the character after '/'
            known.update(self.db.execute("SELECT path, signature FROM runs WHERE path >= ? AND path < ?",
                                         (prefix, prefix[:-1] + "0")))
        return Walk(found, known, [(prefix, signatures[prefix]) for prefix in listed], gone_devices)

    def _batches(self, paths) -> dict[str, int | None]:
        return dict(self._of(list(paths), "batch"))

    def _hashes(self, paths: list[str]) -> dict[str, dict]:
        return {path: json.loads(hashes) for path, hashes in self._of(paths, "hashes")}

    def _of(self, paths: list[str], column: str) -> list[tuple[str, Any]]:
        """(path, column) of these runs, as the index has them."""
        found = []
        for start in range(0, len(paths), 500):
            chunk = paths[start:start + 500]
            found += self.db.execute(f"SELECT path, {column} FROM runs WHERE path IN ({', '.join('?' * len(chunk))})",
                                     chunk).fetchall()
        return found

    def _forget(self, paths) -> set[str]:
        """Drop these runs from the index; the outlier groups they were in."""
        groups = set()
        for path in paths:
            groups |= {group for (group,) in self.db.execute("SELECT group_key FROM cells WHERE path = ?", (path,))}
            self.db.execute("DELETE FROM cells WHERE path = ?", (path,))
            self.db.execute("DELETE FROM runs WHERE path = ?", (path,))
        return groups

    def _forget_damaged_batches(self, export_dir: Path, result: Refresh) -> set[str]:
        """An export file that is missing or not the one the index wrote: its runs are read again."""
        groups = set()
        for batch, stored in self.db.execute("SELECT id, signature FROM batches").fetchall():
            file = export.batch_file(export_dir, batch)
            if export.file_signature(file) != stored:
                paths = [path for (path,) in self.db.execute("SELECT path FROM runs WHERE batch = ?", (batch,))]
                groups |= self._forget(paths)
                # their device folders are listed again, so that these runs are read again
                self.db.executemany("DELETE FROM devices WHERE path = ?",
                                    [(prefix,) for prefix in {path.rsplit("/", 1)[0] + "/" for path in paths}])
                self.db.execute("DELETE FROM batches WHERE id = ?", (batch,))
        return groups

    def _next_batch(self) -> int:
        return (self.db.execute("SELECT max(id) FROM batches").fetchone()[0] or 0) + 1

    def _mark_outliers(self, groups: set[str] | None) -> None:
        """Mark the outliers of these groups (None: of every group, in one pass) afresh."""
        rated = ("SELECT group_key, path, cell, decode_rate FROM cells JOIN runs USING (path) "
                 "WHERE decode_rate IS NOT NULL AND completeness IS NOT NULL")
        if groups is None:
            self.db.execute("UPDATE cells SET mark = NULL WHERE mark IS NOT NULL")
            members = self.db.execute(f"{rated} ORDER BY group_key").fetchall()
        else:
            members = []
            for group in groups:
                self.db.execute("UPDATE cells SET mark = NULL WHERE group_key = ? AND mark IS NOT NULL", (group,))
                members += self.db.execute(f"{rated} AND group_key = ?", (group,)).fetchall()
        marks = []
        for _, group_members in itertools.groupby(members, key=lambda member: member[0]):
            rates = {(path, cell): rate for _, path, cell, rate in group_members}
            marks += [(reason, path, cell) for (path, cell), reason in outlier_marks(rates, self.limits.outliers).items()]
        self.db.executemany("UPDATE cells SET mark = ? WHERE path = ? AND cell = ?", marks)

    def _batches_with_new_marks(self, groups: set[str] | None) -> set[int]:
        """Export files holding a cell (of these groups; None: of any) whose mark is not the one written."""
        changed = ("SELECT DISTINCT batch FROM cells JOIN runs USING (path) "
                   "WHERE mark IS NOT written_mark AND batch IS NOT NULL")
        if groups is None:
            return {batch for (batch,) in self.db.execute(changed)}
        return {batch for group in groups for (batch,) in self.db.execute(f"{changed} AND group_key = ?", (group,))}

    def _marks(self, batches: list[int]) -> list[tuple[str, str, str]]:
        marks = []
        for batch in batches:
            marks += self.db.execute("SELECT path, cell, mark FROM cells JOIN runs USING (path) "
                                     "WHERE batch = ? AND mark IS NOT NULL", (batch,)).fetchall()
        return marks

    def _rewrite(self, export_dir: Path, batches: set[int], result: Refresh) -> None:
        """Rewrite each export file that holds a removed or changed run, or a cell whose mark changed:
        only its current runs, with their current marks."""
        for batch in sorted(batches):
            keep = [path for (path,) in self.db.execute("SELECT path FROM runs WHERE batch = ?", (batch,))]
            file = export.batch_file(export_dir, batch)
            if not keep:
                self.db.execute("DELETE FROM batches WHERE id = ?", (batch,))
                continue
            export.rewrite([file], file, keep, self._marks([batch]))
            self._wrote(batch, len(keep), file)
            result.files_written += 1

    def _compact(self, export_dir: Path, result: Refresh) -> None:
        """Merge the small export files once more than `compact_after` of them pile up."""
        small = [batch for (batch,) in self.db.execute("SELECT id FROM batches WHERE runs < ? ORDER BY id",
                                                       (self.limits.compact_below,))]
        if len(small) <= self.limits.compact_after:
            return
        merged = self._next_batch()
        target = export.batch_file(export_dir, merged)
        sources = [export.batch_file(export_dir, batch) for batch in small]
        keep = [path for batch in small for (path,) in self.db.execute("SELECT path FROM runs WHERE batch = ?", (batch,))]
        result.new_files.append(target)
        export.rewrite(sources, target, keep, self._marks(small))
        self.db.executemany("UPDATE runs SET batch = ? WHERE batch = ?", [(merged, batch) for batch in small])
        self.db.executemany("DELETE FROM batches WHERE id = ?", [(batch,) for batch in small])
        self.db.execute("INSERT INTO batches VALUES (?, 0, '')", (merged,))
        self._wrote(merged, len(keep), target)
        result.files_written += 1

    def _wrote(self, batch: int, runs: int, file: Path) -> None:
        self.db.execute("UPDATE batches SET runs = ?, signature = ? WHERE id = ?", (runs, export.file_signature(file), batch))
        self.db.execute("UPDATE cells SET written_mark = mark WHERE path IN (SELECT path FROM runs WHERE batch = ?)", (batch,))

    def commit(self) -> None:
        self.db.commit()

    def output_current(self, out: Path) -> bool:
        """Whether `out` is the catalogue.json this index last wrote, untouched since."""
        stored = self.db.execute("SELECT value FROM meta WHERE key = 'output'").fetchone()
        return stored is not None and stored[0] == json.dumps([str(out.resolve()), signature(str(out), ())])

    def wrote_output(self, out: Path) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('output', ?)",
                        (json.dumps([str(out.resolve()), signature(str(out), ())]),))

    # Outputs --------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        by = dict(self.db.execute("SELECT coalesce(completeness, 'invalid'), count(*) FROM runs GROUP BY 1"))
        complete, partial, failed, invalid = (by.get(k, 0) for k in ("complete", "partial", "failed", "invalid"))
        outliers = self.db.execute("SELECT count(*) FROM cells WHERE mark IS NOT NULL").fetchone()[0]
        return {"runs": complete + partial + failed, "complete": complete, "partial": partial, "invalid": invalid,
                "failed": failed, "outliers": outliers}

    def invalid(self, limit: int | None = None) -> list[dict[str, str]]:
        """Invalid runs by path, the first `limit` of them."""
        stored = self.db.execute("SELECT path, invalid_reason FROM runs WHERE completeness IS NULL ORDER BY path"
                                 + (" LIMIT ?" if limit is not None else ""), (limit,) if limit is not None else ())
        return [{"path": path, "reason": reason} for path, reason in sorted(stored, key=lambda r: r[0].split("/"))]

    def summary(self, export_dir: Path) -> dict[str, Any]:
        """catalogue.json: what the catalogue holds, bounded whatever the number of runs (the runs
        themselves are in the export)."""
        counts = self.counts()
        return {"schema_version": CATALOGUE_SCHEMA, "generated_by": GENERATED_BY, "counts": counts,
                "invalid": self.invalid(self.limits.invalid_listed),
                "invalid_listed": min(counts["invalid"], self.limits.invalid_listed),
                "export": {"folder": export_dir.name, "files": export.FILE_GLOB,
                           "columns": [name for name, _, _ in COLUMNS]}}

    def page_rows(self, exclude_contended: bool) -> Iterator[list[Any]]:
        """The leaderboard's rows, pre-aggregated (rows.PAGE_COLUMNS, then the outlier reason), best
        decode rate first."""
        column = "page_row_uncontended" if exclude_contended else "page_row"
        for text, mark in self.db.execute(f"SELECT {column}, mark FROM cells JOIN runs USING (path) "
                                          f"WHERE {column} IS NOT NULL AND completeness IS NOT NULL"):
            yield json.loads(text) + [mark]
