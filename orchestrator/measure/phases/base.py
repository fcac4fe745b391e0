"""The Phase protocol and its Unit (see phases/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from orchestrator.core.records import CallKey
from orchestrator.core.runspec import RunOptions, Target

if TYPE_CHECKING:
    from orchestrator.measure.phases.context import PhaseContext


@dataclass(frozen=True)
class Unit:
    """One piece of a phase that runs as a whole (a cold+warm series, a conversation, a set of lanes)."""

    phase: str
    cells: tuple[str, ...]
    keys: tuple[CallKey, ...]  # every call it makes, in order


class Phase(Protocol):
    name: str
    kind: str  # speed | quality | agent
    version: int | str
    sha256: str  # of its definition file: recorded, and a resume refuses a changed one
    mode: str

    def groups(self, available: list[Target]) -> tuple[list[list[Target]], str | None]:
        """The sets of targets this phase runs on in turn, or why it cannot run on these."""

    def units(self, cells: list[str], options: RunOptions) -> list[Unit]:
        """Every unit for one group of cells, in the order they run."""

    def estimate_seconds(self, decode_tokens_per_sec: float, num_predict: int, runs: int) -> float:
        """Time for one cell at this decode rate, before anything runs (auto's time budget)."""

    def run_unit(self, unit: Unit, ctx: "PhaseContext") -> None:
        """Make the unit's calls that are not done yet, each through ctx.chat."""
