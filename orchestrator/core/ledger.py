"""The append-only JSONL ledger (run.jsonl): every line flushed and fsync'd as it is written.

Line types: `meta` (first line), `call`, `skipped`, `lanes` (a parallel phase's aggregate),
`resume` (a later invocation continuing the run) and `end` (closing line). A line torn by
a crash (kill -9 mid-write) is the only thing ever removed, and only from the tail.
Each line's shape is declared once, in records.py.

The chain (tamper evidence): a chained ledger's every line ends with `"chain": sha256(previous
line's chain + "\n" + the line without it)`; the first line chains from "" and the first chained line
of an older, unchained ledger (a resume) from the sha256 of every byte before it. A resume continues
the chain, so the last line (the end line of a finished run) carries the head. `verify_chain`
recomputes it from the file's bytes. It shows an edit made without re-running the chain; it cannot
stop someone who runs this code from sealing a forged file (review's other checks are for that).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput, os_failure
from orchestrator.core.urls import strip_url_credentials
from orchestrator.core.records import CallKey, Record
from orchestrator.core.runfolder import LEDGER_NAME

CHAIN_FIELD = "chain"
CHAIN_SUFFIX = re.compile(rb', "chain": "([0-9a-f]{64})"}$')

JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true or false",
              type(None): "null"}


def call_key(record: dict[str, Any]) -> tuple:
    """A call line's key (records.CallKey) as the tuple resume compares and responses.jsonl stores."""
    return CallKey.of(record).as_tuple()


def chain_hash(previous: str, body: bytes) -> str:
    """A line's link: its text without the chain field, bound to the link before it."""
    return hashlib.sha256(previous.encode("ascii") + b"\n" + body).hexdigest()


def chain_start(data: bytes) -> str:
    """What the next line chains from, given the ledger's bytes so far (whole lines)."""
    if not data:
        return ""
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    link = CHAIN_SUFFIX.search(last)
    return link.group(1).decode("ascii") if link else hashlib.sha256(data).hexdigest()


def sealed_line(record: dict[str, Any], previous: str) -> tuple[bytes, str]:
    """The record as one chained ledger line (with its newline) and its link."""
    body = strip_url_credentials(json.dumps(record, sort_keys=False, ensure_ascii=False, allow_nan=False)).encode("utf-8")
    link = chain_hash(previous, body)
    return body[:-1] + f', "{CHAIN_FIELD}": "{link}"}}\n'.encode("ascii"), link


def seal(records: list[dict[str, Any]]) -> bytes:
    """A whole chained ledger from its records (any chain field they carry is replaced)."""
    lines, link = [], ""
    for record in records:
        line, link = sealed_line({k: v for k, v in record.items() if k != CHAIN_FIELD}, link)
        lines.append(line)
    return b"".join(lines)


@dataclass(frozen=True)
class ChainCheck:
    chained_lines: int  # lines carrying a link
    unchained_prefix: int  # lines before the first link (an older ledger, resumed)
    broken_at: int | None  # the first line (1-based) whose link does not follow, or that lost its link
    head: str | None  # the last line's link

    @property
    def intact(self) -> bool:
        return self.chained_lines > 0 and self.broken_at is None


def verify_chain(data: bytes) -> ChainCheck:
    """Recompute every link from the ledger's bytes (a torn last line is left out, as readers do)."""
    lines = data.split(b"\n")
    if data and not data.endswith(b"\n"):
        lines = lines[:-1]
    link: str | None = None
    offset, chained, prefix = 0, 0, 0
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            offset += len(raw) + 1
            continue
        found = CHAIN_SUFFIX.search(raw)
        if found is None:
            if link is not None:
                return ChainCheck(chained, prefix, number, link)
            prefix += 1
        else:
            previous = link if link is not None else (hashlib.sha256(data[:offset]).hexdigest() if offset else "")
            body = raw[:found.start()] + b"}"
            if chain_hash(previous, body) != found.group(1).decode("ascii"):
                return ChainCheck(chained, prefix, number, link)
            link, chained = found.group(1).decode("ascii"), chained + 1
        offset += len(raw) + 1
    return ChainCheck(chained, prefix, None, link)


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
    With `schema`, every line is checked against it first (a line that does not fit is never written).
    `chained` (run.jsonl): every line carries its link in the chain, continuing the file's."""

    def __init__(self, path: Path, schema: str | None = None, chained: bool = False) -> None:
        self.path, self.schema = path, schema
        self._lock = threading.Lock()  # a line's link depends on the line before it
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._drop_torn_tail()
            self._head = chain_start(path.read_bytes() if path.exists() else b"") if chained else None
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
        with self._lock:
            head, lines = self._head, []
            for record in records:
                if head is None:
                    lines.append((strip_url_credentials(json.dumps(record, sort_keys=False, ensure_ascii=False,
                                                                   allow_nan=False)) + "\n").encode("utf-8"))
                else:
                    line, head = sealed_line(record, head)
                    lines.append(line)
            self._append(b"".join(lines))
            self._head = head

    def _append(self, data: bytes) -> None:
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
