"""The append-only JSONL ledger (run.jsonl): every line flushed and fsync'd as it is written.

Line types: `meta` (first line), `call`, `skipped`, `lanes` (a parallel phase's aggregate),
`resume` (a later invocation continuing the run) and `end` (closing line). A line torn by
a crash (kill -9 mid-write) is the only thing ever removed, and only from the tail.
Each line's shape is declared once, in records.py.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterator

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput, os_failure, read_failure
from orchestrator.core.urls import strip_url_credentials
from orchestrator.core.records import CallKey, Record
from orchestrator.core.runfolder import LEDGER_NAME

JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true or false",
              type(None): "null"}


def call_key(record: dict[str, Any]) -> tuple:
    """A call line's key (records.CallKey) as the tuple resume compares and responses.jsonl stores."""
    return CallKey.of(record).as_tuple()


@dataclass
class LedgerState:
    meta: dict[str, Any] | None = None
    done: set[tuple] = field(default_factory=set)
    skipped: set[tuple] = field(default_factory=set)  # (cell_id, phase)
    records: list[dict[str, Any]] = field(default_factory=list)
    torn_tail: bool = False

    @property
    def finished(self) -> bool:
        """The closing `end` line came after the last `resume`: nothing is left to run."""
        marks = [r["type"] for r in self.records if r.get("type") in ("resume", "end")]
        return bool(marks) and marks[-1] == "end"


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete line, each a JSON object, read as a stream (memory holds one line); a torn final
    line (no newline, bad JSON) is ignored. Anything else that is not a JSON object (NaN included, or
    nested past datafiles.MAX_JSON_DEPTH) is BadInput naming the file and line."""
    for number, raw in datafiles.iter_lines(path):
        if not raw.strip():
            continue
        try:
            record = datafiles.parse_json(raw)
        except ValueError as exc:
            if not raw.endswith(b"\n"):  # the unterminated last line: a write cut short
                return
            raise BadInput(f"{path}:{number}: not a JSON line ({exc}); the file is damaged") from None
        if not isinstance(record, dict):
            kind = JSON_KINDS.get(type(record), type(record).__name__)
            raise BadInput(f"{path}:{number}: {kind} where a JSON object belongs; the file is damaged")
        yield record


def iter_ledger(path: Path, types: Collection[str] | None = None) -> Iterator[dict[str, Any]]:
    """The ledger's records of the given `type`s (every one without `types`), each checked against
    the run-record schema (file, line and field on error): the one place a reader's lines are validated.
    A stream: a reader that keeps only what it needs holds only that in memory."""
    for number, record in enumerate(read_records(path), 1):
        if types is None or record.get("type") in types:
            datafiles.validate(record, "run-record", f"{path}:{number}")
            yield record


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """Every record of the ledger, validated (iter_ledger)."""
    return list(iter_ledger(path))


def read_state(path: Path) -> LedgerState:
    state = LedgerState()
    if not path.exists():
        return state
    state.torn_tail = _torn_tail(path)
    for record in iter_ledger(path):
        state.records.append(record)
        kind = record.get("type")
        if kind == "meta" and state.meta is None:
            state.meta = record
        elif kind == "call":
            state.done.add(call_key(record))
        elif kind == "skipped":
            state.skipped.add((record["cell_id"], record.get("phase")))
    return state


def _torn_tail(path: Path) -> bool:
    """The file's last byte is not a newline: its last line was cut short (or lost its newline)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except OSError as exc:
        raise read_failure(path, exc) from None


def _last_line_start(fd: int, size: int) -> int:
    """The offset just after the file's last newline (0 when it has none), read backwards in blocks."""
    end = size
    while end > 0:
        start = max(0, end - 2**16)
        found = os.pread(fd, end - start, start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


class Ledger:
    """Opened for append; each `write` is one durable line, and a write the disk refuses leaves no torn line.
    With `schema`, every line is checked against it first (a line that does not fit is never written).
    Only a regular file is appended to, never through a symbolic link (O_NOFOLLOW)."""

    def __init__(self, path: Path, schema: str | None = None) -> None:
        self.path, self.schema = path, schema
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise BadInput(f"{path}: is a symbolic link; a ledger is only ever appended to in place") from None
            raise os_failure(path, exc) from None
        try:
            if not stat.S_ISREG(os.fstat(self._fd).st_mode):
                raise BadInput(f"{path}: not a regular file (a device, FIFO or socket); refusing to append to it")
            self._mend_tail()
        except OSError as exc:
            self.close()
            raise os_failure(path, exc) from None
        except BaseException:
            self.close()
            raise

    def _mend_tail(self) -> None:
        """A last line without its newline: a whole JSON object (an `end` line whose newline was lost)
        gets its newline; anything else is a write cut short and is cut off."""
        size = os.fstat(self._fd).st_size
        if not size or os.pread(self._fd, 1, size - 1) == b"\n":
            return
        start = _last_line_start(self._fd, size)
        whole = False
        if size - start <= datafiles.LINE_LIMIT_BYTES:
            with contextlib.suppress(ValueError):
                whole = isinstance(datafiles.parse_json(os.pread(self._fd, size - start, start)), dict)
        if whole:
            os.write(self._fd, b"\n")
        else:
            os.ftruncate(self._fd, start)
        os.fsync(self._fd)

    def write(self, record: Record | dict[str, Any]) -> None:
        self.write_many([record])

    def write_many(self, records: list[Record | dict[str, Any]]) -> None:
        """Append the lines with one fsync; on a full disk cut back to the last whole line, then raise."""
        records = [r.to_json() if isinstance(r, Record) else r for r in records]
        if self.schema:
            for record in records:
                datafiles.validate(record, self.schema, f"{self.path} (line being written)")
        data = b"".join((strip_url_credentials(json.dumps(r, sort_keys=False, ensure_ascii=False, allow_nan=False))
                         + "\n").encode("utf-8")
                        for r in records)
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
            raise os_failure(self.path, exc) from None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
