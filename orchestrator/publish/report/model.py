"""The one report object: everything run.md, metadata.json and the plots say, computed once
(by `report.compute_report`) and rendered several ways."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunReport:
    """Everything run.md, metadata.json and the plots say, computed once from the run folder."""

    records: list[dict[str, Any]]  # the ledger's lines, meta first
    manifest: dict[str, Any]
    hardware: dict[str, Any] | None
    metadata: dict[str, Any]  # metadata.json
    kinds: frozenset[str] = field(default_factory=frozenset)  # phase kinds present (speed, ...)

    @property
    def meta(self) -> dict[str, Any]:
        return self.records[0]

    @property
    def calls(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("type") == "call"]
