"""Stage 7, tune: measured dry probes that find the fastest knobs that fit, in few launches.

A `Prober` launches one candidate, runs a short fixed probe (P-MEDIUM, warm, x3) and returns a
Measurement (tok/s, TTFT, RSS/VRAM peaks, or the failure with its log tail). The search is
pure over a Prober, so tests drive it with a simulated runtime.

1. Bounds. NGL starts from llama.cpp's own fit (`llama-fit-params`, which measures model, KV
   and compute buffers per device) and falls back to the plan's estimate; the top is the
   GGUF's block count + 1 (llama.cpp counts the output layer inside -ngl).
2. Search. NGL: walk from the start in steps until one fits and one does not; bisect to the
   largest that fits; then measure the few values just below it and a coarse point further
   down, because speed is not monotonic near the limit (KV spill, compute buffers). Threads
   (CPU): physical cores, logical threads and a few values around them.
3. Settle against the runtime's defaults, measured in the same session: a winner that is not
   clearly faster is re-measured alternately with the defaults; if the defaults still win,
   the values the runtime chose by itself (read from its log) are recommended instead.
4. Slots (only when asked): aggregate tok/s with k concurrent streams for k = 1, 2, 4 .. N;
   an extra slot must buy SLOT_GAIN_MIN more total throughput to be worth its KV cache.
"""

from __future__ import annotations

import functools
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from orchestrator.plan.decide import Plan
from orchestrator.flows.tune.sessions import SESSIONS, TuneSession, searches_ngl
from orchestrator.plan.runtimes import load_runtime
from orchestrator.flows.tune.files import render_markdown, report_json, write_report_files, write_tuned_profile
from orchestrator.flows.tune.probers import fit_params_ngl, gguf_offloadable_layers, ngl_bounds, ollama_prober, real_prober
from orchestrator.flows.tune.axes import OBJECTIVES, Axis, Kld, KldMeter, resolve_axes, search_axes
from orchestrator.flows.tune.search import (CONFIRM_ROUNDS, Candidate, Measurement, NglBounds, Prober, TuneReport, best, choose_slots,
                     measurement_row, search_ngl, search_slots, search_threads, settle, slot_candidates)

# The package's public names, imported from here across weeyuga.
__all__ = ["OBJECTIVES", "Axis", "Kld", "KldMeter", "resolve_axes", "search_axes", "CONFIRM_ROUNDS", "Candidate", "Measurement", "NglBounds", "Prober", "TuneReport", "best", "choose_slots",
           "fit_params_ngl", "gguf_offloadable_layers", "ngl_bounds", "ollama_prober", "real_prober", "render_markdown",
           "report_json", "search_ngl", "search_threads", "searches_ngl", "settle", "slot_candidates", "tune",
           "tune_on_this_machine", "write_report_files", "write_tuned_profile"]


class _Counted:
    def __init__(self, prober: Prober) -> None:
        self.prober, self.launches = prober, 0

    def __call__(self, candidate: Candidate) -> Measurement:
        self.launches += 1
        return self.prober(candidate)


