"""The quality phase: pack scenarios (quality/) as units of a run, on the same cells and runtime.

One unit per (pack, scenario, repeat) on one cell, keyed `quality / <pack>/<scenario> / run_idx
= repeat`. Each scenario call goes through ctx.chat (a timed `call` line with the tools sent),
then its verdict is a `quality` record and the assistant message a responses.jsonl line.

Timeouts: the pack's time scaled by the decode rate this cell measured earlier in the same run
(its successful speed calls), with the pack's ceiling; a stall or an overrun is a `timeout`
verdict. Resume: an arm with a `quality` record is done; an arm whose call line exists but whose
verdict never landed (killed in between) is called again as attempt 1.
"""

from __future__ import annotations

import hashlib
import itertools
import statistics
from dataclasses import replace
from typing import Any

from orchestrator.measure.cost import quality_seconds
from orchestrator.core.ledger import read_records
from orchestrator.evaluate.quality.packs import Pack, selected_packs
from orchestrator.evaluate.quality.records import arm_key
from orchestrator.evaluate.quality.runner import ChatError, run_arm
from orchestrator.core.records import CallKey, QualityRecord
from orchestrator.core.runspec import RunOptions, Target
from orchestrator.evaluate.sandbox.docker.choice import run_sandbox
from orchestrator.measure.phases.base import Unit
from orchestrator.measure.phases.context import PhaseContext
from orchestrator.core.runfolder import LEDGER_NAME

NAME = "quality"


class QualityPhase:
    kind = NAME
    name = NAME

    def __init__(self, packs: tuple[Pack, ...], mode: str, repeat: int) -> None:
        self.packs, self.mode, self.repeat = {p.id: p for p in packs}, mode, repeat
        self.version = ",".join(f"{p.id}@{p.version}" for p in packs)
        self.sha256 = hashlib.sha256("".join(p.sha256 for p in packs).encode()).hexdigest()
        self._judged: set[tuple] | None = None  # arms with a verdict in the ledger
        self._rates: dict[str, float | None] = {}

    @classmethod
    def from_options(cls, options: RunOptions | None) -> "QualityPhase":
        """The phase for the run's quality settings: a mode's packs, or --packs, `repeat` times; each pack
        cut to the mode's scenarios (its written ones, plus the mode's share of the generated, or the
        `generated` count auto's budget bought)."""
        settings: dict[str, Any] = (options.quality if options else None) or {"mode": "quick", "packs": None, "repeat": 1}
        mode, packs = settings.get("mode") or "quick", settings.get("packs")
        return cls(selected_packs(",".join(packs) if packs else None, mode, settings.get("generated")), mode,
                   int(settings.get("repeat") or 1))

    def groups(self, available: list[Target]) -> tuple[list[list[Target]], str | None]:
        return [[target] for target in available], None

    def units(self, cells: list[str], options: RunOptions) -> list[Unit]:
        """Scenario by scenario across the packs (each pack's first, then each one's second, …), so a phase the
        budget's schedule cuts short still has a balanced prefix of every pack, tiers alternating. Without a
        sandbox that contains model-written code (kind `unavailable`), no codeexec scenario runs."""
        runs_code = (options.sandbox or {}).get("kind") != "unavailable"
        units = []
        sets = [[s for s in (pack.scenarios[:1] if options.smoke else pack.scenarios) if runs_code or s.kind != "codeexec"]
                for pack in self.packs.values()]
        for repeat_idx in range(self.repeat):
            for scenarios in itertools.zip_longest(*sets):
                for pack, scenario in zip(self.packs.values(), scenarios):
                    if scenario is not None:
                        key = CallKey(cells[0], self.name, f"{pack.id}/{scenario.id}", None, repeat_idx)
                        units.append(Unit(self.name, (cells[0],), (key,)))
        return units

    def max_tokens(self, pack: Pack, scenario_id: str, num_predict: int) -> int:
        return min(pack.scenario(scenario_id).max_tokens or pack.max_tokens, num_predict)

    def estimate_seconds(self, decode_tokens_per_sec: float, num_predict: int, runs: int) -> float:
        return quality_seconds(self.packs.values(), decode_tokens_per_sec, num_predict, self.repeat)

    def run_unit(self, unit: Unit, ctx: PhaseContext) -> None:
        key = unit.keys[0]
        pack_id, scenario_id = key.prompt_id.split("/", 1)
        if (key.cell_id, pack_id, scenario_id, key.run_idx) in self.judged(ctx):
            return
        pack = self.packs[pack_id]
        call_key = replace(key, attempt=1) if ctx.is_done(key) else key  # its verdict was lost: call again

        def chat(messages: list, tools: list | None, max_tokens: int, timeout_s: float):
            request = ctx.request(call_key, messages, max_tokens, tools=tools)
            request = replace(request, temperature=pack.sampling.get("temperature", 0),
                              stall_timeout_s=min(request.stall_timeout_s, timeout_s))
            result = ctx.chat(request, key_fields=call_key)
            seconds = (result.total_duration_ms or 0) / 1000
            if result.error:
                return None, result.finish_reason, chat_error(result.error)
            if seconds > timeout_s:
                return None, result.finish_reason, ChatError("timeout", f"answered in {seconds:.0f} s, over the {timeout_s:.0f} s limit")
            return result.message, result.finish_reason, None

        scenario = pack.scenario(scenario_id)
        capped = replace(scenario, max_tokens=self.max_tokens(pack, scenario_id, ctx.options.num_predict))
        runner = run_sandbox(ctx.options.sandbox).code_runner if scenario.kind == "codeexec" else None
        _, record, line = run_arm(pack, capped, chat, key.cell_id, key.run_idx, self.decode_rate(ctx, key.cell_id), runner)
        with ctx.write_lock:
            ctx.responses.write(line)
            ctx.ledger.write(QualityRecord(record))
        self._judged.add(arm_key(record))

    def judged(self, ctx: PhaseContext) -> set[tuple]:
        if self._judged is None:
            path = ctx.run_dir / LEDGER_NAME
            lines = read_records(path) if path.exists() else []
            self._judged = {arm_key(r) for r in lines if r.get("type") == "quality"}
        return self._judged

    def decode_rate(self, ctx: PhaseContext, cell_id: str) -> float | None:
        """The median decode rate of this cell's successful speed calls so far in this run (the server's
        own figure where it reports one: it leaves out prompt processing)."""
        if cell_id not in self._rates:
            path = ctx.run_dir / LEDGER_NAME
            calls = [r for r in read_records(path) if r.get("type") == "call" and r["cell_id"] == cell_id
                     and r["phase"] != self.name and not r["error"]]
            rates = [rate for r in calls if (rate := r.get("server_tokens_per_sec") or r.get("tokens_per_sec"))]
            self._rates[cell_id] = statistics.median(rates) if rates else None
        return self._rates[cell_id]


def chat_error(error: str) -> ChatError:
    """The client's one-line error as a failure mode: a stall is a timeout, a 5xx the server's fault."""
    if error.startswith("stalled"):
        return ChatError("timeout", error[:200])
    if error.startswith(("HTTP 5", "server error", "runtime died")):
        return ChatError("server_error", error[:200])
    return ChatError("http_error", error[:200])


