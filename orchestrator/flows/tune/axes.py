"""The launch-knob search, pure over a Prober: coordinate descent over the runtime's tune_axes from a
start (llama-server's defaults with the NGL/threads tune found), keeping a change only when it beats
the incumbent beyond the noise measured by launching the start repeatedly; `exhaustive` measures the
grid instead. Lossy values (`gate: kld`) are kept only within a KL-divergence budget, measured before
anything is launched for them."""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable

from orchestrator.flows.tune.search import Candidate, Measurement, Prober

OBJECTIVES = ("decode", "prefill", "balanced")
NOISE_LAUNCHES = 3  # launches of the start that measure the noise a kept change must beat
NOISE_FLOOR = 0.01  # below this, "noise" of a few launches is luck: a change must still gain 1%
PASSES = 2  # a second pass revisits axes whose best value may have moved with the others
CORE_SYMBOLS = ("physical_cores", "logical_cores")


@dataclass(frozen=True)
class Axis:
    name: str
    why: str
    values: tuple[dict[str, Any], ...]  # each sets one or more knobs; the runtime's default is not listed
    gate: str | None = None  # kld: lossy, measured against the reference before it may be kept

    @property
    def knobs(self) -> tuple[str, ...]:
        return tuple(sorted({k for v in self.values for k in v}))

    def default(self) -> dict[str, Any]:
        return {k: None for k in self.knobs}


@dataclass(frozen=True)
class Kld:
    mean: float
    plus_minus: float | None = None


KldMeter = Callable[[dict[str, Any]], Kld]  # knobs of a lossy value -> its KLD against the reference


def score(m: Measurement, objective: str) -> float | None:
    """The number the search maximises: decode tok/s, prefill tok/s, or their geometric mean."""
    if not m.ok:
        return None
    if objective == "decode":
        return m.tokens_per_sec
    if objective == "prefill":
        return m.prefill_tokens_per_sec
    if m.tokens_per_sec and m.prefill_tokens_per_sec:
        return math.sqrt(m.tokens_per_sec * m.prefill_tokens_per_sec)
    return None


def relative_spread(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values) if len(values) > 1 and statistics.median(values) else 0.0


def resolve_axes(tune_axes: dict[str, dict[str, Any]], knobs: dict[str, dict[str, str]], physical: int, logical: int,
                 model_in_ram: bool, only: list[str] | None = None) -> tuple[list[Axis], dict[str, str]]:
    """The runtime's axes on this machine, and why each one left out is: a knob the runtime maps to
    nothing, memory the load mode needs, or not asked for (`only`)."""
    axes, skipped = [], {}
    for name, spec in tune_axes.items():
        if only is not None and name not in only:
            skipped[name] = "not asked for (--axes)"
            continue
        lacking = sorted({k for v in spec["values"] for k in v if k not in knobs or "unsupported" in knobs[k]})
        if lacking:
            skipped[name] = f"the runtime has no {', '.join(lacking)}"
            continue
        if spec.get("requires") == "model_in_ram" and not model_in_ram:
            skipped[name] = "the model does not fit the RAM budget twice over"
            continue
        counts = {"physical_cores": physical, "logical_cores": logical}
        values = []
        for value in spec["values"]:
            resolved = {k: counts.get(v, v) if isinstance(v, str) else v for k, v in value.items()}
            if resolved not in values:  # physical and logical counts coincide on a machine without SMT
                values.append(resolved)
        axes.append(Axis(name, spec["why"], tuple(values), spec.get("gate")))
    if only is not None and (unknown := sorted(set(only) - set(tune_axes))):
        raise ValueError(f"unknown tune axis {', '.join(unknown)} (this runtime's: {', '.join(tune_axes)})")
    return axes, skipped


