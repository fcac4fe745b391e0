"""What a run is asked to do and what it did: the cells it measures (Cell, Target), its options,
and its result. Shared by the runner, the phases and the stages that start runs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from orchestrator.core.methodology import methodology
from orchestrator.core.runfolder import LEDGER_NAME


@dataclass(frozen=True)
class Cell:
    cell_id: str
    engine: str  # a runtime's engine name (runtimes/)
    model: str
    base_url: str
    api: str = "openai"  # wire format (client.WIRE_FORMATS)


@dataclass
class Target:
    """A cell plus what the runner may do to it: restart a managed runtime, or unload the model
    (runtimes/: which runtime can do which)."""

    cell: Cell
    restart: Callable[[], float] | None = None  # managed runtime: a true cold start
    pid: Callable[[], int | None] = lambda: None
    request_fields: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    keep_alive: str | None = None
    loaded_fresh: bool = False  # nothing has been asked of it since it was (re)started
    # managed runtime: why its process died (a crash signal, say), None while it runs
    crash_note: Callable[[], str | None] = lambda: None
    unload: Callable[[], None] | None = None  # a runtime that can drop the model without a restart

    @property
    def cold_kind(self) -> str:
        if self.restart is not None:
            return "restart"
        return "unload" if self.unload is not None else "process_warm"

    @property
    def cold_load_state(self) -> str:
        """What a 'cold' call really is: a runtime we neither restart nor unload is warm from the start."""
        return "process_warm" if self.cold_kind == "process_warm" else "cold"

    def make_cold(self) -> str:
        """Restart or unload, as this target allows; returns the cold kind the next call records."""
        if self.restart is not None:
            self.restart()
        elif self.unload is not None:
            self.unload()
            time.sleep(2.0)  # the methodology's pause after an unload
        self.loaded_fresh = self.cold_kind != "process_warm"  # process_warm: nothing was restarted or unloaded
        return self.cold_kind


@dataclass(frozen=True)
class RunOptions:
    phases: list[str]
    runs: int = field(default_factory=lambda: methodology().runs_per_prompt)
    temperature: float = 0.1
    num_ctx: int = 4096
    num_predict: int = 2048
    smoke: bool = False
    probe_only: bool = False
    force_load: bool = False
    for_publication: bool = False
    allow_dirty: bool = False
    submitter_handle: str | None = None
    device_tag: str | None = None
    canonical_overrides: dict[str, Any] = field(default_factory=dict)  # option -> {canonical, value}
    command: list[str] = field(default_factory=list)
    phase_notes: dict[str, str] = field(default_factory=dict)  # phase -> why it was not selected
    stall_timeout_s: float = 120.0
    quality: dict[str, Any] = field(default_factory=lambda: {"mode": "quick", "packs": None, "repeat": 1})
    # the agent phase's settings (workflow, tasks, languages, budgets; phases/agent.py); empty: its auto defaults
    agent: dict[str, Any] = field(default_factory=dict)
    # where model-written code runs (evaluate/sandbox/docker/choice.py SandboxChoice.record()); empty: the process sandbox
    sandbox: dict[str, Any] = field(default_factory=dict)
    # phase -> seconds it may keep starting units (auto's time budget, budget.py); a phase past it stops
    # after its current unit, with a `skipped` line saying how far it got
    phase_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        recorded = {"phases": self.phases, "runs": self.runs, "temperature": self.temperature, "num_ctx": self.num_ctx,
                    "num_predict": self.num_predict, "smoke": self.smoke, "probe_only": self.probe_only}
        if "quality" in self.phases:
            recorded["quality"] = self.quality
        if self.agent:
            recorded["agent"] = self.agent
        if self.sandbox:
            recorded["sandbox"] = self.sandbox
        if self.phase_seconds:
            recorded["phase_seconds"] = self.phase_seconds
        return recorded


@dataclass
class RunTally:
    """What a run has done so far, counted while its phases run (the runner's and the phases' one
    mutable record); `result()` freezes it when the run ends."""

    run_id: str
    run_dir: Path
    calls: int = 0
    errors: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ledger_path(self) -> Path:
        return self.run_dir / LEDGER_NAME

    def result(self, finished: bool = False, failure: str | None = None) -> "RunResult":
        return RunResult(self.run_id, self.run_dir, self.calls, self.errors, list(self.skipped), finished, failure)


@dataclass(frozen=True)
class RunResult:
    """A run's outcome: what `run_suites` returns."""

    run_id: str
    run_dir: Path
    calls: int = 0
    errors: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False
    failure: str | None = None  # why the run failed although it ran to the end (no call succeeded)

    @property
    def status(self) -> str:
        return "complete" if self.finished and self.failure is None else "failed"

    @property
    def ledger_path(self) -> Path:
        return self.run_dir / LEDGER_NAME
