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
import errno
import hashlib
import json
import os
import re
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterable, Iterator

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput, os_failure, read_failure
from orchestrator.core.urls import strip_url_credentials
from orchestrator.core.records import CallKey, Record

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


TORN = object()  # what ledger_line returns for a line cut short


def ledger_line(raw: bytes, terminated: bool, damaged: str) -> Any:
    """One ledger line parsed, or TORN: the one rule for a torn line. Only the file's last line can lack
    its newline; if it does not parse, a write was cut short (a crash), and every reader drops it. Any other
    line that does not parse is BadInput (`damaged`, with `{}` for the parser's reason)."""
    try:
        return datafiles.parse_json(raw)
    except ValueError as exc:
        if not terminated:
            return TORN
        raise BadInput(damaged.format(exc)) from None


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete line, each a JSON object, read as a stream (memory holds one line); a torn final
    line (no newline, bad JSON) is ignored. Anything else that is not a JSON object (NaN included, or
    nested past datafiles.MAX_JSON_DEPTH) is BadInput naming the file and line."""
    for number, raw in datafiles.iter_lines(path):
        if not raw.strip():
            continue
        record = ledger_line(raw, raw.endswith(b"\n"), f"{path}:{number}: not a JSON line ({{}}); the file is damaged")
        if record is TORN:
            return
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


def held(records: Iterable[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    """`records` (of the file at `path`) held in memory: at most datafiles.LEDGER_RECORD_LIMIT of them,
    else BadInput as soon as the one past it is read, so a huge file costs what the limit costs."""
    kept = []
    for record in records:
        if len(kept) == datafiles.LEDGER_RECORD_LIMIT:
            raise BadInput(f"{path}: more than {datafiles.LEDGER_RECORD_LIMIT:,} records; weeyuga holds a run's records "
                           "in memory to report, review or resume it, and a run writes a few thousand at most")
        kept.append(record)
    return kept


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """Every record of the ledger, validated (iter_ledger), held in memory (held)."""
    return held(iter_ledger(path), path)


def read_state(path: Path) -> LedgerState:
    state = LedgerState()
    if not path.exists():
        return state
    state.torn_tail = _torn_tail(path)
    state.records = read_ledger(path)
    for record in state.records:
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
    `chained` (run.jsonl): every line carries its link in the chain, continuing the file's.
    Only a regular file is appended to, never through a symbolic link (O_NOFOLLOW)."""

    def __init__(self, path: Path, schema: str | None = None, chained: bool = False) -> None:
        self.path, self.schema = path, schema
        self._lock = threading.Lock()  # a line's link depends on the line before it
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
            self._head = chain_start(self._whole_file()) if chained else None
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

    def _whole_file(self) -> bytes:
        """The ledger's bytes, read through the descriptor opened above (never the path again)."""
        size, chunks, offset = os.fstat(self._fd).st_size, [], 0
        while offset < size and (chunk := os.pread(self._fd, min(2**24, size - offset), offset)):
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)

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
