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

import dataclasses
import functools
import json
import re
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import yaml

from . import datafiles
from .decide import Plan
from .errors import WeeyugaError
from .paths import data_dir

PROBE_CALLS = 3
PROBE_TOKENS = 128
CLEAR_WIN = 0.03  # a winner this much faster than the defaults is taken without re-measuring
CONFIRM_ROUNDS = 2  # alternate re-measurements of winner and defaults when it is closer than that
SLOT_GAIN_MIN = 0.05
SEARCHED_KNOBS = frozenset({"ngl", "threads"})  # what "the runtime's defaults" leaves unset


@dataclass(frozen=True)
class Candidate:
    ngl: int | None = None  # None = the runtime's default (flag not given)
    threads: int | None = None
    num_parallel: int | None = None  # set = a slots probe with that many concurrent streams

    def label(self) -> str:
        parts = [f"{k}={v}" for k, v in asdict(self).items() if v is not None]
        return ", ".join(parts) or "runtime defaults"

    def knobs(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Measurement:
    candidate: Candidate
    ok: bool
    tokens_per_sec: float | None = None  # single stream; the aggregate of all streams for a slots probe
    ttft_ms: float | None = None
    peak_rss_mb: float | None = None
    peak_vram_mb: float | None = None
    failure: str | None = None  # oom | spilled | exited | timeout | http_error | unload
    log_tail: str | None = None
    per_stream_tokens_per_sec: float | None = None  # slots probes only
    effective: dict[str, int] = field(default_factory=dict)  # values the runtime reported choosing


class Prober(Protocol):
    def __call__(self, candidate: Candidate) -> Measurement: ...


@dataclass(frozen=True)
class NglBounds:
    start: int
    top: int  # the largest meaningful -ngl: block count + 1
    source: str  # where `start` came from


@dataclass
class Choice:
    """What tune recommends, and why, after settling against the defaults."""

    knobs: dict[str, int]
    tokens_per_sec: float
    ttft_ms: float | None
    why: str
    remeasured: list[Measurement] = field(default_factory=list)


@dataclass
class TuneReport:
    model: str
    device_tag: str
    knob: str  # ngl | threads
    recommended: dict[str, Any] | None
    defaults: dict[str, Any] | None
    candidates: list[dict[str, Any]] = field(default_factory=list)
    confirmations: list[dict[str, Any]] = field(default_factory=list)
    slots: list[dict[str, Any]] = field(default_factory=list)
    launches: int = 0
    exhaustive: bool = False
    start: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Recorder:
    """Measures each candidate once, counting launches."""

    def __init__(self, prober: Prober, max_launches: int | None = None) -> None:
        self.prober = prober
        self.max_launches = max_launches
        self.seen: dict[Candidate, Measurement] = {}

    def __call__(self, candidate: Candidate) -> Measurement:
        if candidate not in self.seen:
            if self.max_launches is not None and len(self.seen) >= self.max_launches:
                return Measurement(candidate, False, failure="not measured: --max-launches reached")
            self.seen[candidate] = self.prober(candidate)
        return self.seen[candidate]

    def fits(self, candidate: Candidate) -> bool:
        return self(candidate).ok


def search_ngl(prober: Prober, max_ngl: int, start: int, exhaustive: bool = False, base: Candidate = Candidate(),
               max_launches: int | None = None) -> _Recorder:
    rec = _Recorder(prober, max_launches)
    at = lambda n: dataclasses.replace(base, ngl=n)  # noqa: E731
    if exhaustive:
        for n in range(max_ngl + 1):
            rec(at(n))
        return rec
    start = max(0, min(start, max_ngl))
    step = max(1, max_ngl // 4)
    if rec.fits(at(start)):
        low, high = start, None
        while low < max_ngl:
            nxt = min(max_ngl, low + step)
            if rec.fits(at(nxt)):
                low = nxt
            else:
                high = nxt
                break
    else:
        high, low = start, None
        while high > 0:
            nxt = max(0, high - step)
            if rec.fits(at(nxt)):
                low = nxt
                break
            high = nxt
        if low is None:
            return rec  # nothing fits, not even NGL 0
    if high is not None:
        while high - low > 1:  # largest fitting NGL lies in [low, high)
            mid = (low + high) // 2
            if rec.fits(at(mid)):
                low = mid
            else:
                high = mid
    # Near the limit speed is not monotonic (KV spill, compute buffers): walk down from the
    # largest fit while going down keeps getting faster (at least two steps), then one coarse point.
    rate = lambda n: rec(at(n)).tokens_per_sec or 0.0  # noqa: E731
    n = low
    while n > 0 and (n > low - 2 or rate(n - 1) > rate(n)) and rec(at(n)).ok:
        rate(n - 1)
        n -= 1
    if low * 3 // 4 < n:
        rec(at(low * 3 // 4))
    return rec


def thread_candidates(physical: int, logical: int) -> list[int]:
    values = {physical, logical, max(1, physical - 1), max(1, physical // 2)}
    return sorted(v for v in values if v >= 1)


def search_threads(prober: Prober, physical: int, logical: int, exhaustive: bool = False,
                   base: Candidate = Candidate(), max_launches: int | None = None) -> _Recorder:
    rec = _Recorder(prober, max_launches)
    values = range(1, logical + 1) if exhaustive else thread_candidates(physical, logical)
    for n in values:
        rec(dataclasses.replace(base, threads=n))
    return rec


def slot_candidates(most: int) -> list[int]:
    values, k = {most}, 1
    while k < most:
        values.add(k)
        k *= 2
    return sorted(values)


def search_slots(prober: Prober, most: int, base: Candidate, max_launches: int | None = None) -> _Recorder:
    rec = _Recorder(prober, max_launches)
    for k in slot_candidates(most):
        rec(dataclasses.replace(base, num_parallel=k))
    return rec


def choose_slots(measurements: list[Measurement]) -> Measurement | None:
    """The fewest slots within SLOT_GAIN_MIN of the best aggregate: more slots cost KV memory."""
    top = best(measurements)
    if top is None:
        return None
    enough = [m for m in measurements if m.ok and m.tokens_per_sec and m.tokens_per_sec >= top.tokens_per_sec * (1 - SLOT_GAIN_MIN)]
    return min(enough, key=lambda m: m.candidate.num_parallel or 1)


def best(measurements: list[Measurement]) -> Measurement | None:
    good = [m for m in measurements if m.ok and m.tokens_per_sec]
    return max(good, key=lambda m: m.tokens_per_sec) if good else None


def settle(prober: Prober, winner: Measurement, defaults: Measurement | None, knob: str,
           rounds: int = CONFIRM_ROUNDS) -> Choice:
    """Recommend the search's winner or the runtime's own choice, whichever measures faster.

    `knob` is the one searched: the runtime must have logged its own value for it to count as
    the same configuration (a CPU build logs no offload, so ngl is compared only where known).
    """
    knobs = winner.candidate.knobs()
    if defaults is None or not defaults.ok or not defaults.tokens_per_sec:
        why = "fastest measured" + ("" if defaults is None else f"; the runtime's defaults failed ({defaults.failure})")
        return Choice(knobs, winner.tokens_per_sec, winner.ttft_ms, why)
    if knob in defaults.effective and all(defaults.effective[k] == v for k, v in knobs.items() if k in defaults.effective):
        return Choice(knobs, winner.tokens_per_sec, winner.ttft_ms,
                      "the same values the runtime picks by itself; written down so later runs do not depend on its heuristics")
    gain = winner.tokens_per_sec / defaults.tokens_per_sec - 1
    if gain >= CLEAR_WIN:
        return Choice(knobs, winner.tokens_per_sec, winner.ttft_ms, f"{gain:+.1%} tok/s over the runtime's defaults")
    # Too close to call from one launch each: alternate, so drift on a shared machine hits both alike.
    again: list[Measurement] = []
    for _ in range(rounds):
        again += [prober(defaults.candidate), prober(winner.candidate)]
    rates = lambda c: [m.tokens_per_sec for m in [winner, defaults, *again]  # noqa: E731
                       if m.candidate == c and m.ok and m.tokens_per_sec]
    mine, theirs = statistics.median(rates(winner.candidate)), statistics.median(rates(defaults.candidate) or [0.0])
    n = len(rates(winner.candidate))
    if mine >= theirs:
        return Choice(knobs, mine, winner.ttft_ms, f"median of {n} launches {mine:.1f} tok/s vs the defaults' {theirs:.1f}", again)
    chosen = {k: v for k, v in defaults.effective.items() if k in SEARCHED_KNOBS}
    if not chosen:
        return Choice(knobs, mine, winner.ttft_ms, f"the runtime's defaults measured {theirs:.1f} vs {mine:.1f} tok/s, but it does "
                      "not log what it chose; kept the fastest explicit setting", again)
    return Choice({**knobs, **chosen}, theirs, defaults.ttft_ms,
                  f"the runtime's own choice measured fastest (median {theirs:.1f} vs {mine:.1f} tok/s); recommending "
                  "the values it logged", again)


def measurement_row(m: Measurement) -> dict[str, Any]:
    return {**asdict(m.candidate), **{k: v for k, v in asdict(m).items() if k != "candidate"}}


def write_tuned_profile(report: TuneReport, directory: Path | None = None) -> Path:
    """profiles/local/<device-tag>.yaml: decide and auto apply it as 'tuned' deviations."""
    if not report.recommended:
        raise WeeyugaError(f"nothing to write: no configuration of {report.model} ran on this machine")
    directory = directory or data_dir("profiles") / "local"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{report.device_tag}.yaml"
    doc = datafiles.read_document(path) if path.exists() else None
    doc = doc or {"schema_version": "tuned-1", "device_tag": report.device_tag, "models": {}}
    entry = doc["models"].setdefault(report.model, {})
    for knob in ("ngl", "threads", "num_parallel"):
        if knob in report.recommended:
            entry[knob] = report.recommended[knob]
    entry["tokens_per_sec"] = report.recommended["tokens_per_sec"]
    path.write_text("# Written by `weeyuga tune`; measured on this machine. Delete to go back to the rules.\n"
                    + yaml.safe_dump(doc, sort_keys=True), encoding="utf-8")
    return path


def _table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| candidate | ok | tok/s | TTFT ms | RSS MB | VRAM MB | failure |", "|---|---|---|---|---|---|---|"]
    for c in rows:
        label = Candidate(c["ngl"], c["threads"], c["num_parallel"]).label()
        rate = f"{c['tokens_per_sec']:.1f}" if c["tokens_per_sec"] else "–"
        lines.append(f"| {label} | {'yes' if c['ok'] else 'no'} | {rate} | {c['ttft_ms'] or '–'} | "
                     f"{c['peak_rss_mb'] or '–'} | {c['peak_vram_mb'] or '–'} | {c['failure'] or ''} |")
    return lines


def render_markdown(report: TuneReport) -> str:
    order = lambda c: (c.get("ngl") or 0, c.get("threads") or 0, c.get("num_parallel") or 0)  # noqa: E731
    lines = [f"# tune {report.model} on {report.device_tag} ({report.knob})", "",
             f"Launches: {report.launches}{' (exhaustive sweep)' if report.exhaustive else ''}."]
    if report.start:
        lines.append(f"NGL search started at {report.start['start']} of {report.start['top']} ({report.start['source']}).")
    lines += ["", f"Recommended: {report.recommended or 'nothing ran'}", f"Runtime defaults: {report.defaults}", "",
              "## Search", ""] + _table(sorted(report.candidates, key=order))
    if report.confirmations:
        lines += ["", "## Re-measured against the defaults", ""] + _table(report.confirmations)
    if report.slots:
        lines += ["", "## Slots (tok/s is the aggregate of all concurrent streams)", ""] + _table(sorted(report.slots, key=order))
    return "\n".join(lines) + "\n"


def plot(report: TuneReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted((c[report.knob], c["tokens_per_sec"] or 0, c["peak_vram_mb"] or 0)
                    for c in report.candidates if c[report.knob] is not None)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color="#4477aa")
    ax.set_xlabel(report.knob)
    ax.set_ylabel("tokens/s")
    if any(p[2] for p in points):
        twin = ax.twinx()
        twin.plot([p[0] for p in points], [p[2] for p in points], "s--", color="#cc6677")
        twin.set_ylabel("VRAM peak (MB)")
    ax.set_title(f"{report.model}: tok/s vs {report.knob}")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------
# Bounds from llama.cpp's fit and the GGUF; the real prober: launch, wait, P-MEDIUM warm x3, stop


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
    from .procs import run_captured

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

    from .launch import LOG_TAIL_LINES
    from .resources import ResourceSampler

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
    from .suites import load_prompts

    return [{"role": "user", "content": load_prompts()["P-MEDIUM"].text}]


def real_prober(plan: Plan, binary: str, model_path: str | None, log_dir: Path, nvml: Any = None,
                on_result: Callable[[Measurement], None] = lambda m: None,
                variant_args: tuple[str, ...] = ()) -> Prober:
    """llama.cpp: a fresh llama-server per candidate, stopped whatever happens. `variant_args` are
    the flags the binary's self-test needs on this CPU: every candidate, the defaults too, gets them."""
    from .client import CallRequest, stream_chat
    from .launch import LaunchError, RunningRuntime, build_command, free_port, load_runtime

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
    from . import ollama
    from .client import CallRequest, stream_chat

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


def searches_ngl(plan: Plan) -> bool:
    """NGL is the knob when the plan can put layers on a GPU; otherwise threads are."""
    return plan.backend != "cpu" and plan.layers_offloadable > 0 and plan.budget.usable_gpu_gb > 0


class _Counted:
    def __init__(self, prober: Prober) -> None:
        self.prober, self.launches = prober, 0

    def __call__(self, candidate: Candidate) -> Measurement:
        self.launches += 1
        return self.prober(candidate)


def tune(plan: Plan, prober: Prober, physical_cores: int, logical_threads: int, exhaustive: bool = False,
         measure_defaults: bool = True, max_launches: int | None = None, bounds: NglBounds | None = None,
         most_slots: int | None = None) -> TuneReport:
    """NGL when the plan offloads to a GPU, threads otherwise; settled against the runtime's
    defaults measured in the same session; then slots up to `most_slots` when asked."""
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
    report = TuneReport(model=plan.model, device_tag=plan.device_tag, knob=knob, recommended=None,
                        defaults=defaults and {**measurement_row(defaults), "tokens_per_sec": defaults.tokens_per_sec
                                               and round(defaults.tokens_per_sec, 2)},
                        candidates=[measurement_row(m) for m in rec.seen.values()], exhaustive=exhaustive, start=start)
    left = lambda: None if max_launches is None else max(0, max_launches - counted.launches)  # noqa: E731
    if winner is not None:
        choice = settle(counted, winner, defaults, knob, CONFIRM_ROUNDS if left() is None else min(CONFIRM_ROUNDS, left() // 2))
        report.confirmations = [measurement_row(m) for m in choice.remeasured]
        report.recommended = {**choice.knobs, "tokens_per_sec": round(choice.tokens_per_sec, 2),
                              "ttft_ms": choice.ttft_ms, "why": choice.why}
        if most_slots and most_slots > 1:
            slots = search_slots(counted, most_slots, Candidate(**choice.knobs), left())
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
    from .runtimes import managed_runtime

    def said(m: Measurement) -> None:
        progress(f"tune {m.candidate.label()}: " + (f"{m.tokens_per_sec:.1f} tok/s" if m.ok else f"failed ({m.failure})"), None)

    search = functools.partial(tune, plan, physical_cores=hw.cpu.cores, logical_threads=hw.cpu.threads,
                               exhaustive=exhaustive, max_launches=max_launches, most_slots=most_slots)
    return managed_runtime(plan.runtime).tune(plan, profiles, binary, model_path, fit_binary, out_dir, nvml, progress,
                                              said, search, most_slots, variant_args)


def report_json(report: TuneReport) -> str:
    return json.dumps(report.to_dict(), indent=2)


def write_report_files(report: TuneReport, out_dir: Path) -> Path:
    """tune-<device>-<model>.json, .md and .png in out_dir; returns their common stem."""
    stem = out_dir / f"tune-{report.device_tag}-{report.model}"
    Path(f"{stem}.json").write_text(report_json(report) + "\n", encoding="utf-8")
    Path(f"{stem}.md").write_text(render_markdown(report), encoding="utf-8")
    plot(report, Path(f"{stem}.png"))
    return stem
