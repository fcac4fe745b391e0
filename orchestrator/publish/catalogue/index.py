"""The catalogue's index: what each run folder contributed, and how to tell that it changed.

An SQLite file (the standard library's; one row per run folder) holds each run's input hashes,
its catalogue entry and its export rows as JSON text. A refresh walks the submissions folder and
compares each run folder's stat signature (the folder's own inode and times, which change when an
entry is added, removed or replaced, and each input file's inode, size and times) with the stored
one; only where it differs are the files read and hashed, and only where a hash differs is the run
parsed again. Folders no longer there are dropped. Anything the index cannot vouch for (another
submissions folder, another weeyuga version or row format, a damaged file) is discarded and rebuilt:
it is a cache, never a source of truth.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import signal
import sqlite3
import zlib
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from orchestrator.publish.catalogue.runs import CATALOGUE_SCHEMA, GENERATED_BY, INPUT_LIMITS, RunRecord, read_run, run_folders
from orchestrator.publish.catalogue.rows import COLUMNS
from orchestrator.core.errors import os_failure
from orchestrator.core.urls import strip_url_credentials
from orchestrator.core.procs import die_with_parent

PARALLEL_FROM = 1000  # runs to read before worker processes pay for their start (about a CPU second)
EXPORT_SHARDS = 16  # the export is split by run so that adding one run rewrites one shard
# Code-point order (SQLite compares UTF-8 bytes), as Python sorts the same strings.
CATALOGUE_ORDER = "ORDER BY device_tag, submitter_handle, started_at_utc, run_id, path"
# What every refresh reads (runs) apart from what only the outputs read (entries, export rows),
# so that walking 20,000 runs reads kilobytes a run less.
TABLES = ("meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
          "runs (path TEXT PRIMARY KEY, signature TEXT NOT NULL, hashes TEXT NOT NULL, shard INTEGER NOT NULL, "
          "device_tag TEXT, submitter_handle TEXT, started_at_utc TEXT, run_id TEXT, invalid_reason TEXT, completeness TEXT)",
          "entries (path TEXT PRIMARY KEY, entry TEXT NOT NULL)",
          "export_rows (path TEXT PRIMARY KEY, rows TEXT NOT NULL)")
# A different version, catalogue schema, set of columns or table layout makes every stored entry suspect.
INDEX_FORMAT = json.dumps([GENERATED_BY, CATALOGUE_SCHEMA, [name for name, _, _ in COLUMNS], EXPORT_SHARDS, TABLES])


def shard_of(path: str) -> int:
    return zlib.crc32(path.encode()) % EXPORT_SHARDS


def signature(path: str, inputs: tuple[str, ...] = tuple(INPUT_LIMITS)) -> str:
    """Cheap evidence that nothing in a run folder (or, with no inputs, a file) changed: lstat of it
    and of each input. Stored as a hash of the numbers: formatting 100,000 stat results costs more
    than the system calls. (Python's hash of a tuple of ints is the same in every process; a
    Python that hashes differently only makes the next refresh hash the files again.)"""
    facts = []
    for target in (path, *(f"{path}/{name}" for name in inputs)):
        try:
            st = os.lstat(target)
        except OSError:
            facts.append(None)
            continue
        facts.append((st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return str(hash(tuple(facts)))


def stored_run(record: RunRecord) -> tuple:
    """A run's index row less its signature: path, hashes, shard, the four sort columns, entry,
    invalid reason, completeness, export rows (JSON text, one row a line)."""
    entry = strip_url_credentials(json.dumps(record.entry, ensure_ascii=False, allow_nan=False)) if record.entry else None
    rows = strip_url_credentials("".join(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n" for row in record.rows))
    try:
        for text in (entry or "", rows):
            text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape (\ud800): valid JSON, not text any file can hold
        return stored_run(RunRecord(record.path, record.hashes, invalid_reason="a \\u escape that is not Unicode "
                                    "text (a lone surrogate) in manifest.json, metadata.json or run.jsonl"))
    # a reason quotes what it refused, which may not be text a file can hold either
    reason = record.invalid_reason.encode("utf-8", "backslashreplace").decode() if record.invalid_reason else None
    return (record.path, json.dumps(record.hashes), shard_of(record.path), *record.sort_key, entry,
            reason, (record.entry or {}).get("completeness"), rows)


def read_stored(job: tuple[str, Path, str, dict | None]) -> tuple[str, tuple | None]:
    _, run_dir, sig, known_hashes = job
    record = read_run(run_dir, known_hashes)
    return sig, stored_run(record) if record is not None else None


def read_for_index(todo: list[tuple[str, Path, str, dict | None]]) -> Iterator[tuple[str, tuple | None]]:
    """read_stored for each job, in worker processes when there are many (parsing and validating is
    CPU-bound: a full build of 20,000 runs spreads over every core); in order either way."""
    workers = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8)
    if len(todo) < PARALLEL_FROM or workers < 2:
        yield from map(read_stored, todo)
        return
    # spawn, not fork: the parent holds an SQLite connection and may hold DuckDB's threads
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=start_worker) as pool:
        yield from pool.map(read_stored, todo, chunksize=64)


def start_worker() -> None:
    """In a worker: Ctrl-C is the parent's to handle (it stops the pool; no traceback per worker),
    and a parent that is killed takes its workers with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()


