"""What review works on and what it says: the folder's documents read once, the tolerances
(profiles/review.yaml), and findings (a rejection or a warning, one line each)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core import datafiles
from orchestrator.core.paths import data_dir

REJECT, WARN = "reject", "warn"


@dataclass(frozen=True)
class Finding:
    check: str  # form | consistency | verdicts | physics | identity | chain | duplicates
    severity: str  # reject | warn
    message: str  # one line

    def __str__(self) -> str:
        return f"{self.check}: {self.message}"


def reject(check: str, message: str) -> Finding:
    return Finding(check, REJECT, message)


def warn(check: str, message: str) -> Finding:
    return Finding(check, WARN, message)


def grouped(check: str, what: str, examples: list[str], severity: str = REJECT) -> list[Finding]:
    """Many calls failing one rule read as one line: how many, and the first."""
    if not examples:
        return []
    more = f" ({len(examples)} lines; first: {examples[0]})" if len(examples) > 1 else f" ({examples[0]})"
    return [Finding(check, severity, what + more)]


@dataclass(frozen=True)
class Tolerances:
    rate_recompute_relative: float
    client_runtime_gap: float
    agreement_min_decode_s: float
    clock_slack_s: float
    roofline_reject_fraction: float
    bandwidth_bound_slack: float
    busy_min_tokens: int
    busy_min_decode_ms: float
    busy_min_percent: float
    facts_min_share_of_file: float
    duplicate_call_share: float


@functools.cache
def tolerances() -> Tolerances:
    document = datafiles.load(data_dir("profiles") / "review.yaml", "review")
    return Tolerances(**{k: v for k, v in document.items() if k != "schema_version"})


@dataclass(frozen=True)
class RunUnderReview:
    """A run folder's documents, each read with datafiles' strict readers and checked against its schema."""

    path: Path
    ledger_bytes: bytes
    records: tuple[dict[str, Any], ...]
    manifest: dict[str, Any]
    metadata: dict[str, Any]
    hardware: dict[str, Any] | None
    responses: tuple[dict[str, Any], ...] | None  # None: responses.jsonl is absent
    samples: tuple[dict[str, Any], ...] | None  # None: samples.jsonl is absent

    @property
    def meta(self) -> dict[str, Any]:
        return self.records[0]

    def of_type(self, *kinds: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("type") in kinds]

    @property
    def calls(self) -> list[dict[str, Any]]:
        return self.of_type("call")


def call_label(call: dict[str, Any]) -> str:
    lane = f" lane {call['lane']}" if call.get("lane") is not None else ""
    step = f" step {call['step']}" if call.get("step") is not None else ""
    return f"{call.get('phase')} {call.get('prompt_id')}#{call.get('run_idx')}{lane}{step}"
