"""The append-only JSONL ledger (run.jsonl): every line flushed and fsync'd as it is written.

Line types: `meta` (first line), `call`, `skipped`, `lanes` (a parallel phase's aggregate),
`resume` (a later invocation continuing the run) and `end` (closing line). A line torn by
a crash (kill -9 mid-write) is the only thing ever removed, and only from the tail.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import BadInput
from .privacy import strip_url_credentials

LEDGER_NAME = "run.jsonl"


def key_of(cell_id: str, phase: str, prompt_id: str, lane: int | None, run_idx: int) -> tuple:
    """What makes a call unique in a run: resume runs only keys not yet present."""
    return (cell_id, phase, prompt_id, lane, run_idx)


def call_key(record: dict[str, Any]) -> tuple:
    return key_of(record["cell_id"], record["phase"], record["prompt_id"], record.get("lane"), record["run_idx"])


@dataclass
class LedgerState:
    meta: dict[str, Any] | None = None
    done: set[tuple] = field(default_factory=set)
    skipped: set[tuple] = field(default_factory=set)  # (cell_id, phase)
    records: list[dict[str, Any]] = field(default_factory=list)
    torn_tail: bool = False


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete line; a torn final line (no newline, bad JSON) is ignored."""
    with open(path, "rb") as fh:
        data = fh.read()
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            yield json.loads(raw)
        except ValueError:
            if number == len(lines):  # the unterminated last line: a write cut short
                return
            raise BadInput(f"{path}:{number}: not a JSON line; the ledger is damaged") from None


def read_state(path: Path) -> LedgerState:
    state = LedgerState()
    if not path.exists():
        return state
    state.torn_tail = not path.read_bytes().endswith(b"\n") and path.stat().st_size > 0
    for record in read_records(path):
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
    """Opened for append; each `write` is one durable line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_torn_tail()
        self._fh = open(path, "ab")

    def _drop_torn_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(keep)
                os.fsync(fh.fileno())

    def write(self, record: dict[str, Any]) -> None:
        line = strip_url_credentials(json.dumps(record, sort_keys=False, ensure_ascii=False, allow_nan=False)) + "\n"
        self._fh.write(line.encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
