"""How timed calls treat the prompt cache and when a phase counts as contended: the
measurement-truth settings of profiles/canonical.yaml (issue #16), read once."""

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


@functools.cache
def _canonical() -> dict:
    return datafiles.load(data_dir("profiles") / "canonical.yaml", "canonical")


def prompt_cache_policy() -> PromptCachePolicy:
    settings = _canonical()["prompt_cache"]
    return PromptCachePolicy(**{**settings, "reused_by": tuple(settings["reused_by"])})


def contention_marks() -> ContentionMarks:
    return ContentionMarks(**_canonical()["contention"])


def request_option_names() -> tuple[str, ...]:
    """The per-request options the methodology fixes (temperature, num_ctx, num_predict), in the table's order."""
    return tuple(_canonical()["request_options"])
