"""The append-only JSONL ledger (run.jsonl): every line flushed and fsync'd as it is written.

Line types: `meta` (first line), `call`, `skipped`, `lanes` (a parallel phase's aggregate),
`resume` (a later invocation continuing the run) and `end` (closing line). A line torn by
a crash (kill -9 mid-write) is the only thing ever removed, and only from the tail.
Each line's shape is declared once, in records.py.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput, os_failure
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
    """Every complete line, each a JSON object; a torn final line (no newline, bad JSON) is ignored.
    Anything else that is not a JSON object (NaN included) is BadInput naming the file and line."""
    lines = datafiles.read_bytes(path, datafiles.LEDGER_LIMIT_BYTES).split(b"\n")
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            record = datafiles.parse_json(raw)
        except ValueError as exc:
            if number == len(lines):  # the unterminated last line: a write cut short
                return
            raise BadInput(f"{path}:{number}: not a JSON line ({exc}); the file is damaged") from None
        if not isinstance(record, dict):
            kind = JSON_KINDS.get(type(record), type(record).__name__)
            raise BadInput(f"{path}:{number}: {kind} where a JSON object belongs; the file is damaged")
        yield record


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The ledger's records, each checked against the run-record schema (file, line and field on error)."""
    records = []
    for number, record in enumerate(read_records(path), 1):
        datafiles.validate(record, "run-record", f"{path}:{number}")
        records.append(record)
    return records


def read_state(path: Path) -> LedgerState:
    state = LedgerState()
    if not path.exists():
        return state
    data = datafiles.read_bytes(path, datafiles.LEDGER_LIMIT_BYTES)
    state.torn_tail = bool(data) and not data.endswith(b"\n")
    for record in read_ledger(path):
        state.records.append(record)
        kind = record.get("type")
        if kind == "meta" and state.meta is None:
            state.meta = record
        elif kind == "call":
            state.done.add(call_key(record))
        elif kind == "skipped":
            state.skipped.add((record["cell_id"], record.get("phase")))
    return state


class Ledger:
    """Opened for append; each `write` is one durable line, and a write the disk refuses leaves no torn line.
    With `schema`, every line is checked against it first (a line that does not fit is never written)."""

    def __init__(self, path: Path, schema: str | None = None) -> None:
        self.path, self.schema = path, schema
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._drop_torn_tail()
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise os_failure(path, exc) from None

    def _drop_torn_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(keep)
                os.fsync(fh.fileno())

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