@dataclass
class AxisSearch:
    objective: str
    exhaustive: bool
    start: Candidate
    noise: float  # relative: a change is kept when it scores above incumbent * (1 + noise)
    start_scores: list[float]
    best: Measurement | None
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)  # axis -> {why, gate, values: [...], kept}
    grid: list[dict[str, Any]] = field(default_factory=list)  # exhaustive: every cell measured
    skipped: dict[str, str] = field(default_factory=dict)
    max_kld: float | None = None
    launches: int = 0
    compound: dict[str, Any] | None = None  # the small gains launched together (_compound)

    def chosen_knobs(self) -> dict[str, Any]:
        return self.best.candidate.knobs() if self.best else {}

    def to_dict(self) -> dict[str, Any]:
        return {"objective": self.objective, "exhaustive": self.exhaustive, "start": self.start.knobs(),
                "noise": round(self.noise, 4), "start_scores": [round(s, 2) for s in self.start_scores],
                "chosen": self.chosen_knobs(), "chosen_score": self.best and _rounded(score(self.best, self.objective)),
                "max_kld": self.max_kld, "launches": self.launches, "axes": self.evidence, "grid": self.grid,
                "skipped": self.skipped, "compound": self.compound}


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


class _Gate:
    """KLD per lossy value, measured once each; a value over the budget is never launched."""

    def __init__(self, meter: KldMeter | None, max_kld: float | None) -> None:
        self.meter, self.max_kld, self.seen = meter, max_kld, {}

    def check(self, axis: Axis, value: dict[str, Any]) -> tuple[Kld | None, str | None]:
        """(its KLD, why it is refused or None)."""
        if axis.gate != "kld" or all(v is None for v in value.values()):
            return None, None  # the runtime's default is the reference
        if self.meter is None:
            return None, "no KLD tool to measure its loss with"
        key = tuple(sorted(value.items()))
        if key not in self.seen:
            self.seen[key] = self.meter(value)
        kld = self.seen[key]
        if self.max_kld is not None and kld.mean > self.max_kld:
            return kld, f"KLD {kld.mean:.4g} over the budget {self.max_kld:g}"
        return kld, None


def _row(m: Measurement | None, objective: str, value: dict[str, Any], kld: Kld | None, refused: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {"value": value, "kld": kld and round(kld.mean, 6), "kld_plus_minus": kld and kld.plus_minus,
                           "refused": refused}
    if m is not None:
        row.update(ok=m.ok, score=_rounded(score(m, objective)), decode=_rounded(m.tokens_per_sec),
                   prefill=_rounded(m.prefill_tokens_per_sec), decode_spread=m.decode_spread,
                   repetitive=_rounded(m.repetitive_tokens_per_sec), draft_acceptance=m.draft_acceptance,
                   load_s=m.load_s, failure=m.failure)
    return row


def search_axes(prober: Prober, start: Candidate, axes: list[Axis], objective: str = "decode",
                kld: KldMeter | None = None, max_kld: float | None = None, exhaustive: bool = False,
                max_launches: int | None = None, noise_launches: int = NOISE_LAUNCHES) -> AxisSearch:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r}: one of {', '.join(OBJECTIVES)}")
    launches = 0
    seen: dict[Candidate, Measurement] = {}

    def measure(candidate: Candidate, again: bool = False) -> Measurement | None:
        nonlocal launches
        if candidate in seen and not again:
            return seen[candidate]
        if max_launches is not None and launches >= max_launches:
            return None
        launches += 1
        seen[candidate] = prober(candidate)
        return seen[candidate]

    gate = _Gate(kld, max_kld)
    first = [m for m in (measure(start, again=True) for _ in range(max(1, noise_launches))) if m is not None]
    start_scores = [s for s in (score(m, objective) for m in first) if s]
    noise = max(NOISE_FLOOR, relative_spread(start_scores))
    result = AxisSearch(objective, exhaustive, start, noise, start_scores, None, max_kld=max_kld)
    if not start_scores:
        result.launches = launches
        return result  # the start does not run: nothing to compare with
    incumbent = first[-1]
    incumbent_score = statistics.median(start_scores)
    if exhaustive:
        result.best, result.grid = _grid(measure, start, axes, objective, gate, incumbent, incumbent_score)
        result.launches = launches
        return result
    for axis in axes:
        result.evidence[axis.name] = {"why": axis.why, "gate": axis.gate, "values": [], "kept": None}
    evaluated: set[Candidate] = set()
    tentative: dict[str, tuple[float, dict[str, Any]]] = {}  # axis -> its best single launch within the noise
    pending = list(axes)
    for pass_number in range(PASSES):
        last_change = None
        for index, axis in enumerate(pending):
            contenders = []
            for value in [axis.default(), *axis.values]:
                candidate = dataclasses.replace(incumbent.candidate, **value)
                if candidate == incumbent.candidate:
                    continue
                kld_value, refused = gate.check(axis, value)
                new = candidate not in evaluated
                evaluated.add(candidate)
                m = None if refused else measure(candidate)
                if m is None and refused is None:
                    refused = "not measured: --max-launches reached"
                if new:  # the second pass re-uses what the first measured
                    result.evidence[axis.name]["values"].append({"pass": pass_number + 1, "over": incumbent.candidate.knobs(),
                                                                 **_row(m, objective, value, kld_value, refused)})
                s = m and score(m, objective)
                if s and s > incumbent_score * (1 + noise):
                    contenders.append((s, m, value))
                elif s and s > incumbent_score and s > tentative.get(axis.name, (0.0, {}))[0]:
                    tentative[axis.name] = (s, value)  # ahead, but within the noise: maybe part of a sum
            for s, m, value in sorted(contenders, key=lambda c: -c[0]):
                # One lucky launch is not a win: the contender launches again and both must clear the band.
                again = measure(m.candidate, again=True)
                confirmed = again and score(again, objective)
                result.evidence[axis.name].setdefault("confirmations", []).append(
                    {"value": value, "scores": [_rounded(s), _rounded(confirmed)]})
                if confirmed and confirmed > incumbent_score * (1 + noise):
                    incumbent_score, incumbent = min(s, confirmed), m
                    result.evidence[axis.name]["kept"] = value
                    tentative.pop(axis.name, None)
                    last_change = index
                    break
        if last_change is None:
            break
        # The axes after the last kept change were searched around the final incumbent already: only
        # those before it are searched again.
        pending = pending[:last_change]
    incumbent = _compound(measure, incumbent, incumbent_score, tentative, noise, objective, result)
    result.best = incumbent
    result.launches = launches
    return result


