"""Pure scoring and reporting helpers over `quality` / `quality_rescore` records.

Strict pass@1 per pack with its 95% Wilson interval, per tier (easy/medium/hard) and at check
level (IFEval-style: checks met over checks asked, so partial compliance shows); the interval on
a difference between two pass rates (Newcombe's, from the two Wilson intervals) behind compare;
with `--repeat N` the per-pack mean, population std and CV of the arms' pass rates; per-case timeouts scaled by the measured decode rate; latency p50/p95; the
Markdown table, failure breakdown and one-line summary for run.md; the compare classification
against n ≥ 3 baseline runs; and the filters behind `quality inspect`.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from orchestrator.core.errors import BadInput
from orchestrator.evaluate.quality.packs import PACK_ORDER, Pack
from orchestrator.evaluate.quality.verdict import INFRA_MODES


def case_timeout(pack: Pack, measured_tps: float | None, max_tokens: int | None = None) -> float:
    """Seconds for one scenario: the pack's time at its reference decode rate, stretched for a
    slower machine (never shrunk for a faster one) and for a larger token budget, up to the ceiling.
    Without a measured rate, the pack's own time."""
    slower = max(1.0, pack.timeout_reference_tps / measured_tps) if measured_tps and measured_tps > 0 else 1.0
    longer = max(1.0, max_tokens / pack.max_tokens) if max_tokens else 1.0
    return min(pack.case_seconds * slower * longer, pack.timeout_ceiling_s)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank value at `fraction` (p95: index round(0.95·(n−1)) of the sorted values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[round(fraction * (len(ordered) - 1))]


Z95 = 1.959964  # the normal quantile of a two-sided 95% interval
TIERS = ("easy", "medium", "hard")


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def wilson(passed: int, total: int, z: float = Z95) -> Interval:
    """The Wilson score interval of a pass rate: honest at 0%, 100% and small n, where p ± z·se is not.
    Repeated arms of one scenario are not independent draws, so with --repeat it is narrower than it should be."""
    if total <= 0:
        return Interval(0.0, 1.0)
    p = passed / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    spread = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return Interval(max(0.0, centre - spread), min(1.0, centre + spread))


def difference_interval(passed_a: int, total_a: int, passed_b: int, total_b: int) -> Interval:
    """95% interval on rate_b − rate_a (Newcombe's hybrid score method, from the two Wilson intervals):
    a difference is significant when it excludes 0."""
    a, b = passed_a / total_a, passed_b / total_b
    wa, wb = wilson(passed_a, total_a), wilson(passed_b, total_b)
    d = b - a
    return Interval(d - math.sqrt((b - wb.low) ** 2 + (wa.high - a) ** 2),
                    d + math.sqrt((wb.high - b) ** 2 + (a - wa.low) ** 2))


@dataclass(frozen=True)
class PackScore:
    pack: str
    version: int
    passed: int
    total: int
    score: float  # passed / total over every arm: strict pass@1
    p50_s: float | None
    p95_s: float | None
    serving_errors: int  # timeout, http_error, server_error verdicts
    repeat: int
    mean: float | None = None  # with repeat > 1: of the arms' pass rates
    std: float | None = None  # population std
    cv: float | None = None  # std / mean; None when the mean is 0
    low: float | None = None  # the score's 95% Wilson interval
    high: float | None = None
    checks_met: int = 0  # over the calls whose scenario has several checks (records carry them since the v2 verifiers)
    checks_asked: int = 0
    check_accuracy: float | None = None  # checks_met / checks_asked
    tiers: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)  # tier -> {"passed", "total"}

    @property
    def status(self) -> str:
        return "ok" if not self.serving_errors else f"{self.serving_errors} serving error(s)"


def _order(pack_id: str) -> tuple:
    return (PACK_ORDER.index(pack_id) if pack_id in PACK_ORDER else len(PACK_ORDER), pack_id)


