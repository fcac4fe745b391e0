"""The prompt_cache phase: what reusing a cached prompt prefix buys, measured apart from the timed
calls, which ask for no reuse (profiles/canonical.yaml prompt_cache).

Per item, `pairs` times: the prompt with reuse off (a full prefill; even run_idx), then the same
prompt again with reuse on (odd run_idx), which finds the prefix the call before it left in the
runtime's cache. Each call line says what it sent (`cache_prompt`) and what the runtime reused
(`prompt_cached_tokens`); the report sets the two TTFTs side by side. A runtime without a switch
(Ollama) sends nothing either way: its pairs show only what it does by itself.
"""

from __future__ import annotations

from orchestrator.core.canonical import prompt_cache_policy
from orchestrator.core.records import CallKey
from orchestrator.core.runspec import RunOptions
from orchestrator.measure.phases.base import Unit
from orchestrator.measure.phases.context import PhaseContext
from orchestrator.measure.phases.speed import SpeedPhase


def reuses_cache(key: CallKey) -> bool:
    return key.run_idx % 2 == 1


class PromptCachePhase(SpeedPhase):
    def calls_per_item(self, runs: int) -> int:
        return 2 * prompt_cache_policy().pairs

    def units(self, cells: list[str], options: RunOptions) -> list[Unit]:
        return self.item_series(cells, options, 2 if options.smoke else self.calls_per_item(options.runs))

    def run_unit(self, unit: Unit, ctx: PhaseContext) -> None:
        todo = [key for key in unit.keys if not ctx.is_done(key)]
        if not todo:
            return
        target = ctx.target(unit.cells[0])
        if reuses_cache(todo[0]):  # resumed between the two calls of a pair: put the prefix back in the cache
            ctx.warm_up(target, self._items[todo[0].prompt_id].prompt)
        for key in todo:
            self.call(ctx, key, cache_prompt=reuses_cache(key), **self.first_call_state(target))
