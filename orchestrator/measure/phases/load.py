"""What the sustained-load phases share (capacity.py, endurance.py): the frozen prompts and sizes of
suites/load/load.json, a call of one simulated user, and order statistics over call lines."""

from __future__ import annotations

import hashlib
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core import datafiles
from orchestrator.core.paths import data_dir
from orchestrator.core.records import CallKey
from orchestrator.measure.client import CallResult
from orchestrator.measure.phases.context import PhaseContext


def suite_path() -> Path:
    return data_dir("suites") / "load" / "load.json"


@dataclass(frozen=True)
class LoadSuite:
    version: int
    sha256: str
    prompts: tuple[tuple[str, str], ...]  # (id, text)
    capacity: dict[str, Any]
    endurance: dict[str, Any]

    def prompt(self, user: int, turn: int) -> str:
        """Each user starts at its own prompt and takes them in turn, so concurrent calls differ."""
        return self.prompts[(user + turn) % len(self.prompts)][1]


def load_suite(path: Path | None = None) -> LoadSuite:
    path = path or suite_path()
    doc = datafiles.load(path, "load-suite")
    return LoadSuite(doc["version"], hashlib.sha256(path.read_bytes()).hexdigest(),
                     tuple((p["id"], p["text"]) for p in doc["prompts"]), doc["capacity"], doc["endurance"])


def user_call(ctx: PhaseContext, suite: LoadSuite, key: CallKey, answer_tokens: int, turn: int) -> CallResult:
    """One timed call of user `key.lane`, its `turn`-th, capped at the phase's answer length."""
    messages = [{"role": "user", "content": suite.prompt(key.lane or 0, turn)}]
    return ctx.chat(ctx.request(key, messages, min(answer_tokens, ctx.options.num_predict)), key_fields=key)


def quantile(values: list[float], q: float) -> float | None:
    """Linear interpolation between order statistics (report/figures.percentile's definition)."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1] if 0 < q < 1 else (
        min(values) if q <= 0 else max(values))