@dataclass(frozen=True)
class Refresh:
    reread: int
    unchanged: int
    dropped: int
    dirty_shards: frozenset[int]  # export shards whose runs changed

    @property
    def changed(self) -> bool:
        return bool(self.reread or self.dropped or self.dirty_shards)


class CatalogueIndex:
    def __init__(self, db: sqlite3.Connection, root: Path, fresh: bool):
        self.db, self.root, self.fresh = db, root, fresh

    @classmethod
    @contextmanager
    def open(cls, index_file: Path | None, root: Path) -> Iterator["CatalogueIndex"]:
        """The index for `root` (in memory when index_file is None); changes are kept only on commit()."""
        db = cls._connect(index_file, root)
        fresh = db.execute("SELECT value FROM meta WHERE key = 'root'").fetchone() is None
        if fresh:
            db.executemany("INSERT INTO meta VALUES (?, ?)", [("format", INDEX_FORMAT), ("root", str(root.resolve()))])
        try:
            yield cls(db, root, fresh)
        finally:
            db.rollback()
            db.close()

    @staticmethod
    def _connect(index_file: Path | None, root: Path) -> sqlite3.Connection:
        if index_file is None:
            return CatalogueIndex._schema(sqlite3.connect(":memory:"))
        try:
            db = sqlite3.connect(index_file)
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
        except sqlite3.DatabaseError:  # not an SQLite file, or damaged: start again
            db.close()
            index_file.unlink()
            return CatalogueIndex._schema(sqlite3.connect(index_file))

    @staticmethod
    def _schema(db: sqlite3.Connection) -> sqlite3.Connection:
        for table in TABLES:
            db.execute(f"CREATE TABLE IF NOT EXISTS {table}")
        db.execute(f"CREATE INDEX IF NOT EXISTS runs_in_order ON runs ({CATALOGUE_ORDER.removeprefix('ORDER BY ')})")
        return db

    def refresh(self) -> Refresh:
        found = run_folders(self.root)
        known = {path: (sig, hashes) for path, sig, hashes in self.db.execute("SELECT path, signature, hashes FROM runs")}
        gone = known.keys() - found.keys()
        dirty = {shard_of(path) for path in gone}
        for table in ("runs", "entries", "export_rows"):
            self.db.executemany(f"DELETE FROM {table} WHERE path = ?", [(path,) for path in gone])
        todo = []
        for path, run_dir in found.items():
            sig = signature(run_dir)
            stored_sig, stored_hashes = known.get(path, (None, None))
            if sig != stored_sig:
                todo.append((path, Path(run_dir), sig, json.loads(stored_hashes) if stored_hashes else None))
        reread = 0
        for sig, stored in read_for_index(todo):
            if stored is None:  # touched, same bytes
                continue
            reread += 1
            path, hashes, shard, *sort_columns, entry, reason, completeness, rows = stored
            dirty.add(shard)
            self.db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (path, sig, hashes, shard, *sort_columns, reason, completeness))
            self.db.execute("DELETE FROM entries WHERE path = ?", (path,))
            self.db.execute("INSERT OR REPLACE INTO export_rows VALUES (?, ?)", (path, rows))
            if entry is not None:
                self.db.execute("INSERT INTO entries VALUES (?, ?)", (path, entry))
        self.db.executemany("UPDATE runs SET signature = ? WHERE path = ?", [(sig, path) for path, _, sig, _ in todo])
        if self.fresh:
            dirty = set(range(EXPORT_SHARDS))
        return Refresh(reread, len(found) - reread, len(gone), frozenset(dirty))

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

    def shard_rows(self, shard: int) -> Iterator[str]:
        """The shard's export rows, one JSON object a line, in catalogue order."""
        for (rows,) in self.db.execute("SELECT rows FROM runs JOIN export_rows USING (path) "
                                       f"WHERE shard = ? AND completeness IS NOT NULL {CATALOGUE_ORDER}", (shard,)):
            yield rows

    def counts(self) -> dict[str, int]:
        by = dict(self.db.execute("SELECT coalesce(completeness, 'invalid'), count(*) FROM runs GROUP BY 1"))
        complete, partial, failed, invalid = (by.get(k, 0) for k in ("complete", "partial", "failed", "invalid"))
        return {"runs": complete + partial + failed, "complete": complete, "partial": partial, "invalid": invalid,
                "failed": failed}

    def invalid(self) -> list[dict[str, str]]:
        stored = self.db.execute("SELECT path, invalid_reason FROM runs WHERE completeness IS NULL")
        return [{"path": path, "reason": reason} for path, reason in sorted(stored, key=lambda r: r[0].split("/"))]

    def catalogue_text(self) -> Iterator[str]:
        """catalogue.json in pieces: one run a line (a contribution is a one-line diff), in catalogue order."""
        head = {"schema_version": CATALOGUE_SCHEMA, "generated_by": GENERATED_BY, "counts": self.counts(),
                "invalid": self.invalid()}
        yield strip_url_credentials(json.dumps(head, ensure_ascii=False))[:-1] + ',\n "runs": ['
        separator = "\n"
        for (entry,) in self.db.execute(f"SELECT entry FROM runs JOIN entries USING (path) {CATALOGUE_ORDER}"):
            yield separator + entry
            separator = ",\n"
        yield ("\n" if separator != "\n" else "") + "]}\n"

    def catalogue(self) -> dict[str, Any]:
        return json.loads("".join(self.catalogue_text()))
