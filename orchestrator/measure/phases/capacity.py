"""The capacity phase (issue #28 §3): how many users the runtime serves, at what latency.

Closed loop: 1, 2, 4 … concurrent users up to the run's top level (RunOptions.capacity max_users: auto
passes the plan's slots, whose KV cache the memory fit already holds; `run` the canonical slots), each
user sending `requests_per_user` calls back to back. Open loop: then requests arriving at fixed
intervals, at each `load_fractions` share of the best request rate the closed loop reached, so queueing
shows where the slots run out. Every call is a timed `call` line (cross-checked like every other) keyed
`capacity / users-<n> / lane = user / run_idx = turn` or `capacity / rate-<percent> / lane = request`;
each level also writes a `capacity` line with its aggregate (wall time, tokens, requests per second).

The summary (`summarise`, used by the report and by `tune --parallel`) gives per level the aggregate
tok/s, per-user tok/s (median of its calls' decode rates), TTFT p50/p95 and queueing (TTFT less the
runtime's own prompt time), marks the throughput–latency Pareto front, and finds the most concurrent
users that meet the SLO (canonical.yaml `capacity_slo`, overridable per run):
"serves N concurrent users with TTFT p95 ≤ X s and ≥ Y tok/s each".
"""

from __future__ import annotations

import concurrent.futures
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from orchestrator.core.canonical import CapacitySLO, capacity_slo, default_slots
from orchestrator.core.ledger import read_records
from orchestrator.core.records import CallKey, CapacityRecord, rounded
from orchestrator.core.runfolder import LEDGER_NAME
from orchestrator.core.runspec import RunOptions, Target
from orchestrator.measure.client import CallResult
from orchestrator.measure.cost import call_seconds, text_tokens
from orchestrator.measure.phases.base import Unit
from orchestrator.measure.phases.context import PhaseContext
from orchestrator.measure.phases.load import LoadSuite, load_suite, quantile, user_call

NAME = "capacity"


def user_levels(max_users: int) -> list[int]:
    """1, 2, 4 … below max_users, then max_users itself."""
    levels, users = [], 1
    while users < max_users:
        levels.append(users)
        users *= 2
    return levels + [max_users]


def closed_id(users: int) -> str:
    return f"users-{users}"


def open_id(fraction: float) -> str:
    return f"rate-{round(fraction * 100)}"


def capacity_settings(options: RunOptions) -> tuple[int, CapacitySLO]:
    """(top level, SLO) of this run: RunOptions.capacity over canonical.yaml."""
    given = options.capacity
    return int(given.get("max_users") or default_slots()), capacity_slo().with_overrides(given)


