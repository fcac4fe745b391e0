"""Bounds from llama.cpp's fit and the GGUF, and the real probers: launch (or load), P-MEDIUM warm x3, stop."""

from __future__ import annotations

import dataclasses
import functools
import re
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.core.gguf import read_header
from orchestrator.core.procs import run_captured
from orchestrator.core.canonical import capacity_slo
from orchestrator.measure.client import CallRequest, stream_chat
from orchestrator.measure.phases.capacity import Level, closed_id, level_of
from orchestrator.measure.resources import ResourceSampler
from orchestrator.plan.decide import Plan
from orchestrator.runtime import ollama_api as ollama
from orchestrator.runtime.launch import LOG_TAIL_LINES, LaunchError, RunningRuntime, build_command, free_port, load_runtime
from orchestrator.flows.tune.kld import FrozenText, load_frozen_text
from orchestrator.flows.tune.search import SEARCHED_KNOBS, TUNE_CELL, Candidate, Measurement, NglBounds, Prober

PROBE_CALLS = 3


def gguf_offloadable_layers(model_path: str) -> int | None:
    """`<arch>.block_count` + 1 from the GGUF header, or None when it cannot be read."""
    try:
        metadata = read_header(Path(model_path)).metadata
        return int(metadata[f"{metadata['general.architecture']}.block_count"]) + 1
    except (BadInput, KeyError, TypeError, ValueError):
        return None


def fit_params_ngl(fit_binary: str, model_path: str, plan: Plan, margin_mb: int, top: int) -> int | None:
    """llama-fit-params' NGL for this context and slot count (its -1 means every layer), or None."""
    argv = [fit_binary, "-m", model_path, "-c", str(plan.num_ctx * plan.num_parallel), "-np", str(plan.num_parallel),
            "--fit-target", str(margin_mb)]
    try:
        done = run_captured(argv, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"-ngl\s+(-?\d+)", done.stdout) if done.returncode == 0 else None
    if match is None:
        return None
    value = int(match.group(1))
    return top if value < 0 else min(value, top)


def ngl_bounds(plan: Plan, model_path: str | None, fit_binary: str | None, margin_mb: int) -> NglBounds:
    top = (gguf_offloadable_layers(model_path) if model_path else None) or plan.layers_offloadable
    fitted = fit_params_ngl(fit_binary, model_path, plan, margin_mb, top) if fit_binary and model_path else None
    if fitted is not None:
        return NglBounds(fitted, top, "llama-fit-params")
    return NglBounds(min(plan.ngl, top), top, "the plan's memory estimate (llama-fit-params unavailable)")


def _decode_rate(result: Any) -> float | None:
    return result.server_tokens_per_sec or result.tokens_per_sec  # the runtime's own count over its own time


def _measure(candidate: Candidate, calls: dict[str, Callable[[], Any]], pid: Callable[[], int | None], nvml: Any,
             defn: Any, read_log: Callable[[], str], load_s: float | None = None) -> Measurement:
    """Warm-up, then PROBE_CALLS rounds of `num_parallel` (or 1) concurrent free-text calls at depth,
    each single-stream round followed by a repetitive one where the prober has it; sampled for peaks;
    failures classified by the runtime definition's markers, its own choices read from the log."""
    streams = candidate.num_parallel or 1
    free, repetitive = calls["free"], None if candidate.num_parallel else calls.get("repetitive")
    warm_up = free()  # the first call after a load is not a steady-state figure (and Ollama loads here)
    rounds: list[tuple[list[Any], float]] = []
    repeated: list[Any] = []
    peaks: dict[str, Any] = {"peak_rss_mb": None, "peak_gpu_mem_used_mb": None}
    if not warm_up.error:
        with ResourceSampler(pid, nvml) as sampler, ThreadPoolExecutor(streams) as pool:
            for _ in range(PROBE_CALLS):
                started = time.monotonic()
                # One stream runs in this thread, so an interrupt ends the call at once rather than after it.
                results = list(pool.map(lambda _: free(), range(streams))) if streams > 1 else [free()]
                rounds.append((results, time.monotonic() - started))
                if repetitive is not None:
                    repeated.append(repetitive())
            peaks = sampler.peaks(0, float("inf"))
    calls_made = [r for results, _ in rounds for r in results]
    errors = [r.error for r in [warm_up, *calls_made, *repeated] if r.error]
    log_text = read_log()
    tail = "\n".join(log_text.splitlines()[-LOG_TAIL_LINES:])
    if errors:
        text = f"{errors[0]}\n{tail}"
        kind = "oom" if any(m.lower() in text.lower() for m in defn.oom_markers) else "http_error"
        return Measurement(candidate, False, failure=kind, log_tail=text, load_s=load_s)
    decode = [rate for r in calls_made if (rate := _decode_rate(r)) is not None]
    if not decode:  # every answer ended at once (a 2-bit quant can): a failed candidate, not a crash
        return Measurement(candidate, False, failure="no_rate", log_tail=f"no call decoded 2 tokens or more\n{tail}",
                           load_s=load_s)
    per_stream = statistics.median(decode)
    aggregate = statistics.median(sum(r.completion_tokens or 0 for r in results) / wall for results, wall in rounds)
    # a slots probe is k users in a closed loop on k slots: the capacity phase's level, judged by its SLO
    level = capacity_level(streams, calls_made, aggregate, sum(wall for _, wall in rounds)) if candidate.num_parallel else None
    prefill = [r.prefill_tokens_per_sec for r in [*calls_made, *repeated] if r.prefill_tokens_per_sec]
    drafted = sum(r.draft_tokens or 0 for r in [*calls_made, *repeated])
    spread = (max(decode) - min(decode)) / per_stream if len(decode) > 1 and per_stream else None
    repeat_rates = [rate for r in repeated if (rate := _decode_rate(r)) is not None]
    return Measurement(candidate, True, tokens_per_sec=aggregate if candidate.num_parallel else per_stream,
                       ttft_ms=round(statistics.median(r.first_delta_ms for r in calls_made), 1),
                       peak_rss_mb=peaks["peak_rss_mb"], peak_vram_mb=peaks["peak_gpu_mem_used_mb"],
                       per_stream_tokens_per_sec=per_stream if candidate.num_parallel else None,
                       effective=defn.effective_values(log_text),
                       prefill_tokens_per_sec=round(statistics.median(prefill), 1) if prefill else None,
                       decode_spread=spread and round(spread, 4),
                       repetitive_tokens_per_sec=statistics.median(repeat_rates) if repeat_rates else None,
                       draft_acceptance=round(sum(r.draft_accepted or 0 for r in [*calls_made, *repeated]) / drafted, 3)
                       if drafted else None, load_s=load_s, capacity_level=level)


