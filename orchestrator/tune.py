"""Stage 7, tune: measured dry probes that find the fastest knobs that fit, in few launches.

A `Prober` launches one candidate, runs a short fixed probe (P-MEDIUM, warm, x3) and returns a
Measurement (tok/s, TTFT, RSS/VRAM peaks, or the failure with its log tail). The search is
pure over a Prober, so tests drive it with a simulated runtime.

NGL search: start from the plan's estimate; walk up (or down) in steps until one fits and one
does not; bisect to the largest NGL that fits; then measure the few values just below it and a
coarse point further down, because speed is not monotonic near the limit (KV spill, compute
buffers). Threads (CPU): physical cores, logical threads and a few values around them.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import yaml

from .decide import Plan
from .errors import WeeyugaError
from .paths import data_dir

PROBE_CALLS = 3


@dataclass(frozen=True)
class Candidate:
    ngl: int | None = None  # None = the runtime's default (flag not given)
    threads: int | None = None
    num_parallel: int | None = None

    def label(self) -> str:
        parts = [f"{k}={v}" for k, v in asdict(self).items() if v is not None]
        return ", ".join(parts) or "runtime defaults"


@dataclass
class Measurement:
    candidate: Candidate
    ok: bool
    tokens_per_sec: float | None = None
    ttft_ms: float | None = None
    peak_rss_mb: float | None = None
    peak_vram_mb: float | None = None
    failure: str | None = None  # oom | spilled | exited | timeout | http_error
    log_tail: str | None = None


class Prober(Protocol):
    def __call__(self, candidate: Candidate) -> Measurement: ...


@dataclass
class TuneReport:
    model: str
    device_tag: str
    knob: str  # ngl | threads
    recommended: dict[str, Any] | None
    defaults: dict[str, Any] | None
    candidates: list[dict[str, Any]] = field(default_factory=list)
    launches: int = 0
    exhaustive: bool = False

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


def best(measurements: list[Measurement]) -> Measurement | None:
    good = [m for m in measurements if m.ok and m.tokens_per_sec]
    return max(good, key=lambda m: m.tokens_per_sec) if good else None


def build_report(model: str, device_tag: str, knob: str, rec: _Recorder, defaults: Measurement | None,
                 exhaustive: bool) -> TuneReport:
    measured = list(rec.seen.values())
    winner = best(measured)
    recommended = None
    if winner:
        recommended = {**{k: v for k, v in asdict(winner.candidate).items() if v is not None},
                       "tokens_per_sec": round(winner.tokens_per_sec, 2), "ttft_ms": winner.ttft_ms}
    return TuneReport(
        model=model, device_tag=device_tag, knob=knob, recommended=recommended,
        defaults=({"tokens_per_sec": round(defaults.tokens_per_sec, 2) if defaults.tokens_per_sec else None,
                   "ok": defaults.ok, "failure": defaults.failure} if defaults else None),
        candidates=[{**asdict(m.candidate), **{k: v for k, v in asdict(m).items() if k != "candidate"}}
                    for m in measured],
        launches=len(measured) + (1 if defaults else 0), exhaustive=exhaustive)


def write_tuned_profile(report: TuneReport, directory: Path | None = None) -> Path:
    """profiles/local/<device-tag>.yaml: decide and auto apply it as 'tuned' deviations."""
    if not report.recommended:
        raise WeeyugaError(f"nothing to write: no configuration of {report.model} ran on this machine")
    directory = directory or data_dir("profiles") / "local"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{report.device_tag}.yaml"
    doc = yaml.safe_load(path.read_text()) if path.exists() else None
    doc = doc or {"schema_version": "tuned-1", "device_tag": report.device_tag, "models": {}}
    entry = doc["models"].setdefault(report.model, {})
    for knob in ("ngl", "threads", "num_parallel"):
        if knob in report.recommended:
            entry[knob] = report.recommended[knob]
    entry["tokens_per_sec"] = report.recommended["tokens_per_sec"]
    path.write_text("# Written by `weeyuga tune`; measured on this machine. Delete to go back to the rules.\n"
                    + yaml.safe_dump(doc, sort_keys=True), encoding="utf-8")
    return path


def render_markdown(report: TuneReport) -> str:
    lines = [f"# tune {report.model} on {report.device_tag} ({report.knob})", "",
             f"Launches: {report.launches}{' (exhaustive sweep)' if report.exhaustive else ''}.", "",
             f"Recommended: {report.recommended or 'nothing ran'}", f"Runtime defaults: {report.defaults}", "",
             "| candidate | ok | tok/s | TTFT ms | RSS MB | VRAM MB | failure |", "|---|---|---|---|---|---|---|"]
    for c in sorted(report.candidates, key=lambda c: (c.get("ngl") or 0, c.get("threads") or 0)):
        label = Candidate(c["ngl"], c["threads"], c["num_parallel"]).label()
        rate = f"{c['tokens_per_sec']:.1f}" if c["tokens_per_sec"] else "–"
        lines.append(f"| {label} | {'yes' if c['ok'] else 'no'} | {rate} | {c['ttft_ms'] or '–'} | "
                     f"{c['peak_rss_mb'] or '–'} | {c['peak_vram_mb'] or '–'} | {c['failure'] or ''} |")
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
# The real prober: launch, wait, P-MEDIUM warm x3, stop


def real_prober(plan: Plan, binary: str, model_path: str | None, log_dir: Path, nvml: Any = None,
                on_result: Callable[[Measurement], None] = lambda m: None) -> Prober:
    from .client import CallRequest, stream_chat
    from .launch import LaunchError, build_command, free_port, load_runtime, log_tail, RunningRuntime
    from .resources import ResourceSampler
    from .suites import load_prompts

    defn = load_runtime(plan.runtime)
    prompt = load_prompts()["P-MEDIUM"]

    def prober(candidate: Candidate) -> Measurement:
        knobs = {k: v for k, v in asdict(candidate).items() if v is not None}
        variant = dataclasses.replace(plan, **knobs)
        port = free_port()
        command = build_command(defn, variant, binary, port, model_path, plan.model)
        if candidate == Candidate():  # the runtime's own defaults: drop our knob flags
            argv = list(command.argv)
            for flag in ("-ngl", "--threads", "--fit"):
                if flag in argv:
                    i = argv.index(flag)
                    del argv[i:i + 2]
            command = dataclasses.replace(command, argv=argv)
        log = log_dir / f"tune-{candidate.label().replace(', ', '_').replace('=', '')}.log"
        runtime = RunningRuntime(defn, command, port, log, plan.model)
        try:
            runtime.start()
            runtime.wait_ready(timeout_s=180)
            with ResourceSampler(lambda: runtime.pid, nvml) as sampler:
                results = []
                for _ in range(PROBE_CALLS + 1):  # the first call warms the model up
                    results.append(stream_chat(CallRequest(runtime.base_url, "openai", plan.model,
                                                           [{"role": "user", "content": prompt.text}], 128,
                                                           plan.temperature), "llamacpp"))
                peaks = sampler.peaks(0, float("inf"))
            measured = results[1:]
            errors = [r.error for r in measured if r.error]
            if errors:
                tail = log_tail(log)
                kind = "oom" if any(m.lower() in tail.lower() for m in defn.oom_markers) else "http_error"
                result = Measurement(candidate, False, failure=kind, log_tail=f"{errors[0]}\n{tail}")
            else:
                result = Measurement(candidate, True,
                                     tokens_per_sec=statistics.median(r.tokens_per_sec for r in measured),
                                     ttft_ms=round(statistics.median(r.first_delta_ms for r in measured), 1),
                                     peak_rss_mb=peaks["peak_rss_mb"], peak_vram_mb=peaks["peak_gpu_mem_used_mb"])
        except LaunchError as exc:
            result = Measurement(candidate, False, failure=exc.kind, log_tail=exc.log_tail)
        finally:
            runtime.stop()
        on_result(result)
        return result

    return prober


def tune(plan: Plan, prober: Prober, physical_cores: int, logical_threads: int, exhaustive: bool = False,
         measure_defaults: bool = True, max_launches: int | None = None) -> TuneReport:
    """NGL when the plan offloads to a GPU, threads otherwise; the runtime's defaults measured alongside."""
    defaults = prober(Candidate()) if measure_defaults else None
    if plan.backend != "cpu" and plan.layers_offloadable > 0 and plan.budget.usable_gpu_gb > 0:
        rec = search_ngl(prober, plan.layers_offloadable, plan.ngl, exhaustive, Candidate(threads=plan.threads), max_launches)
        knob = "ngl"
    else:
        rec = search_threads(prober, physical_cores, logical_threads, exhaustive, Candidate(ngl=0), max_launches)
        knob = "threads"
    return build_report(plan.model, plan.device_tag, knob, rec, defaults, exhaustive)


def report_json(report: TuneReport) -> str:
    return json.dumps(report.to_dict(), indent=2)