class CapacityPhase:
    name = NAME
    kind = NAME
    mode = NAME

    def __init__(self, suite: LoadSuite, max_users: int) -> None:
        self.suite, self.max_users = suite, max_users
        self.version, self.sha256 = suite.version, suite.sha256

    @classmethod
    def from_options(cls, options: RunOptions | None) -> "CapacityPhase":
        options = options or RunOptions(phases=[NAME])
        return cls(load_suite(), capacity_settings(options)[0])

    def sizes(self, options: RunOptions) -> tuple[list[int], int, list[float], int]:
        """(user levels, requests per user, open-loop fractions, open-loop requests); a smoke run: the
        lowest and highest level and the suite's smoke sizes."""
        data = self.suite.capacity
        levels = user_levels(self.max_users)
        if options.smoke:
            smoke = data["smoke"]
            return sorted({levels[0], levels[-1]}), smoke["requests_per_user"], smoke["load_fractions"], smoke["requests"]
        return levels, data["requests_per_user"], data["open_loop"]["load_fractions"], data["open_loop"]["requests"]

    def answer_tokens(self, num_predict: int) -> int:
        return min(self.suite.capacity["answer_tokens"], num_predict)

    def groups(self, available: list[Target]) -> tuple[list[list[Target]], str | None]:
        return [[target] for target in available], None

    def units(self, cells: list[str], options: RunOptions) -> list[Unit]:
        cell = cells[0]
        levels, per_user, fractions, requests = self.sizes(options)
        closed = [Unit(NAME, (cell,), tuple(CallKey(cell, NAME, closed_id(n), user, turn)
                                            for user in range(n) for turn in range(per_user))) for n in levels]
        opened = [Unit(NAME, (cell,), tuple(CallKey(cell, NAME, open_id(f), i, 0) for i in range(requests)))
                  for f in fractions]
        return closed + opened

    def estimate_seconds(self, decode_tokens_per_sec: float, num_predict: int, runs: int) -> float:
        """No batching gain assumed: n concurrent calls take n times one call (a CPU's case; a GPU's is faster)."""
        levels, per_user, fractions, requests = self.sizes(RunOptions(phases=[NAME]))
        prompt = text_tokens(max(len(text) for _, text in self.suite.prompts))
        call = call_seconds(prompt, self.answer_tokens(num_predict), decode_tokens_per_sec)
        closed = sum(per_user * n * call for n in levels)
        return closed + sum(requests * call / f for f in fractions)

    def run_unit(self, unit: Unit, ctx: PhaseContext) -> None:
        todo = [key for key in unit.keys if not ctx.is_done(key)]
        if not todo:
            return
        cell_id = unit.cells[0]
        target = ctx.target(cell_id)
        if target.loaded_fresh:  # every capacity call is warm
            ctx.warm_up(target, "Hello.")
        level = unit.keys[0].prompt_id
        if level.startswith("users-"):
            results, wall_s = self.closed_loop(ctx, todo)
            users, rate = len({key.lane for key in unit.keys}), None
        else:
            rate = self.open_rate(ctx, cell_id, level)
            if rate is None:
                ctx.skip(cell_id, NAME, "open loop: no closed-loop level succeeded, so there is no request rate to take a share of")
                return
            results, wall_s = self.open_loop(ctx, todo, rate)
            users = None
        tokens = sum(r.completion_tokens or 0 for r in results if not r.error)
        ctx.write(CapacityRecord(cell_id, NAME, level, "closed" if users else "open", users,
                                 rounded(rate, 3), len(results), sum(bool(r.error) for r in results),
                                 rounded(wall_s * 1000), tokens, rounded(tokens / wall_s, 2) if wall_s > 0 else None,
                                 rounded(len(results) / wall_s, 3) if wall_s > 0 else None, len(todo) < len(unit.keys)))

    def closed_loop(self, ctx: PhaseContext, todo: list[CallKey]) -> tuple[list[CallResult], float]:
        by_user: dict[int | None, list[CallKey]] = {}
        for key in todo:
            by_user.setdefault(key.lane, []).append(key)
        answer = self.answer_tokens(ctx.options.num_predict)

        def user(keys: list[CallKey]) -> list[CallResult]:
            return [user_call(ctx, self.suite, key, answer, key.run_idx) for key in keys]

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(by_user)) as pool:
            results = [r for future in [pool.submit(user, keys) for keys in by_user.values()] for r in future.result()]
        return results, time.monotonic() - started

    def open_loop(self, ctx: PhaseContext, todo: list[CallKey], rate: float) -> tuple[list[CallResult], float]:
        """Request i starts i / rate seconds after the first, whatever the earlier ones are doing."""
        answer = self.answer_tokens(ctx.options.num_predict)
        started = time.monotonic()

        def request(index: int, key: CallKey) -> CallResult:
            time.sleep(max(0.0, started + index / rate - time.monotonic()))
            return user_call(ctx, self.suite, key, answer, 0)

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(todo)) as pool:
            results = [f.result() for f in [pool.submit(request, i, key) for i, key in enumerate(todo)]]
        return results, time.monotonic() - started

    def open_rate(self, ctx: PhaseContext, cell_id: str, level: str) -> float | None:
        """The level's share of the best request rate this cell's closed loop reached (from the ledger, so a
        resumed run sends at the same rate)."""
        fraction = int(level.removeprefix("rate-")) / 100
        best = [r["requests_per_sec"] for r in read_records(ctx.run_dir / LEDGER_NAME)
                if r.get("type") == "capacity" and r["cell_id"] == cell_id and r["loop"] == "closed"
                and r["requests_per_sec"] and r["errors"] < r["calls"]]
        return fraction * max(best) if best else None