def capacity_level(users: int, calls: list[Any], aggregate: float, wall_s: float) -> Level:
    """`users` concurrent streams' calls as one closed-loop capacity level (canonical.yaml's SLO)."""
    good = [{"first_delta_ms": r.first_delta_ms, "server_prompt_ms": r.server_prompt_ms, "tokens_per_sec": r.tokens_per_sec}
            for r in calls]
    return level_of(TUNE_CELL, closed_id(users), "closed", users, None, len(calls), 0, round(aggregate, 2),
                    round(len(calls) / wall_s, 3) if wall_s > 0 else None, good, capacity_slo())


def _probe_request(base_url: str, api: str, model: str, frozen: FrozenText, kind: str, plan: Plan, defn: Any,
                   options: dict[str, Any] | None = None) -> Any:
    """One probe call at depth: the frozen text, then the free or repetitive question; the prompt cache
    off where the runtime has a switch, so every call prefills the whole depth."""
    switch = defn.prompt_cache.get("request")
    return CallRequest(base_url, api, model, frozen.probe_messages(kind, plan.num_ctx), frozen.probe["answer_tokens"],
                       plan.temperature, request_fields={switch: False} if switch else {}, options=options or {},
                       cache_prompt=False if switch else None)


def real_prober(plan: Plan, binary: str, model_path: str | None, log_dir: Path, nvml: Any = None,
                on_result: Callable[[Measurement], None] = lambda m: None,
                variant_args: tuple[str, ...] = (), repetitive: bool = True) -> Prober:
    """llama.cpp: a fresh llama-server per candidate, stopped whatever happens. `variant_args` are
    the flags the binary's self-test needs on this CPU: every candidate, the defaults too, gets them.
    `repetitive`: also the repetitive prompt set (what n-gram drafting is judged on), each round."""
    defn = load_runtime(plan.runtime)
    frozen = load_frozen_text()

    def prober(candidate: Candidate) -> Measurement:
        own_defaults = candidate == Candidate()
        variant = dataclasses.replace(plan, **candidate.knobs())
        port = free_port()
        command = build_command(defn, variant, binary, port, model_path, plan.model,
                                leave_to_runtime=SEARCHED_KNOBS if own_defaults else frozenset(),
                                variant_args=variant_args)
        log = log_dir / f"tune-{candidate.label().replace(', ', '_').replace('=', '').replace(' ', '-')}.log"
        log.unlink(missing_ok=True)  # a re-measurement reads only its own launch's log
        runtime = RunningRuntime(defn, command, port, log, plan.model)
        requests = {kind: _probe_request(runtime.base_url, "openai", plan.model, frozen, kind, variant, defn)
                    for kind in ("free", "repetitive") if repetitive or kind == "free"}
        try:
            started = time.monotonic()
            runtime.start()
            runtime.wait_ready(timeout_s=180)
            load_s = round(time.monotonic() - started, 2)
            result = _measure(candidate, {k: functools.partial(stream_chat, r, "llamacpp") for k, r in requests.items()},
                              lambda: runtime.pid, nvml, defn, lambda: log.read_text(encoding="utf-8", errors="replace"),
                              load_s)
        except LaunchError as exc:
            result = Measurement(candidate, False, failure=exc.kind, log_tail=exc.log_tail)
        finally:
            runtime.stop()
        on_result(result)
        return result

    return prober


def ollama_prober(plan: Plan, running: Any, tag: str, nvml: Any = None,
                  on_result: Callable[[Measurement], None] = lambda m: None) -> Prober:
    """Ollama: one server for the session; each candidate unloads the model and loads it again
    with its num_gpu / num_thread request options (leaving them out = Ollama's own choice)."""
    options_of = {name: mapping["option"] for name, mapping in running.defn.knobs.items() if "option" in mapping}
    frozen = load_frozen_text()

    def prober(candidate: Candidate) -> Measurement:
        options = {options_of["num_ctx"]: plan.num_ctx,
                   **{options_of[k]: v for k, v in candidate.knobs().items()}}
        try:
            ollama.unload(running.base_url, tag)
        except WeeyugaError as exc:  # this candidate cannot be measured; the session goes on
            result = Measurement(candidate, False, failure="unload", log_tail=str(exc))
            on_result(result)
            return result
        request = _probe_request(running.base_url, "ollama", tag, frozen, "free", plan, running.defn, options)
        offset = running.log_path.stat().st_size if running.log_path.exists() else 0

        def read_log() -> str:
            with open(running.log_path, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", errors="replace")

        result = _measure(candidate, {"free": functools.partial(stream_chat, request, "ollama")}, lambda: running.pid,
                          nvml, running.defn, read_log)
        on_result(result)
        return result

    return prober
