"""Stage 7, tune: measured dry probes that find the fastest knobs that fit, in few launches.

A `Prober` launches one candidate, runs a short fixed probe (warm, x3: a free-text and a repetitive
answer after the frozen text of suites/kld/ at a realistic depth) and returns a Measurement (decode
and prefill tok/s with their spread, draft acceptance, TTFT, load time, RSS/VRAM peaks, or the
failure with its log tail). The search is pure over a Prober, so tests drive it with a simulated runtime.

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
4. Launch knobs (axes.py): the runtime's tune_axes (flash attention, -b/-ub, -tb, KV type, load
   mode, n-gram speculation) by coordinate descent from there, a change kept only when it beats
   the incumbent beyond the noise of repeated launches, twice; `--exhaustive` measures the grid.
   A lossy value (a quantized KV cache) must keep its KLD against f16 within the budget (kld.py).
5. Slots (only when asked): aggregate tok/s with k concurrent streams for k = 1, 2, 4 .. N;
   an extra slot must buy SLOT_GAIN_MIN more total throughput to be worth its KV cache.
6. `--quants` (quants.py): each quant made from the F16 source, chosen by measured KLD and speed.
"""

from __future__ import annotations

import functools
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from orchestrator.core.canonical import capacity_slo
from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.measure.phases.capacity import pareto, serving_capacity
from orchestrator.flows.tune.kld import PerplexityKld, load_frozen_text
from orchestrator.plan.decide import Plan
from orchestrator.runtime.install import RuntimeInstall, install_tool, tool_variant_args
from orchestrator.flows.tune.sessions import SESSIONS, TuneSession, searches_ngl
from orchestrator.plan.runtimes import load_runtime
from orchestrator.flows.tune.files import render_markdown, report_json, write_report_files, write_tuned_profile
from orchestrator.flows.tune.probers import fit_params_ngl, gguf_offloadable_layers, ngl_bounds, ollama_prober, real_prober
from orchestrator.flows.tune.axes import OBJECTIVES, Axis, Kld, KldMeter, resolve_axes, search_axes
from orchestrator.flows.tune.quants import (QuantReport, dequantize_to_f16, parse_quants, quant_dir, quantize, render_quants,
                                            tune_quants, write_quant_report)
from orchestrator.flows.tune.search import (CONFIRM_ROUNDS, TUNE_CELL, Candidate, Measurement, NglBounds, Prober, TuneReport, best, choose_slots,
                     measurement_row, search_ngl, search_slots, search_threads, settle, slot_candidates)

# The package's public names, imported from here across weeyuga.
__all__ = ["OBJECTIVES", "Axis", "Kld", "KldMeter", "resolve_axes", "search_axes", "CONFIRM_ROUNDS", "Candidate", "Measurement", "NglBounds", "Prober", "TuneReport", "best", "choose_slots",
           "fit_params_ngl", "gguf_offloadable_layers", "ngl_bounds", "ollama_prober", "real_prober", "render_markdown",
           "report_json", "search_ngl", "search_threads", "searches_ngl", "settle", "slot_candidates", "slots_capacity", "tune",
           "tune_on_this_machine", "kld_meter_for", "tool_or_none", "tune_quants_on_this_machine", "QuantReport",
           "parse_quants", "render_quants", "write_quant_report", "write_report_files", "write_tuned_profile"]


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
        if axes:
            found = search_axes(counted, Candidate(**choice.knobs), axes, objective, kld, max_kld, exhaustive, left())
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
            report.capacity = slots_capacity(list(slots.seen.values()))
            if picked is not None:
                report.recommended["num_parallel"] = picked.candidate.num_parallel
                report.recommended["aggregate_tokens_per_sec"] = round(picked.tokens_per_sec, 2)
    report.launches = counted.launches
    return report


def slots_capacity(measurements: list[Measurement]) -> dict[str, Any] | None:
    """The slots probes as the capacity phase's levels (k users on k slots), its Pareto front and its
    sentence at canonical.yaml's SLO: how many users this configuration serves."""
    levels = pareto([m.capacity_level for m in measurements if m.ok and m.capacity_level is not None])
    if not levels:
        return None
    return {"levels": [asdict(level) for level in levels], **serving_capacity(levels, TUNE_CELL, capacity_slo())}


def tool_or_none(install: RuntimeInstall, name: str, progress: Callable[[str, float | None], None]) -> tuple[str, tuple[str, ...]] | None:
    """A program built from the runtime's tree (llama-perplexity, llama-quantize) and its spelling of the
    self-test's flags, or None (said) when this llama-server was not built by weeyuga."""
    try:
        return install_tool(install, name, progress), tuple(tool_variant_args(install, name))
    except WeeyugaError as exc:
        progress(f"{name} unavailable: {exc}", None)
        return None