# ---------------------------------------------------------------------------------------
# The summary: the report's table and plot, the headline sentence, and `tune --parallel`


@dataclass(frozen=True)
class Level:
    cell_id: str
    level: str
    loop: str
    users: int | None
    arrival_rate_per_s: float | None
    calls: int
    errors: int
    aggregate_tokens_per_sec: float | None
    requests_per_sec: float | None
    user_tokens_per_sec_p50: float | None
    ttft_ms_p50: float | None
    ttft_ms_p95: float | None
    queue_ms_p50: float | None
    queue_ms_p95: float | None
    meets_slo: bool
    pareto: bool = False  # on the throughput–latency front: no other level has both lower TTFT p95 and more tok/s


def queue_ms(call: dict[str, Any]) -> float | None:
    """Time to first token less the runtime's own prompt time: the wait for a slot (and the HTTP round trip)."""
    if call.get("first_delta_ms") is None or call.get("server_prompt_ms") is None:
        return None
    return max(0.0, call["first_delta_ms"] - call["server_prompt_ms"])


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def level_of(cell_id: str, level: str, loop: str, users: int | None, arrival_rate_per_s: float | None, calls: int,
             errors: int, aggregate_tokens_per_sec: float | None, requests_per_sec: float | None,
             good: list[dict[str, Any]], slo: CapacitySLO) -> Level:
    """A level's figures from its successful calls (call lines, or CallResult fields: `sweep`)."""
    ttfts = [c["first_delta_ms"] for c in good if c.get("first_delta_ms") is not None]
    rates = [c["tokens_per_sec"] for c in good if c.get("tokens_per_sec") is not None]
    queues = [q for c in good if (q := queue_ms(c)) is not None]
    p95, per_user = quantile(ttfts, 0.95), quantile(rates, 0.5)
    meets = (loop == "closed" and errors == 0 and p95 is not None and per_user is not None
             and p95 <= slo.ttft_p95_s * 1000 and per_user >= slo.user_tokens_per_sec)
    return Level(cell_id, level, loop, users, arrival_rate_per_s, calls, errors, aggregate_tokens_per_sec, requests_per_sec,
                 _round(per_user, 2), _round(quantile(ttfts, 0.5)), _round(p95), _round(quantile(queues, 0.5)),
                 _round(quantile(queues, 0.95)), meets)


def summarise(records: list[dict[str, Any]], slo: CapacitySLO) -> list[Level]:
    """One Level per `capacity` line (the latest for a level that was resumed), in the order they ran."""
    lines = {(r["cell_id"], r["level"]): r for r in records if r.get("type") == "capacity"}
    calls: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for call in records:
        if call.get("type") == "call" and call.get("phase") == NAME and not call.get("error"):
            calls.setdefault((call["cell_id"], call["prompt_id"]), []).append(call)
    return pareto([level_of(cell_id, level, line["loop"], line["users"], line["arrival_rate_per_s"], line["calls"],
                            line["errors"], line["aggregate_tokens_per_sec"], line["requests_per_sec"],
                            calls.get((cell_id, level), []), slo)
                   for (cell_id, level), line in lines.items()])


