"""The endurance phase (issue #28 §4, opt-in): constant load for `--endurance-minutes` (default 10),
to see whether the decode rate holds or drifts as the machine heats up.

`users` simulated users (default: the run's capacity top level, every slot busy) send calls back to
back for the whole phase, so the load never changes; the phase is cut into time buckets
(suites/load/load.json `bucket_seconds`, the last one shorter), one unit each. Every call is a timed
`call` line keyed `endurance / bucket-<b> / lane = user / run_idx = its turn in the bucket`, tagged
`throttled` when a thermal sample during it said so (resources.py); each bucket writes an `endurance`
line with its decode rate and the thermal readings of its samples (CPU frequency per core,
temperatures, GPU clocks and throttle reasons where exposed). A resumed run skips the buckets already
begun: a broken stretch of load cannot be continued.

A unit lists each user's first call of its bucket; the rest follow while the bucket lasts.
"""

from __future__ import annotations

import concurrent.futures
import math
import statistics
import time
from typing import Any

from orchestrator.core.records import CallKey, EnduranceRecord, rounded
from orchestrator.core.runspec import RunOptions, Target
from orchestrator.measure.client import CallResult
from orchestrator.measure.phases.base import Unit
from orchestrator.measure.phases.capacity import capacity_settings
from orchestrator.measure.phases.context import PhaseContext
from orchestrator.measure.phases.load import LoadSuite, load_suite, user_call

NAME = "endurance"
DEFAULT_MINUTES = 10.0


def bucket_id(bucket: int) -> str:
    return f"bucket-{bucket}"


def endurance_settings(options: RunOptions) -> tuple[float, int]:
    """(minutes, users) of this run: RunOptions.endurance over the defaults."""
    given = options.endurance
    return float(given.get("minutes") or DEFAULT_MINUTES), int(given.get("users") or capacity_settings(options)[0])


class EndurancePhase:
    name = NAME
    kind = NAME
    mode = NAME

    def __init__(self, suite: LoadSuite, minutes: float, users: int) -> None:
        self.suite, self.minutes, self.users = suite, minutes, users
        self.version, self.sha256 = suite.version, suite.sha256
        self.phase_started: float | None = None  # when this run's first bucket began (monotonic)

    @classmethod
    def from_options(cls, options: RunOptions | None) -> "EndurancePhase":
        options = options or RunOptions(phases=[NAME])
        return cls(load_suite(), *endurance_settings(options))

    def buckets(self) -> list[float]:
        """Each bucket's seconds: whole buckets, then what is left of the phase."""
        total, size = self.minutes * 60, float(self.suite.endurance["bucket_seconds"])
        count = max(1, math.ceil(total / size - 1e-9))
        return [size] * (count - 1) + [round(total - size * (count - 1), 3)]

    def groups(self, available: list[Target]) -> tuple[list[list[Target]], str | None]:
        return [[target] for target in available], None

    def units(self, cells: list[str], options: RunOptions) -> list[Unit]:
        cell = cells[0]
        return [Unit(NAME, (cell,), tuple(CallKey(cell, NAME, bucket_id(b), user, 0) for user in range(self.users)))
                for b in range(len(self.buckets()))]

    def estimate_seconds(self, decode_tokens_per_sec: float, num_predict: int, runs: int) -> float:
        return self.minutes * 60

    def run_unit(self, unit: Unit, ctx: PhaseContext) -> None:
        if any(ctx.is_done(key) for key in unit.keys):
            return  # begun before an interruption
        cell_id = unit.cells[0]
        target = ctx.target(cell_id)
        if target.loaded_fresh:
            ctx.warm_up(target, "Hello.")
        bucket = int(unit.keys[0].prompt_id.removeprefix("bucket-"))
        seconds = self.buckets()[bucket]
        started = time.monotonic()
        self.phase_started = self.phase_started if self.phase_started is not None else started
        answer = min(self.suite.endurance["answer_tokens"], ctx.options.num_predict)
        ends = started + seconds

        def user(first: CallKey) -> list[CallResult]:
            results, turn = [], 0
            while turn == 0 or time.monotonic() < ends:  # every user makes at least the unit's listed call
                key = CallKey(first.cell_id, NAME, first.prompt_id, first.lane, turn)
                results.append(user_call(ctx, self.suite, key, answer, turn))
                turn += 1
                ctx.total_in_phase = max(ctx.total_in_phase, ctx.done_in_phase + 1)  # the bar has no fixed end
            return results

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(unit.keys)) as pool:
            results = [r for f in [pool.submit(user, key) for key in unit.keys] for r in f.result()]
        finished = time.monotonic()
        ctx.write(self.bucket_record(ctx, cell_id, bucket, len(unit.keys), started, finished, results))

    def bucket_record(self, ctx: PhaseContext, cell_id: str, bucket: int, users: int, started: float, finished: float,
                      results: list[CallResult]) -> EnduranceRecord:
        good = [r for r in results if not r.error]
        tokens = sum(r.completion_tokens or 0 for r in good)
        rates = [r.tokens_per_sec for r in good if r.tokens_per_sec]
        thermal = self.thermal(ctx, started, finished)
        wall = finished - started
        return EnduranceRecord(cell_id, NAME, bucket, round(started - (self.phase_started or started), 1), round(wall, 1),
                               users, len(results), len(results) - len(good), tokens,
                               rounded(tokens / wall, 2) if wall > 0 else None,
                               rounded(statistics.median(rates), 2) if rates else None, **thermal)

    @staticmethod
    def thermal(ctx: PhaseContext, t0: float, t1: float) -> dict[str, Any]:
        """The bucket's thermal samples summarised (resources.py); all None without a sampler or sensors."""
        samples = [s for s in (ctx.sampler.window(t0, t1) if ctx.sampler else []) if s.throttling is not None or s.cpu_freq_mhz]
        freqs = [s.cpu_freq_mhz for s in samples if s.cpu_freq_mhz]
        cores = min((len(f) for f in freqs), default=0)

        def extreme(name: str, pick: Any) -> float | None:
            values = [getattr(s, name) for s in samples if getattr(s, name) is not None]
            return pick(values) if values else None

        judged = [s.throttling for s in samples if s.throttling is not None]
        return {"cpu_freq_mhz_mean": [round(statistics.mean(f[i] for f in freqs), 1) for i in range(cores)] or None,
                "cpu_temp_c_max": extreme("cpu_temp_c", max), "gpu_temp_c_max": extreme("gpu_temp_c", max),
                "gpu_sm_clock_mhz_min": extreme("gpu_sm_clock_mhz", min),
                "throttling": sorted({tag for tags in judged for tag in tags}) if judged else None,
                "sensors": list(ctx.sampler.sensors or []) if ctx.sampler else []}