def _compound(measure: Callable[..., Measurement | None], incumbent: Measurement, incumbent_score: float,
              tentative: dict[str, tuple[float, dict[str, Any]]], noise: float, objective: str,
              result: AxisSearch) -> Measurement:
    """Gains each smaller than the noise may add up to one beyond it: the values that measured ahead of
    the incumbent on their own are launched together, and kept together if that clears the band twice."""
    if len(tentative) < 2:
        return incumbent
    values = {name: value for name, (_, value) in tentative.items()}
    candidate = dataclasses.replace(incumbent.candidate, **{k: v for value in values.values() for k, v in value.items()})
    first = measure(candidate)
    again = first and measure(candidate, again=True)
    scores = [score(m, objective) if m else None for m in (first, again)]
    kept = all(s and s > incumbent_score * (1 + noise) for s in scores)
    result.compound = {"values": values, "scores": [_rounded(s) for s in scores], "kept": kept}
    if not kept:
        return incumbent
    for name, value in values.items():
        result.evidence[name]["kept"] = value
    return first


def _grid(measure: Callable[[Candidate], Measurement | None], start: Candidate, axes: list[Axis], objective: str,
          gate: _Gate, incumbent: Measurement, incumbent_score: float) -> tuple[Measurement, list[dict[str, Any]]]:
    """Every combination of every axis' values (the runtime's default included); the best scoring one."""
    best, best_score, cells = incumbent, incumbent_score, []
    for combo in itertools.product(*[[axis.default(), *axis.values] for axis in axes]):
        knobs = {k: v for value in combo for k, v in value.items()}
        refusals = [gate.check(axis, value) for axis, value in zip(axes, combo)]
        refused = next((why for _, why in refusals if why), None)
        kld_value = next((k for k, _ in refusals if k), None)
        candidate = dataclasses.replace(start, **knobs)
        m = None if refused else measure(candidate)
        cells.append(_row(m, objective, {k: v for k, v in knobs.items() if v is not None}, kld_value, refused))
        s = m and score(m, objective)
        if s and s > best_score:
            best, best_score = m, s
    return best, cells