def kld_meter_for(plan: Plan, install: RuntimeInstall | None, model_path: str | None,
                  progress: Callable[[str, float | None], None], chunks: int | None = None) -> PerplexityKld | None:
    """llama-perplexity against this model, where the runtime defines a KLD tool and one can be had."""
    defn = load_runtime(plan.runtime)
    if not defn.tune_quality or install is None or model_path is None:
        return None
    tool = tool_or_none(install, defn.tune_quality["tool"], progress)
    if tool is None:
        return None
    return PerplexityKld(tool[0], defn, load_frozen_text(), plan.threads, tool[1], chunks)


def tune_on_this_machine(plan: Plan, hw: Any, profiles: Any, binary: str, model_path: str | None, fit_binary: str | None,
                         out_dir: Path, nvml: Any = None, progress: Callable[[str, float | None], None] = lambda m, f: None,
                         exhaustive: bool = False, max_launches: int | None = None,
                         most_slots: int | None = None, variant_args: tuple[str, ...] = (), objective: str = "decode",
                         axes: list[str] | None = None, max_kld: float | None = None, install: RuntimeInstall | None = None,
                         kld_chunks: int | None = None) -> TuneReport:
    """`weeyuga tune`: bounds, the runtime's prober, and the search, for llama.cpp or Ollama. `axes`
    names the launch-knob axes to search (default: every one the runtime has; [] none)."""
    def said(m: Measurement) -> None:
        if not m.ok:
            progress(f"tune {m.candidate.label()}: failed ({m.failure})", None)
            return
        prefill = f", prefill {m.prefill_tokens_per_sec:.0f}" if m.prefill_tokens_per_sec else ""
        progress(f"tune {m.candidate.label()}: {m.tokens_per_sec:.1f} tok/s{prefill}", None)

    defn = load_runtime(plan.runtime)
    try:
        chosen, skipped = resolve_axes(defn.tune_axes, defn.knobs, hw.cpu.cores, hw.cpu.threads,
                                       plan.budget.usable_ram_gb >= 2 * plan.model_size_gb, axes)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    meter = kld_meter_for(plan, install, model_path, progress, kld_chunks) if any(a.gate for a in chosen) else None

    def kld(knobs: dict[str, Any]) -> Kld:
        progress(f"KLD of {', '.join(f'{k}={v}' for k, v in knobs.items())} against {defn.tune_quality['reference']}", None)
        return meter.meter(model_path)(knobs)

    budget = max_kld if max_kld is not None else defn.tune_quality.get("max_kld_kv")
    search = functools.partial(tune, plan, physical_cores=hw.cpu.cores, logical_threads=hw.cpu.threads,
                               exhaustive=exhaustive, max_launches=max_launches, most_slots=most_slots, axes=chosen,
                               objective=objective, kld=kld if meter else None, max_kld=budget, axes_skipped=skipped)
    session = TuneSession(plan, profiles, binary, model_path, fit_binary, out_dir, nvml, most_slots, variant_args)
    return SESSIONS[defn.tune["session"]](session, progress, said, search)


def tune_quants_on_this_machine(plan: Plan, install: RuntimeInstall, model_path: str, out_dir: Path, quants: list[str],
                                objective: str = "decode", max_kld: float | None = None, speed_target: float | None = None,
                                nvml: Any = None, progress: Callable[[str, float | None], None] = lambda m, f: None,
                                kld_chunks: int | None = None) -> QuantReport:
    """`weeyuga tune --quants`: the shipped GGUF dequantized to F16 is the reference; each quant is made
    from it with llama-quantize, its KLD measured against it with llama-perplexity, its speed with a
    fresh llama-server at the plan's NGL and threads."""
    defn = load_runtime(plan.runtime)
    if not defn.tune_quality:
        raise BadInput(f"--quants needs llama.cpp's llama-quantize and llama-perplexity; {plan.runtime} has neither")
    quantize_tool = tool_or_none(install, defn.tune_quality["quantize_tool"], progress)
    meter = kld_meter_for(plan, install, model_path, progress, kld_chunks)
    if quantize_tool is None or meter is None:
        raise WeeyugaError("--quants: llama-quantize and llama-perplexity are built from the tree that built llama-server; "
                           "`weeyuga runtime install llama.cpp --rebuild` makes one")
    shipped = Path(model_path)
    directory = quant_dir(shipped)
    progress(f"dequantizing {shipped.name} to F16 (the reference: the weights you have)", None)
    source = dequantize_to_f16(shipped, directory / f"{shipped.stem}-F16.gguf")
    at_plan = Candidate(ngl=plan.ngl, threads=plan.threads)

    def said(m: Measurement) -> None:
        progress(f"speed: {m.tokens_per_sec:.1f} tok/s" if m.ok else f"speed: failed ({m.failure})", None)

    def probe(path: Path) -> Measurement:
        return real_prober(plan, install.binary, str(path), out_dir, nvml, said, install.variant_args)(at_plan)

    return tune_quants(plan.model, quants, lambda q: quantize(quantize_tool[0], source, q, directory, plan.threads),
                       lambda path: meter.compare(str(source), str(path), {}), probe,
                       f"{shipped.name} dequantized to F16 with the gguf package ({source})", objective,
                       max_kld if max_kld is not None else defn.tune_quality["max_kld_quant"], speed_target, progress)
