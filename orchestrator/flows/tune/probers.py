"""Bounds from llama.cpp's fit and the GGUF, and the real probers: launch (or load), P-MEDIUM warm x3, stop."""

from __future__ import annotations

import dataclasses
import re
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from orchestrator.plan.decide import Plan
from orchestrator.core.errors import WeeyugaError
from orchestrator.flows.tune.search import SEARCHED_KNOBS, Candidate, Measurement, NglBounds, Prober

PROBE_CALLS = 3
PROBE_TOKENS = 128


def gguf_offloadable_layers(model_path: str) -> int | None:
    """`<arch>.block_count` + 1 from the GGUF header, or None when it cannot be read."""
    try:
        from gguf import GGUFReader

        fields = GGUFReader(model_path).fields
        arch_field = fields["general.architecture"]
        arch = bytes(arch_field.parts[arch_field.data[0]]).decode()
        blocks = fields[f"{arch}.block_count"]
        return int(blocks.parts[blocks.data[0]][0]) + 1
    except (OSError, KeyError, ValueError, IndexError):
        return None


def fit_params_ngl(fit_binary: str, model_path: str, plan: Plan, margin_mb: int, top: int) -> int | None:
    """llama-fit-params' NGL for this context and slot count (its -1 means every layer), or None."""
    from orchestrator.core.procs import run_captured

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


def _measure(candidate: Candidate, call: Callable[[], Any], pid: Callable[[], int | None], nvml: Any,
             defn: Any, read_log: Callable[[], str]) -> Measurement:
    """Warm-up, then PROBE_CALLS rounds of `num_parallel` (or 1) concurrent calls, sampled for peaks;
    failures classified by the runtime definition's markers, its own choices read from the log."""
    from concurrent.futures import ThreadPoolExecutor

    from orchestrator.runtime.launch import LOG_TAIL_LINES
    from orchestrator.measure.resources import ResourceSampler

    streams = candidate.num_parallel or 1
    warm_up = call()  # the first call after a load is not a steady-state figure (and Ollama loads here)
    rounds: list[tuple[list[Any], float]] = []
    peaks: dict[str, Any] = {"peak_rss_mb": None, "peak_gpu_mem_used_mb": None}
    if not warm_up.error:
        with ResourceSampler(pid, nvml) as sampler, ThreadPoolExecutor(streams) as pool:
            for _ in range(PROBE_CALLS):
                started = time.monotonic()
                results = list(pool.map(lambda _: call(), range(streams)))
                rounds.append((results, time.monotonic() - started))
            peaks = sampler.peaks(0, float("inf"))
    calls = [r for results, _ in rounds for r in results]
    errors = [r.error for r in [warm_up, *calls] if r.error]
    log_text = read_log()
    tail = "\n".join(log_text.splitlines()[-LOG_TAIL_LINES:])
    if errors:
        text = f"{errors[0]}\n{tail}"
        kind = "oom" if any(m.lower() in text.lower() for m in defn.oom_markers) else "http_error"
        return Measurement(candidate, False, failure=kind, log_tail=text)
    per_stream = statistics.median(r.tokens_per_sec for r in calls)
    aggregate = statistics.median(sum(r.completion_tokens or 0 for r in results) / wall for results, wall in rounds)
    return Measurement(candidate, True, tokens_per_sec=aggregate if candidate.num_parallel else per_stream,
                       ttft_ms=round(statistics.median(r.first_delta_ms for r in calls), 1),
                       peak_rss_mb=peaks["peak_rss_mb"], peak_vram_mb=peaks["peak_gpu_mem_used_mb"],
                       per_stream_tokens_per_sec=per_stream if candidate.num_parallel else None,
                       effective=defn.effective_values(log_text))


def _probe_messages() -> list[dict[str, str]]:
    from orchestrator.measure.suites import load_prompts

    return [{"role": "user", "content": load_prompts()["P-MEDIUM"].text}]


def real_prober(plan: Plan, binary: str, model_path: str | None, log_dir: Path, nvml: Any = None,
                on_result: Callable[[Measurement], None] = lambda m: None,
                variant_args: tuple[str, ...] = ()) -> Prober:
    """llama.cpp: a fresh llama-server per candidate, stopped whatever happens. `variant_args` are
    the flags the binary's self-test needs on this CPU: every candidate, the defaults too, gets them."""
    from orchestrator.measure.client import CallRequest, stream_chat
    from orchestrator.runtime.launch import LaunchError, RunningRuntime, build_command, free_port, load_runtime

    defn = load_runtime(plan.runtime)
    messages = _probe_messages()

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
        request = CallRequest(runtime.base_url, "openai", plan.model, messages, PROBE_TOKENS, plan.temperature)
        try:
            runtime.start()
            runtime.wait_ready(timeout_s=180)
            result = _measure(candidate, lambda: stream_chat(request, "llamacpp"), lambda: runtime.pid, nvml,
                              defn, lambda: log.read_text(encoding="utf-8", errors="replace"))
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
    from orchestrator.runtime import ollama_api as ollama
    from orchestrator.measure.client import CallRequest, stream_chat

    options_of = {name: mapping["option"] for name, mapping in running.defn.knobs.items() if "option" in mapping}
    messages = _probe_messages()

    def prober(candidate: Candidate) -> Measurement:
        options = {options_of["num_ctx"]: plan.num_ctx,
                   **{options_of[k]: v for k, v in candidate.knobs().items()}}
        request = CallRequest(running.base_url, "ollama", tag, messages, PROBE_TOKENS, plan.temperature, options=options)
        try:
            ollama.unload(running.base_url, tag)
        except WeeyugaError as exc:  # this candidate cannot be measured; the session goes on
            result = Measurement(candidate, False, failure="unload", log_tail=str(exc))
            on_result(result)
            return result
        offset = running.log_path.stat().st_size if running.log_path.exists() else 0

        def read_log() -> str:
            with open(running.log_path, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", errors="replace")

        result = _measure(candidate, lambda: stream_chat(request, "ollama"), lambda: running.pid, nvml,
                          running.defn, read_log)
        on_result(result)
        return result

    return prober
