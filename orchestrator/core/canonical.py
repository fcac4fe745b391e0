"""How timed calls treat the prompt cache, when a phase counts as contended, the capacity SLO and when a
sample counts as thermal throttling: the measurement-truth settings of profiles/canonical.yaml
(issues #16, #28), read once."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from orchestrator.core import datafiles
from orchestrator.core.paths import data_dir


@dataclass(frozen=True)
class PromptCachePolicy:
    timed_calls: bool  # the cache_prompt every timed call sends (where its runtime has the switch)
    measured_by: str  # the phase that measures what the cache buys
    pairs: int  # uncached-then-cached calls per item in that phase
    reused_by: tuple[str, ...] = ()  # phases whose calls keep reuse on (multi-turn work judged by outcome)

    def sent_by(self, phase: str) -> bool:
        """The cache_prompt a call of `phase` sends unless the phase asks otherwise."""
        return True if phase in self.reused_by else self.timed_calls


@dataclass(frozen=True)
class ContentionMarks:
    cpu_share: float  # others' share of all CPUs above which a phase is contended
    gpu_util_percent: float  # others' GPU utilisation above which a phase is contended


@dataclass(frozen=True)
class CapacitySLO:
    ttft_p95_s: float  # a level's TTFT p95 must be within this
    user_tokens_per_sec: float  # and its median decode rate per user at least this

    def with_overrides(self, given: dict[str, float | None]) -> "CapacitySLO":
        """This SLO with the run's own values (RunOptions.capacity) where it gave them."""
        return CapacitySLO(given.get("ttft_p95_s") or self.ttft_p95_s,
                           self.user_tokens_per_sec if given.get("user_tokens_per_sec") is None else given["user_tokens_per_sec"])


@dataclass(frozen=True)
class ThermalMarks:
    cpu_freq_fraction: float  # the fastest core below this share of its maximum while busy: throttled
    busy_cpu_percent: float  # the runtime's CPU % at which a low frequency means throttling, not idling
    gpu_reasons: tuple[str, ...]  # NVML clock-throttle reasons that count as throttling


@functools.cache
def _canonical() -> dict:
    return datafiles.load(data_dir("profiles") / "canonical.yaml", "canonical")


def prompt_cache_policy() -> PromptCachePolicy:
    settings = _canonical()["prompt_cache"]
    return PromptCachePolicy(**{**settings, "reused_by": tuple(settings["reused_by"])})


def contention_marks() -> ContentionMarks:
    return ContentionMarks(**_canonical()["contention"])


def capacity_slo() -> CapacitySLO:
    return CapacitySLO(**_canonical()["capacity_slo"])


def thermal_marks() -> ThermalMarks:
    marks = _canonical()["thermal"]
    return ThermalMarks(marks["cpu_freq_fraction"], marks["busy_cpu_percent"], tuple(marks["gpu_reasons"]))


def default_slots() -> int:
    """The reference node's concurrent slots (runtime_defaults.num_parallel): capacity's top level
    where the run names none."""
    return _canonical()["runtime_defaults"]["num_parallel"]


def request_option_names() -> tuple[str, ...]:
    """The per-request options the methodology fixes (temperature, num_ctx, num_predict), in the table's order."""
    return tuple(_canonical()["request_options"])
