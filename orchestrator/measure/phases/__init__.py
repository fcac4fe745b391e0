"""Phases: what a run measures, one unit of work at a time.

A speed suite, a quality pack and an agent task each implement `Phase` (phases/base.py): its
units (each with the deterministic keys of every call it makes, for resume and estimates), a
time estimate from a decode rate, and running one unit through a `PhaseContext`
(phases/context.py), which offers `chat` (a timed call, recorded as one `call` line), `write`
(any typed record), `is_done` and progress. The runner (run.py) only chooses the cells and
hands each unit over.

Registry: a suite file's `mode` names the Phase class that runs it (PHASE_MODES); a phase that is
not a suite file (quality) is built from the run's options by its NAMED_PHASES entry. A new kind
of work is one module plus one entry there.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.core.runspec import RunOptions
from orchestrator.measure.suites import load_suite
from orchestrator.measure.phases.agent import AgentPhase
from orchestrator.measure.phases.capacity import CapacityPhase
from orchestrator.measure.phases.endurance import EndurancePhase
from orchestrator.measure.phases.base import Phase, Unit
from orchestrator.measure.phases.context import PhaseContext
from orchestrator.measure.phases.prompt_cache import PromptCachePhase
from orchestrator.measure.phases.depth import DepthPhase
from orchestrator.measure.phases.quality import QualityPhase
from orchestrator.measure.phases.speed import AppendPhase, ColdWarmPhase, OncePhase, ParallelPhase

__all__ = ["PHASE_MODES", "Phase", "PhaseContext", "Unit", "load_phase"]

PHASE_MODES: dict[str, type[Phase]] = {"cold_warm": ColdWarmPhase, "once": OncePhase, "document": OncePhase,
                                       "append": AppendPhase, "parallel": ParallelPhase, "agent": AgentPhase,
                                       "prompt_cache": PromptCachePhase}
# Phases defined by their own data rather than a suites/<name>.json (profiles/methodology.yaml extra_phases),
# each made by from_options(RunOptions | None).
NAMED_PHASES = {"quality": QualityPhase, "agent": AgentPhase, "depth": DepthPhase, "capacity": CapacityPhase,
                "endurance": EndurancePhase}


def load_phase(name: str, directory: Path | None = None, options: RunOptions | None = None) -> Phase:
    if name in NAMED_PHASES:
        return NAMED_PHASES[name].from_options(options)
    suite = load_suite(name, directory)
    return PHASE_MODES[suite.mode](suite, **({"num_ctx": options.num_ctx} if options else {}))