def tune(plan: Plan, prober: Prober, physical_cores: int, logical_threads: int, exhaustive: bool = False,
         measure_defaults: bool = True, max_launches: int | None = None, bounds: NglBounds | None = None,
         most_slots: int | None = None, axes: list[Axis] | None = None, objective: str = "decode",
         kld: KldMeter | None = None, max_kld: float | None = None, axes_skipped: dict[str, str] | None = None) -> TuneReport:
    """NGL when the plan offloads to a GPU, threads otherwise; settled against the runtime's
    defaults measured in the same session; then the launch-knob `axes` from there (coordinate
    descent, or the grid when `exhaustive`), lossy values within `max_kld`; then slots up to
    `most_slots` when asked."""
    counted = _Counted(prober)
    defaults = counted(Candidate()) if measure_defaults else None
    start = None
    if searches_ngl(plan):
        bounds = bounds or NglBounds(plan.ngl, plan.layers_offloadable, "the plan's memory estimate")
        start = asdict(bounds)
        rec = search_ngl(counted, bounds.top, bounds.start, exhaustive, Candidate(threads=plan.threads), max_launches)
        knob = "ngl"
    else:
        rec = search_threads(counted, physical_cores, logical_threads, exhaustive, Candidate(ngl=0), max_launches)
        knob = "threads"
    winner = best(list(rec.seen.values()))
    report = TuneReport(model=plan.model, device_tag=plan.device_tag, knob=knob, recommended=None, objective=objective,
                        defaults=defaults and {**measurement_row(defaults), "tokens_per_sec": defaults.tokens_per_sec
                                               and round(defaults.tokens_per_sec, 2)},
                        candidates=[measurement_row(m) for m in rec.seen.values()], exhaustive=exhaustive, start=start)
    left = lambda: None if max_launches is None else max(0, max_launches - counted.launches)  # noqa: E731
    if winner is not None:
        choice = settle(counted, winner, defaults, knob, CONFIRM_ROUNDS if left() is None else min(CONFIRM_ROUNDS, left() // 2))
        report.confirmations = [measurement_row(m) for m in choice.remeasured]
        report.recommended = {**choice.knobs, "tokens_per_sec": round(choice.tokens_per_sec, 2),
                              "ttft_ms": choice.ttft_ms, "why": choice.why}
        knobs = choice.knobs
        if axes or axes_skipped:
            found = search_axes(counted, Candidate(**choice.knobs), axes or [], objective, kld, max_kld, exhaustive, left())
            found.skipped.update(axes_skipped or {})
            report.axes = found.to_dict()
            if found.best is not None and found.chosen_knobs() != choice.knobs:
                knobs = found.chosen_knobs()
                report.recommended = {**knobs, "tokens_per_sec": round(found.best.tokens_per_sec, 2),
                                      "prefill_tokens_per_sec": found.best.prefill_tokens_per_sec and
                                      round(found.best.prefill_tokens_per_sec, 1),
                                      "ttft_ms": found.best.ttft_ms,
                                      "why": f"{choice.why}; then the launch-knob search ({objective}) kept "
                                             + ", ".join(f"{k}={v}" for k, v in knobs.items() if k not in choice.knobs)}
        if most_slots and most_slots > 1:
            slots = search_slots(counted, most_slots, Candidate(**knobs), left())
            report.slots = [measurement_row(m) for m in slots.seen.values()]
            picked = choose_slots(list(slots.seen.values()))
            if picked is not None:
                report.recommended["num_parallel"] = picked.candidate.num_parallel
                report.recommended["aggregate_tokens_per_sec"] = round(picked.tokens_per_sec, 2)
    report.launches = counted.launches
    return report


def tune_on_this_machine(plan: Plan, hw: Any, profiles: Any, binary: str, model_path: str | None, fit_binary: str | None,
                         out_dir: Path, nvml: Any = None, progress: Callable[[str, float | None], None] = lambda m, f: None,
                         exhaustive: bool = False, max_launches: int | None = None,
                         most_slots: int | None = None, variant_args: tuple[str, ...] = ()) -> TuneReport:
    """`weeyuga tune`: bounds, the runtime's prober, and the search, for llama.cpp or Ollama."""
    def said(m: Measurement) -> None:
        progress(f"tune {m.candidate.label()}: " + (f"{m.tokens_per_sec:.1f} tok/s" if m.ok else f"failed ({m.failure})"), None)

    search = functools.partial(tune, plan, physical_cores=hw.cpu.cores, logical_threads=hw.cpu.threads,
                               exhaustive=exhaustive, max_launches=max_launches, most_slots=most_slots)
    session = TuneSession(plan, profiles, binary, model_path, fit_binary, out_dir, nvml, most_slots, variant_args)
    return SESSIONS[load_runtime(plan.runtime).tune["session"]](session, progress, said, search)
