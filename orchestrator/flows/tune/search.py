"""The search, pure over a Prober: candidates and measurements, NGL/threads/slots walks, settling
against the runtime's defaults. Tests drive it with a simulated runtime."""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from orchestrator.measure.phases.capacity import Level

TUNE_CELL = "tune"  # the cell id of the slots probes' capacity levels

CLEAR_WIN = 0.03  # a winner this much faster than the defaults is taken without re-measuring
CONFIRM_ROUNDS = 2  # alternate re-measurements of winner and defaults when it is closer than that
SLOT_GAIN_MIN = 0.05
SEARCHED_KNOBS = frozenset({"ngl", "threads"})  # what "the runtime's defaults" leaves unset


@dataclass(frozen=True)
class Candidate:
    ngl: int | None = None  # None = the runtime's default (flag not given)
    threads: int | None = None
    num_parallel: int | None = None  # set = a slots probe with that many concurrent streams
    # The plan's tunable launch knobs (profiles/knobs.yaml runtime_default, tunable), searched as tune_axes (None = the
    # runtime's default).
    flash_attn: str | None = None
    batch: int | None = None
    ubatch: int | None = None
    threads_batch: int | None = None
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    load_mode: str | None = None
    spec_type: str | None = None

    def label(self) -> str:
        parts = [f"{k}={v}" for k, v in asdict(self).items() if v is not None]
        return ", ".join(parts) or "runtime defaults"

    def knobs(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Measurement:
    candidate: Candidate
    ok: bool
    tokens_per_sec: float | None = None  # single stream; the aggregate of all streams for a slots probe
    ttft_ms: float | None = None
    peak_rss_mb: float | None = None
    peak_vram_mb: float | None = None
    failure: str | None = None  # oom | spilled | exited | timeout | http_error | unload | no_rate
    log_tail: str | None = None
    per_stream_tokens_per_sec: float | None = None  # slots probes only
    effective: dict[str, int] = field(default_factory=dict)  # values the runtime reported choosing
    prefill_tokens_per_sec: float | None = None  # the runtime's own prompt rate at the probe's depth
    decode_spread: float | None = None  # (max - min) / median of the decode rate over the probe's rounds
    repetitive_tokens_per_sec: float | None = None  # decode when the answer repeats the prompt (n-gram drafts pay off)
    draft_acceptance: float | None = None  # accepted / drafted tokens (speculative decoding), None without drafts
    load_s: float | None = None  # launch to ready
    capacity_level: Level | None = None  # slots probes: its calls as a closed-loop capacity level (k users, k slots)


class Prober(Protocol):
    def __call__(self, candidate: Candidate) -> Measurement: ...


@dataclass(frozen=True)
class NglBounds:
    start: int
    top: int  # the largest meaningful -ngl: block count + 1
    source: str  # where `start` came from


@dataclass
class Choice:
    """What tune recommends, and why, after settling against the defaults."""

    knobs: dict[str, Any]
    tokens_per_sec: float
    ttft_ms: float | None
    why: str
    remeasured: list[Measurement] = field(default_factory=list)


@dataclass
class TuneReport:
    model: str
    device_tag: str
    knob: str  # ngl | threads
    recommended: dict[str, Any] | None
    defaults: dict[str, Any] | None
    candidates: list[dict[str, Any]] = field(default_factory=list)
    confirmations: list[dict[str, Any]] = field(default_factory=list)
    slots: list[dict[str, Any]] = field(default_factory=list)
    launches: int = 0
    exhaustive: bool = False
    start: dict[str, Any] | None = None
    objective: str = "decode"
    axes: dict[str, Any] | None = None  # the launch-knob search (flows/tune/axes.py AxisSearch.to_dict)
    # --parallel: the slots probes as capacity levels and the sentence the capacity phase prints
    # (measure/phases/capacity.py serving_capacity)
    capacity: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Recorder:
    """Measures each candidate once, counting launches."""

    def __init__(self, prober: Prober, max_launches: int | None = None) -> None:
        self.prober = prober
        self.max_launches = max_launches
        self.seen: dict[Candidate, Measurement] = {}

    def __call__(self, candidate: Candidate) -> Measurement:
        if candidate not in self.seen:
            if self.max_launches is not None and len(self.seen) >= self.max_launches:
                return Measurement(candidate, False, failure="not measured: --max-launches reached")
            self.seen[candidate] = self.prober(candidate)
        return self.seen[candidate]

    def fits(self, candidate: Candidate) -> bool:
        return self(candidate).ok


def search_ngl(prober: Prober, max_ngl: int, start: int, exhaustive: bool = False, base: Candidate = Candidate(),
               max_launches: int | None = None) -> _Recorder:
    rec = _Recorder(prober, max_launches)
    at = lambda n: dataclasses.replace(base, ngl=n)  # noqa: E731
    if exhaustive:
        for n in range(max_ngl + 1):
            rec(at(n))
        return rec
    start = max(0, min(start, max_ngl))
    step = max(1, max_ngl // 4)
    if rec.fits(at(start)):
        low, high = start, None
        while low < max_ngl:
            nxt = min(max_ngl, low + step)
            if rec.fits(at(nxt)):
                low = nxt
            else:
                high = nxt
                break
    else:
        high, low = start, None
        while high > 0:
            nxt = max(0, high - step)
            if rec.fits(at(nxt)):
                low = nxt
                break
            high = nxt
        if low is None:
            return rec  # nothing fits, not even NGL 0
    if high is not None:
        while high - low > 1:  # largest fitting NGL lies in [low, high)
            mid = (low + high) // 2
            if rec.fits(at(mid)):
                low = mid
            else:
                high = mid
    # Near the limit speed is not monotonic (KV spill, compute buffers): walk down from the
    # largest fit while going down keeps getting faster (at least two steps), then one coarse point.
    rate = lambda n: rec(at(n)).tokens_per_sec or 0.0  # noqa: E731
    n = low
    while n > 0 and (n > low - 2 or rate(n - 1) > rate(n)) and rec(at(n)).ok:
        rate(n - 1)
        n -= 1
    if low * 3 // 4 < n:
        rec(at(low * 3 // 4))
    return rec


def thread_candidates(physical: int, logical: int) -> list[int]:
    values = {physical, logical, max(1, physical - 1), max(1, physical // 2)}
    return sorted(v for v in values if v >= 1)


def search_threads(prober: Prober, physical: int, logical: int, exhaustive: bool = False,
                   base: Candidate = Candidate(), max_launches: int | None = None) -> _Recorder:
    rec = _Recorder(prober, max_launches)
    values = range(1, logical + 1) if exhaustive else thread_candidates(physical, logical)
    for n in values:
        rec(dataclasses.replace(base, threads=n))
    return rec


def slot_candidates(most: int) -> list[int]:
    values, k = {most}, 1
    while k < most:
        values.add(k)
        k *= 2
    return sorted(values)


def search_slots(prober: Prober, most: int, base: Candidate, max_launches: int | None = None) -> _Recorder:
    rec = _Recorder(prober, max_launches)
    for k in slot_candidates(most):
        rec(dataclasses.replace(base, num_parallel=k))
    return rec


def choose_slots(measurements: list[Measurement]) -> Measurement | None:
    """The fewest slots within SLOT_GAIN_MIN of the best aggregate: more slots cost KV memory."""
    top = best(measurements)
    if top is None:
        return None
    enough = [m for m in measurements if m.ok and m.tokens_per_sec and m.tokens_per_sec >= top.tokens_per_sec * (1 - SLOT_GAIN_MIN)]
    return min(enough, key=lambda m: m.candidate.num_parallel or 1)


def best(measurements: list[Measurement]) -> Measurement | None:
    good = [m for m in measurements if m.ok and m.tokens_per_sec]
    return max(good, key=lambda m: m.tokens_per_sec) if good else None


def settle(prober: Prober, winner: Measurement, defaults: Measurement | None, knob: str,
           rounds: int = CONFIRM_ROUNDS) -> Choice:
    """Recommend the search's winner or the runtime's own choice, whichever measures faster.

    `knob` is the one searched: the runtime must have logged its own value for it to count as
    the same configuration (a CPU build logs no offload, so ngl is compared only where known).
    """
    knobs = winner.candidate.knobs()
    if defaults is None or not defaults.ok or not defaults.tokens_per_sec:
        why = "fastest measured" + ("" if defaults is None else f"; the runtime's defaults failed ({defaults.failure})")
        return Choice(knobs, winner.tokens_per_sec, winner.ttft_ms, why)
    if knob in defaults.effective and all(defaults.effective[k] == v for k, v in knobs.items() if k in defaults.effective):
        return Choice(knobs, winner.tokens_per_sec, winner.ttft_ms,
                      "the same values the runtime picks by itself; written down so later runs do not depend on its heuristics")
    gain = winner.tokens_per_sec / defaults.tokens_per_sec - 1
    if gain >= CLEAR_WIN:
        return Choice(knobs, winner.tokens_per_sec, winner.ttft_ms, f"{gain:+.1%} tok/s over the runtime's defaults")
    # Too close to call from one launch each: alternate, so drift on a shared machine hits both alike.
    again: list[Measurement] = []
    for _ in range(rounds):
        again += [prober(defaults.candidate), prober(winner.candidate)]
    rates = lambda c: [m.tokens_per_sec for m in [winner, defaults, *again]  # noqa: E731
                       if m.candidate == c and m.ok and m.tokens_per_sec]
    mine, theirs = statistics.median(rates(winner.candidate)), statistics.median(rates(defaults.candidate) or [0.0])
    n = len(rates(winner.candidate))
    if mine >= theirs:
        return Choice(knobs, mine, winner.ttft_ms, f"median of {n} launches {mine:.1f} tok/s vs the defaults' {theirs:.1f}", again)
    chosen = {k: v for k, v in defaults.effective.items() if k in SEARCHED_KNOBS}
    if not chosen:
        return Choice(knobs, mine, winner.ttft_ms, f"the runtime's defaults measured {theirs:.1f} vs {mine:.1f} tok/s, but it does "
                      "not log what it chose; kept the fastest explicit setting", again)
    return Choice({**knobs, **chosen}, theirs, defaults.ttft_ms,
                  f"the runtime's own choice measured fastest (median {theirs:.1f} vs {mine:.1f} tok/s); recommending "
                  "the values it logged", again)


def measurement_row(m: Measurement) -> dict[str, Any]:
    # the capacity level is the report's capacity section, not a column of the table
    return {**asdict(m.candidate), **{k: v for k, v in asdict(m).items() if k not in ("candidate", "capacity_level")}}
