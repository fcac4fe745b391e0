"""The methodology's fixed facts, read once from profiles/methodology.yaml: the
canonical phase list, warm runs per frozen prompt, and compare's thresholds and metric directions."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from orchestrator.core import datafiles
from orchestrator.core.paths import data_dir


@dataclass(frozen=True)
class Methodology:
    phases: tuple[str, ...]  # canonical order; `all` means these
    legacy_phases: tuple[str, ...]  # what a manifest without `canonical_phases` was judged against
    runs_per_prompt: int  # warm calls after the cold one
    relative_threshold: float  # compare: a change this large either way is a regression or a win
    success_floor: float  # compare: a success rate below this is a red flag
    higher_is_better: dict[str, bool]  # compare's metrics
    extra_phases: tuple[str, ...] = ()  # run only when named; never in `all`


@functools.cache
def methodology() -> Methodology:
    facts = datafiles.load(data_dir("profiles") / "methodology.yaml", "methodology")
    judged = facts["compare"]
    return Methodology(tuple(facts["phases"]), tuple(facts["phases_before_manifests_recorded_them"]),
                       facts["runs_per_prompt"], judged["relative_threshold"], judged["success_floor"],
                       {metric: way == "higher" for metric, way in judged["metrics"].items()},
                       tuple(facts.get("extra_phases", ())))
