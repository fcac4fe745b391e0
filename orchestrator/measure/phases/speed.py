"""Speed phases: the suites in suites/*.json, one class per mode.

    cold_warm  1 cold + N warm calls per item (cold = restart or unload; a runtime weeyuga
               cannot make cold records its first call as load_state process_warm, not cold)
    once       each item once (`document`: the same, with one shared document before every item)
    parallel   `lanes` threads run the items at once; a `lanes` record holds the aggregate
    append     one conversation growing toward num_ctx

Smoke runs take one item per phase (and two lanes, no warm repeats).
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

from orchestrator.measure.client import CallResult
from orchestrator.measure.cost import call_seconds, speed_answer_tokens, text_tokens
from orchestrator.core.records import CallKey, LanesRecord, rounded
from orchestrator.core.runspec import RunOptions, Target
from orchestrator.measure.suites import Item, Suite, format_ok, marker_hit
from orchestrator.measure.phases.base import Unit
from orchestrator.measure.phases.context import PhaseContext


class SpeedPhase:
    """What every speed mode shares: the suite, its items, estimates and the call itself."""

    kind = "speed"
    calls_fixed = True  # its units' calls all run (what a measured call's seconds multiply)

    def __init__(self, suite: Suite, num_ctx: int = RunOptions.num_ctx) -> None:
        self.suite = suite
        self.num_ctx = num_ctx  # what the estimate of a conversation that grows toward it stops at
        self.name, self.version, self.sha256, self.mode = suite.name, suite.version, suite.sha256, suite.mode
        self._items = {item.id: item for item in suite.items}

    def items(self, options: RunOptions) -> list[Item]:
        return self.suite.items[:1] if options.smoke else self.suite.items

    def groups(self, available: list[Target]) -> tuple[list[list[Target]], str | None]:
        return [[target] for target in available], None

    def calls_per_item(self, runs: int) -> int:
        return 1

    def item_series(self, cells: list[str], options: RunOptions, calls: int) -> list[Unit]:
        """One unit per item: `calls` calls of it in a row (run_idx 0 … calls - 1) on the first cell."""
        return [Unit(self.name, (cells[0],), tuple(CallKey(cells[0], self.name, item.id, None, i) for i in range(calls)))
                for item in self.items(options)]

    def estimate_seconds(self, decode_tokens_per_sec: float, num_predict: int, runs: int) -> float:
        """Every call on its own (a parallel phase's lanes share the machine: as one stream, they queue)."""
        system = len(self.suite.system or "")
        return self.calls_per_item(runs) * sum(
            call_seconds(text_tokens(system + len(i.prompt)), speed_answer_tokens(i.capped_tokens(num_predict)),
                         decode_tokens_per_sec) for i in self.suite.items)

    def call(self, ctx: PhaseContext, key: CallKey, history: list[dict[str, Any]] | None = None,
             cache_prompt: bool | None = None, **how: Any) -> CallResult:
        item = self._items[key.prompt_id]
        system = [{"role": "system", "content": self.suite.system}] if self.suite.system else []
        messages = system + (history or []) + [{"role": "user", "content": item.prompt}]
        request = ctx.request(key, messages, item.capped_tokens(ctx.options.num_predict), cache_prompt=cache_prompt)
        return ctx.chat(request, key_fields=key, **how,
                        grade=lambda text: (format_ok(item.format, text), marker_hit(item.markers, text)))

    @staticmethod
    def first_call_state(target: Target) -> dict[str, Any]:
        """A call to a freshly (re)started runtime is the cold one, whatever phase makes it."""
        return {"load_state": "cold", "cold_kind": target.cold_kind} if target.loaded_fresh else {}


class ColdWarmPhase(SpeedPhase):
    def calls_per_item(self, runs: int) -> int:
        return 1 + runs

    def units(self, cells: list[str], options: RunOptions) -> list[Unit]:
        return self.item_series(cells, options, 1 + (0 if options.smoke else options.runs))

    def run_unit(self, unit: Unit, ctx: PhaseContext) -> None:
        todo = [key for key in unit.keys if not ctx.is_done(key)]
        if not todo:
            return
        target = ctx.target(unit.cells[0])
        cold_kind = None
        if todo[0].run_idx == 0:
            cold_kind = target.make_cold()
        else:
            ctx.warm_up(target, self._items[todo[0].prompt_id].prompt)
        for key in todo:
            first = key.run_idx == 0
            self.call(ctx, key, load_state=target.cold_load_state if first else "warm", cold_kind=cold_kind if first else None)


class OncePhase(SpeedPhase):
    def units(self, cells: list[str], options: RunOptions) -> list[Unit]:
        return [Unit(self.name, (cells[0],), (CallKey(cells[0], self.name, item.id, None, 0),)) for item in self.items(options)]

    def run_unit(self, unit: Unit, ctx: PhaseContext) -> None:
        for key in unit.keys:
            if not ctx.is_done(key):
                self.call(ctx, key, **self.first_call_state(ctx.target(key.cell_id)))


class AppendPhase(SpeedPhase):
    calls_fixed = False  # it stops where the conversation nears num_ctx: how many calls depends on the answers

    def estimate_seconds(self, decode_tokens_per_sec: float, num_predict: int, runs: int) -> float:
        """Each turn prefills the whole conversation so far, until it nears num_ctx (as run_unit stops)."""
        limit = (self.suite.stop_at_context_fraction or 1.0) * self.num_ctx
        chars, answers, seconds, last = len(self.suite.system or ""), 0.0, 0.0, 0.0
        for item in self.suite.items:
            if last + item.capped_tokens(num_predict) > limit:
                break
            chars += len(item.prompt)
            prompt, answer = text_tokens(chars) + answers, speed_answer_tokens(item.capped_tokens(num_predict))
            seconds += call_seconds(prompt, answer, decode_tokens_per_sec)
            answers, last = answers + answer, prompt + answer
        return seconds

    def units(self, cells: list[str], options: RunOptions) -> list[Unit]:
        return [Unit(self.name, (cells[0],), tuple(CallKey(cells[0], self.name, item.id, None, 0) for item in self.items(options)))]

    def run_unit(self, unit: Unit, ctx: PhaseContext) -> None:
        cell_id = unit.cells[0]
        target = ctx.target(cell_id)
        history: list[dict[str, Any]] = []
        saved = ctx.saved_responses(cell_id, self.name)
        limit = (self.suite.stop_at_context_fraction or 1.0) * ctx.options.num_ctx
        last_prompt_tokens = 0
        for key in unit.keys:
            item = self._items[key.prompt_id]
            if ctx.is_done(key):
                text = saved.get(key.as_tuple())
                if text is None:
                    ctx.skip(cell_id, self.name, "resume: earlier turns' text is missing from responses.jsonl")
                    return
            else:
                if last_prompt_tokens + item.capped_tokens(ctx.options.num_predict) > limit:
                    break  # the conversation has reached the context budget: that is the point of this phase
                result = self.call(ctx, key, history, **self.first_call_state(target))
                if result.error:
                    return  # a broken conversation cannot grow further
                text = result.text
                last_prompt_tokens = (result.prompt_tokens or 0) + (result.completion_tokens or 0)
            history += [{"role": "user", "content": item.prompt}, {"role": "assistant", "content": text}]


class ParallelPhase(SpeedPhase):
    def lanes(self, options: RunOptions) -> int:
        return min(2, self.suite.lanes) if options.smoke else self.suite.lanes

    def calls_per_item(self, runs: int) -> int:
        return self.suite.lanes

    def groups(self, available: list[Target]) -> tuple[list[list[Target]], str | None]:
        if self.suite.lane_models != "mixed":
            return super().groups(available)
        if len(available) < 2:
            return [], f"{self.name} needs two models (--models A,B)"
        return [available[:2]], None

    def units(self, cells: list[str], options: RunOptions) -> list[Unit]:
        items = self.items(options)
        keys = []
        for lane in range(self.lanes(options)):
            rotated = items[lane % len(items):] + items[:lane % len(items)]
            keys += [CallKey(cells[lane % len(cells)], self.name, item.id, lane, 0) for item in rotated]
        return [Unit(self.name, tuple(cells), tuple(keys))]

    def run_unit(self, unit: Unit, ctx: PhaseContext) -> None:
        todo = [key for key in unit.keys if not ctx.is_done(key)]
        if not todo:
            return
        by_lane: dict[int | None, list[CallKey]] = {}
        for key in todo:
            by_lane.setdefault(key.lane, []).append(key)
        started = time.monotonic()
        results: list[CallResult] = []

        def lane_worker(lane_keys: list[CallKey]) -> None:
            for key in lane_keys:
                results.append(self.call(ctx, key))

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(by_lane)) as pool:
            for future in [pool.submit(lane_worker, keys) for keys in by_lane.values()]:
                future.result()
        wall_ms = (time.monotonic() - started) * 1000
        tokens = sum(r.completion_tokens or 0 for r in results if not r.error)
        ctx.write(LanesRecord(self.name, sorted(set(unit.cells)), self.lanes(ctx.options), len(results),
                              sum(bool(r.error) for r in results), rounded(wall_ms), tokens,
                              rounded(tokens / (wall_ms / 1000), 2) if wall_ms > 0 else None, len(todo) < len(unit.keys)))