def pack_scores(records: Iterable[dict[str, Any]]) -> tuple[PackScore, ...]:
    """One score per pack from effective records (see records.effective), in canonical pack order."""
    by_pack: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_pack[record["pack"]].append(record)
    scores = []
    for pack_id in sorted(by_pack, key=_order):
        rows = by_pack[pack_id]
        passed = sum(r["passed"] for r in rows)
        latencies = [r["latency_s"] for r in rows if r.get("latency_s") is not None]
        arms: dict[int, list[bool]] = defaultdict(list)
        for r in rows:
            arms[r["repeat_idx"]].append(r["passed"])
        rates = [sum(arm) / len(arm) for arm in arms.values()]
        mean = std = cv = None
        if len(rates) > 1:
            mean, std = statistics.fmean(rates), statistics.pstdev(rates)
            cv = std / mean if mean > 0 else None
        interval = wilson(passed, len(rows))
        met = sum(r.get("checks_met") or 0 for r in rows if r.get("checks_asked"))
        asked = sum(r.get("checks_asked") or 0 for r in rows)
        tiers = {tier: {"passed": sum(r["passed"] for r in rows if r.get("level") == tier),
                        "total": sum(r.get("level") == tier for r in rows)} for tier in TIERS}
        scores.append(PackScore(pack_id, max(r["pack_version"] for r in rows), passed, len(rows), passed / len(rows),
                                percentile(latencies, 0.5) if latencies else None, percentile(latencies, 0.95),
                                sum(r["failure_mode"] in INFRA_MODES for r in rows), len(rates), mean, std, cv,
                                round(interval.low, 4), round(interval.high, 4), met, asked,
                                round(met / asked, 4) if asked else None,
                                {tier: n for tier, n in tiers.items() if n["total"]}))
    return tuple(scores)


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}s"


def _tier(counts: dict[str, int] | None) -> str:
    return f"{counts['passed']}/{counts['total']}" if counts else "–"


def markdown_table(scores: Sequence[PackScore]) -> str:
    """Per pack: pass rate with its 95% Wilson interval, check-level accuracy, each tier, latency."""
    repeats = any(s.repeat > 1 for s in scores)
    head = (["Pack", "Pass / Total", "Score", "95% CI", "Checks met", "Easy", "Medium", "Hard", "p50 latency",
             "p95 latency", "Status"] + (["Std", "CV"] if repeats else []))
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for s in scores:
        checks = f"{s.checks_met}/{s.checks_asked} ({s.check_accuracy:.0%})" if s.checks_asked else "–"
        row = [f"{s.pack} (v{s.version})", f"{s.passed} / {s.total}", f"{s.score:.0%}", interval_text(s.low, s.high),
               checks, *(_tier(s.tiers.get(t)) for t in TIERS), _seconds(s.p50_s), _seconds(s.p95_s), s.status]
        if repeats:
            row += ["–" if s.std is None else f"{s.std:.3f}", "–" if s.cv is None else f"{s.cv:.3f}"]
        lines.append("| " + " | ".join(row) + " |")
    passed, total = sum(s.passed for s in scores), sum(s.total for s in scores)
    if total:
        overall = wilson(passed, total)
        lines.append("| " + " | ".join(["TOTAL", f"{passed} / {total}", f"{passed / total:.0%}",
                                       interval_text(overall.low, overall.high)] + [""] * 7
                                       + (["", ""] if repeats else [])) + " |")
    return "\n".join(lines)


def interval_text(low: float | None, high: float | None) -> str:
    """`41–59%`: a 95% interval in percent, `–` when there is none."""
    return "–" if low is None or high is None else f"{low:.0%}–{high:.0%}"


def failure_breakdown(records: Iterable[dict[str, Any]]) -> list[str]:
    """One Markdown bullet per failed call: pack, scenario (#arm with repeats), failure mode, detail."""
    rows = [r for r in records if not r["passed"]]
    repeats = any(r["repeat_idx"] for r in rows)
    rows.sort(key=lambda r: (_order(r["pack"]), r["scenario"], r["repeat_idx"]))
    lines = []
    for r in rows:
        arm = f" #{r['repeat_idx']}" if repeats else ""
        lines.append(f"- {r['pack']} {r['scenario']}{arm}: {r['failure_mode']} ({r['detail']})")
    return lines