def sweep(call: Callable[[int, int], CallResult], max_users: int, requests_per_user: int, slo: CapacitySLO,
          cell_id: str = "sweep") -> list[Level]:
    """The closed-loop levels without a run folder, for a caller that has its own runtime (`tune --parallel`):
    `call(user, turn)` makes one timed call; each level's users run at once. Pair with serving_capacity."""
    levels = []
    for users in user_levels(max_users):
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=users) as pool:
            results = [r for batch in pool.map(lambda u: [call(u, t) for t in range(requests_per_user)], range(users))
                       for r in batch]
        wall = time.monotonic() - started
        good = [{"first_delta_ms": r.first_delta_ms, "server_prompt_ms": r.server_prompt_ms,
                 "tokens_per_sec": r.tokens_per_sec} for r in results if not r.error]
        tokens = sum(r.completion_tokens or 0 for r in results if not r.error)
        levels.append(level_of(cell_id, closed_id(users), "closed", users, None, len(results), len(results) - len(good),
                               round(tokens / wall, 2) if wall > 0 else None, round(len(results) / wall, 3) if wall > 0 else None,
                               good, slo))
    return pareto(levels)


def pareto(levels: list[Level]) -> list[Level]:
    """Each cell's levels with `pareto` set where no other level of the cell is at least as good on both
    axes (TTFT p95 lower, aggregate tok/s higher) and better on one."""
    def point(level: Level) -> tuple[float, float] | None:
        if level.ttft_ms_p95 is None or level.aggregate_tokens_per_sec is None:
            return None
        return level.ttft_ms_p95, level.aggregate_tokens_per_sec

    out = []
    for level in levels:
        mine = point(level)
        rivals = [p for other in levels if other.cell_id == level.cell_id and other is not level and (p := point(other))]
        dominated = mine is None or any(t <= mine[0] and a >= mine[1] and (t, a) != mine for t, a in rivals)
        out.append(Level(**{**asdict(level), "pareto": not dominated}))
    return out


def serving_capacity(levels: list[Level], cell_id: str, slo: CapacitySLO) -> dict[str, Any]:
    """The headline for one cell: the most concurrent users (closed loop) that meet the SLO, and its sentence."""
    closed = [lv for lv in levels if lv.cell_id == cell_id and lv.loop == "closed" and lv.users]
    best = max((lv for lv in closed if lv.meets_slo), key=lambda lv: lv.users or 0, default=None)
    measured = max((lv.users or 0 for lv in closed), default=0)
    slo_text = f"TTFT p95 ≤ {slo.ttft_p95_s:g} s, ≥ {slo.user_tokens_per_sec:g} tok/s each"
    if best is not None:
        # the bounds rounded outward, so the sentence never claims more than was measured
        sentence = (f"serves {best.users} concurrent user{'s' if best.users != 1 else ''} with TTFT p95 ≤ "
                    f"{math.ceil((best.ttft_ms_p95 or 0) / 10) / 100:.2f} s "
                    f"and ≥ {math.floor((best.user_tokens_per_sec_p50 or 0) * 10) / 10:.1f} tok/s each "
                    f"(SLO: {slo_text}; measured up to {measured})")
    elif closed:
        first = min(closed, key=lambda lv: lv.users or 0)
        sentence = (f"meets the SLO ({slo_text}) at no concurrency measured: at {first.users} user(s) TTFT p95 "
                    f"{_seconds(first.ttft_ms_p95)} and {_rate(first.user_tokens_per_sec_p50)} each")
    else:
        sentence = "no closed-loop level completed"
    return {"cell_id": cell_id, "users": best.users if best else 0, "measured_up_to": measured,
            "ttft_p95_s": _round((best.ttft_ms_p95 or 0) / 1000, 3) if best else None,
            "user_tokens_per_sec": best.user_tokens_per_sec_p50 if best else None,
            "slo": asdict(slo), "sentence": sentence}


def _seconds(ms: float | None) -> str:
    return "–" if ms is None else f"{ms / 1000:.2f} s"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} tok/s"