def one_liner(scores: Sequence[PackScore], mode: str, date: str) -> str:
    """`Quality: toolcall 9/12 (75%, 95% CI 47–91%) · instruct … (quick, packs v1, 2026-11-29)`."""
    versions = sorted({s.version for s in scores})
    packs = " · ".join(f"{s.pack} {s.passed}/{s.total} ({s.score:.0%}, 95% CI {interval_text(s.low, s.high)})"
                       for s in scores)
    return f"Quality: {packs} ({mode}, packs {'/'.join(f'v{v}' for v in versions)}, {date})"


# ---------------------------------------------------------------------------------------
# compare

DELTA_CLASSES = ("regression", "fix", "stable_pass", "stable_fail", "new", "dropped")
PASS_THRESHOLD = 0.5  # a scenario passes in a set of runs when at least half its calls pass
MIN_BASELINE_RUNS = 3


@dataclass(frozen=True)
class ScenarioDelta:
    pack: str
    scenario: str
    status: str  # one of DELTA_CLASSES
    baseline_rate: float | None
    candidate_rate: float | None


def _rates(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str], float]:
    calls: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for r in records:
        calls[(r["pack"], r["scenario"])].append(r["passed"])
    return {key: sum(v) / len(v) for key, v in calls.items()}


def classify(baselines: Sequence[Iterable[dict[str, Any]]], candidate: Iterable[dict[str, Any]],
             min_runs: int = MIN_BASELINE_RUNS) -> tuple[ScenarioDelta, ...]:
    """Each scenario of the baseline runs (one cell's effective records per run) and the candidate,
    classified. A regression is a scenario that passed in the baseline set and fails now."""
    if len(baselines) < min_runs:
        raise BadInput(f"a quality compare needs at least {min_runs} baseline runs (got {len(baselines)}): "
                       f"one run's noise would read as regressions")
    base = _rates(r for run in baselines for r in run)
    cand = _rates(candidate)
    deltas = []
    for key in sorted(base.keys() | cand.keys(), key=lambda k: (_order(k[0]), k[1])):
        b, c = base.get(key), cand.get(key)
        if b is None:
            status = "new"
        elif c is None:
            status = "dropped"
        else:
            was, now = b >= PASS_THRESHOLD, c >= PASS_THRESHOLD
            status = {(True, False): "regression", (False, True): "fix", (True, True): "stable_pass",
                      (False, False): "stable_fail"}[(was, now)]
        deltas.append(ScenarioDelta(key[0], key[1], status, b, c))
    return tuple(deltas)


# ---------------------------------------------------------------------------------------
# inspect


@dataclass(frozen=True)
class InspectRow:
    record: dict[str, Any]  # the effective record
    message: dict[str, Any] | None  # the saved assistant message, None when it is missing
    other: dict[str, Any] | None = None  # with a diff: the other run's record for the same call


def inspect(records: Iterable[dict[str, Any]], responses: Iterable[dict[str, Any]], *, failed: bool = False,
            scenario: str | None = None, mode: str | None = None,
            diff: Iterable[dict[str, Any]] | None = None) -> tuple[InspectRow, ...]:
    """The calls that match every filter given; with `diff`, only those whose pass/fail differs
    from the other run's (or that only one run has)."""
    saved = {tuple(line["key"]): line.get("message") for line in responses if isinstance(line.get("key"), list)}
    others = {(r["pack"], r["scenario"], r["repeat_idx"]): r for r in diff} if diff is not None else None
    rows = []
    for r in records:
        if failed and r["passed"]:
            continue
        if scenario and r["scenario"] != scenario:
            continue
        if mode and r["failure_mode"] != mode:
            continue
        other = None
        if others is not None:
            other = others.get((r["pack"], r["scenario"], r["repeat_idx"]))
            if other is not None and other["passed"] == r["passed"]:
                continue
        rows.append(InspectRow(r, saved.get(tuple(r["response_ref"])), other))
    return tuple(rows)
