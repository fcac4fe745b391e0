"""Stage 4, run: the suites against one or more cells, every call into the ledger.

A cell is `<node>:<engine>:<model>` at a base URL. Per cell: a health check (an unusable
cell becomes a `skipped` record with its reason), then each phase in canonical order:

    cold_warm  1 cold + N warm calls per item (cold = restart or unload; a runtime weeyuga
               cannot make cold records its first call as load_state process_warm, not cold)
    once       each item once
    parallel   `lanes` threads run the items at once; a `lanes` record holds the aggregate
    append     one conversation growing toward num_ctx
    document   one shared document before every item

Resume (`resume=True`) reads the ledger and runs only calls whose key is missing.

A run in which no call succeeded (every call failed, or no cell could serve) ends with status
`failed` and the reason on its `end` line; a probe-only run plans no calls and is complete.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import os
import platform
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import httpx

from . import __version__, ollama
from .client import CallRequest, CallResult, Clock, stream_chat
from .errors import BadInput, WeeyugaError
from .ledger import LEDGER_NAME, Ledger, LedgerState, call_key, key_of, read_records, read_state
from .paths import REPO_ROOT
from .procs import run_captured
from .progress import Progress, quiet
from .resources import ResourceSampler
from .suites import Item, Suite, format_ok, load_suite, marker_hit

HARNESS_VERSION = "weeyuga-1"
LEDGER_SCHEMA = "ledger-1"
LOAD_AVG_LIMIT = 4.0
RESPONSES_NAME = "responses.jsonl"
SAMPLES_NAME = "samples.jsonl"
# Environment that changes a runtime's behaviour; recorded (values only, never paths of ours).
RECORDED_ENV = ["OLLAMA_NUM_PARALLEL", "OLLAMA_MAX_LOADED_MODELS", "OLLAMA_KEEP_ALIVE", "OLLAMA_CONTEXT_LENGTH",
                "OLLAMA_FLASH_ATTENTION", "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "OMP_NUM_THREADS"]


@dataclass(frozen=True)
class Cell:
    cell_id: str
    engine: str  # llamacpp | ollama | openai
    model: str
    base_url: str
    api: str = "openai"  # wire format: openai | ollama


@dataclass
class Target:
    """A cell plus what the runner may do to it: restart a managed runtime, unload an Ollama model."""

    cell: Cell
    restart: Callable[[], float] | None = None  # managed runtime: a true cold start
    pid: Callable[[], int | None] = lambda: None
    request_fields: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    keep_alive: str | None = None
    loaded_fresh: bool = False  # nothing has been asked of it since it was (re)started
    # managed runtime: why its process died (a crash signal, say), None while it runs
    crash_note: Callable[[], str | None] = lambda: None

    @property
    def cold_kind(self) -> str:
        if self.restart is not None:
            return "restart"
        return "unload" if self.cell.engine == "ollama" else "process_warm"

    @property
    def cold_load_state(self) -> str:
        """What a 'cold' call really is: a runtime we neither restart nor unload is warm from the start."""
        return "process_warm" if self.cold_kind == "process_warm" else "cold"


@dataclass(frozen=True)
class RunOptions:
    phases: list[str]
    runs: int = 5
    temperature: float = 0.1
    num_ctx: int = 4096
    num_predict: int = 2048
    smoke: bool = False
    probe_only: bool = False
    force_load: bool = False
    for_publication: bool = False
    allow_dirty: bool = False
    submitter_handle: str | None = None
    device_tag: str | None = None
    canonical_overrides: dict[str, Any] = field(default_factory=dict)  # option -> {canonical, value}
    command: list[str] = field(default_factory=list)
    phase_notes: dict[str, str] = field(default_factory=dict)  # phase -> why it was not selected
    stall_timeout_s: float = 120.0

    def to_dict(self) -> dict[str, Any]:
        return {"phases": self.phases, "runs": self.runs, "temperature": self.temperature, "num_ctx": self.num_ctx,
                "num_predict": self.num_predict, "smoke": self.smoke, "probe_only": self.probe_only}


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    calls: int = 0
    errors: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False
    failure: str | None = None  # why the run failed although it ran to the end (no call succeeded)

    @property
    def status(self) -> str:
        return "complete" if self.finished and self.failure is None else "failed"

    @property
    def ledger_path(self) -> Path:
        return self.run_dir / LEDGER_NAME


# ---------------------------------------------------------------------------------------
# Facts for the meta line


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def git_state(repo: Path = REPO_ROOT) -> tuple[str | None, bool | None, list[str]]:
    """(sha, dirty, dirty paths) of weeyuga's own checkout; (None, None, []) outside git."""
    try:
        sha = run_captured(["git", "rev-parse", "HEAD"], cwd=repo, timeout=10)
        if sha.returncode != 0:
            return None, None, []
        status = run_captured(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None, None, []
    dirty = [line[3:] for line in status.stdout.splitlines() if line.strip()]
    return sha.stdout.strip(), bool(dirty), dirty


def host_pseudonym() -> str:
    """A stable id for 'the same driving machine' that does not publish its host name."""
    short = socket.gethostname().split(".")[0]
    return "host-" + hashlib.sha256(short.encode()).hexdigest()[:10]


# Where the load gate and the ledger read the host's 1/5/15-minute load average. A module
# attribute so that tests pin it (tests/conftest.py): a busy host must not change their outcome.
host_load: Callable[[], tuple[float, float, float]] | None = getattr(os, "getloadavg", None)  # None on Windows


def load_average() -> list[float] | None:
    if host_load is None:
        return None
    try:
        return [round(x, 2) for x in host_load()]
    except OSError:  # no load figures on this system
        return None


def check_gates(options: RunOptions, git_dirty: bool | None, dirty_paths: list[str]) -> dict[str, Any]:
    """The methodology's reproducibility gates; refusals name the flag that overrides them."""
    load = load_average()
    if load and load[0] > LOAD_AVG_LIMIT and not options.force_load:
        raise WeeyugaError(f"load average {load[0]:.2f} is above {LOAD_AVG_LIMIT}: numbers would be noisy; "
                           "wait for the machine to settle or pass --force-load (recorded in the ledger)")
    if options.for_publication and git_dirty and not options.allow_dirty:
        raise WeeyugaError(f"--for-publication refuses a modified weeyuga checkout ({', '.join(dirty_paths[:5])}); "
                           "commit or pass --allow-dirty (recorded in the ledger)")
    return {"load_avg_limit": LOAD_AVG_LIMIT, "force_load": options.force_load,
            "for_publication": options.for_publication, "allow_dirty": options.allow_dirty,
            "dirty_paths": dirty_paths}


# ---------------------------------------------------------------------------------------
# Health


def health_check(cell: Cell, timeout_s: float = 2.0) -> str | None:
    """None when the cell can serve; otherwise the reason it is skipped."""
    try:
        if cell.api == "ollama":
            tags = httpx.get(f"{cell.base_url}/api/tags", timeout=timeout_s)
            if tags.status_code != 200:
                return f"ollama /api/tags answered HTTP {tags.status_code}"
            models = tags.json().get("models", [])
            names = {m.get("name") for m in models} | {m.get("model") for m in models}
            if cell.model not in names:
                return f"model {cell.model} is not pulled (ollama pull {cell.model})"
            return None
        response = httpx.get(f"{cell.base_url}/v1/models", timeout=timeout_s)
        if response.status_code != 200:
            return f"{cell.base_url}/v1/models answered HTTP {response.status_code}"
        return None
    except httpx.HTTPError as exc:
        return f"unreachable: {cell.base_url} ({type(exc).__name__})"
    except (ValueError, AttributeError, TypeError):  # not JSON, or not the JSON an Ollama /api/tags sends
        return f"{cell.base_url} answered something that is not the JSON expected"


def engine_facts(cell: Cell, timeout_s: float = 2.0) -> dict[str, Any]:
    """Engine version and model digest as the server reports them (methodology's checklist)."""
    facts: dict[str, Any] = {"engine_version": None, "model_digest": None}
    try:
        if cell.engine == "ollama":
            facts["engine_version"] = httpx.get(f"{cell.base_url}/api/version", timeout=timeout_s).json().get("version")
            facts["model_digest"] = ollama.digest(cell.base_url, cell.model)
        elif cell.engine == "llamacpp":
            props = httpx.get(f"{cell.base_url}/props", timeout=timeout_s).json()
            facts["engine_version"] = props.get("build_info")
            facts["model_file"] = Path(props["model_path"]).name if props.get("model_path") else None
    except (httpx.HTTPError, ValueError, AttributeError, WeeyugaError):
        pass  # an engine that does not say is recorded as unknown, not guessed
    return facts


def detect_engine(base_url: str, timeout_s: float = 2.0) -> str:
    """For bring-your-own targets: llamacpp answers /props, Ollama /api/version."""
    with httpx.Client(timeout=timeout_s) as client:
        for path, engine in (("/api/version", "ollama"), ("/props", "llamacpp")):
            try:
                if client.get(base_url + path).status_code == 200:
                    return engine
            except httpx.HTTPError:
                continue
    return "openai"


# ---------------------------------------------------------------------------------------
# The runner


@dataclass
class _Work:
    """One call to make."""

    target: Target
    suite: Suite
    item: Item
    run_idx: int
    lane: int | None = None
    load_state: str = "warm"
    cold_kind: str | None = None


class Runner:
    def __init__(self, targets: list[Target], options: RunOptions, run_dir: Path, run_id: str,
                 state: LedgerState, clock: Clock = time.perf_counter, nvml: Any = None,
                 progress: Progress = quiet) -> None:
        self.targets, self.options, self.run_dir, self.run_id = targets, options, run_dir, run_id
        self.state, self.clock, self.nvml, self.progress = state, clock, nvml, progress
        self.ledger = Ledger(run_dir / LEDGER_NAME)
        self.responses = Ledger(run_dir / RESPONSES_NAME)
        self.result = RunResult(run_id, run_dir)
        self.write_lock = threading.Lock()
        self.http = httpx.Client(limits=httpx.Limits(max_connections=32))
        self.sampler: ResourceSampler | None = None
        self.current_phase = ""
        self.done_in_phase = 0
        self.total_in_phase = 0

    # -- records

    def write(self, record: dict[str, Any]) -> None:
        with self.write_lock:
            self.ledger.write(record)

    def skip(self, cell_id: str, phase: str | None, reason: str) -> None:
        if (cell_id, phase) in self.state.skipped:
            return
        self.state.skipped.add((cell_id, phase))
        record = {"type": "skipped", "cell_id": cell_id, "phase": phase, "reason": reason, "at_utc": utc_now()}
        self.write(record)
        self.result.skipped.append(record)

    def _headers(self, work: _Work) -> dict[str, str]:
        return {"X-Weeyuga-Test": "true", "X-Weeyuga-Benchmark-Run-Id": self.run_id,
                "X-Weeyuga-Benchmark-Cell-Id": work.target.cell.cell_id,
                "X-Weeyuga-Benchmark-Prompt-Id": work.item.id, "X-Weeyuga-Benchmark-Phase": work.suite.name,
                "X-Weeyuga-Benchmark-Run-Idx": str(work.run_idx)}

    def _messages(self, work: _Work, history: list[dict[str, str]] | None) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": work.suite.system}] if work.suite.system else []
        return messages + (history or []) + [{"role": "user", "content": work.item.prompt}]

    def call(self, work: _Work, history: list[dict[str, str]] | None = None) -> CallResult:
        cell, opts = work.target.cell, self.options
        max_tokens = work.item.capped_tokens(opts.num_predict)
        request = CallRequest(
            base_url=cell.base_url, api=cell.api, model=cell.model, messages=self._messages(work, history),
            max_tokens=max_tokens, temperature=opts.temperature, headers=self._headers(work),
            request_fields={k: v for k, v in work.target.request_fields.items() if k not in ("max_tokens", "temperature")},
            options={**work.target.options, "num_ctx": opts.num_ctx}, keep_alive=work.target.keep_alive,
            stall_timeout_s=opts.stall_timeout_s)
        started_at = utc_now()
        t0 = time.monotonic()
        result = stream_chat(request, cell.engine, self.http, self.clock)
        t1 = time.monotonic()
        work.target.loaded_fresh = False
        died = work.target.crash_note() if result.error else None
        if died:  # a dropped connection is the symptom; the runtime's death is the cause
            result = replace(result, error=f"runtime died: {died}; first symptom: {result.error}")
        record = {
            "type": "call", "cell_id": cell.cell_id, "phase": work.suite.name, "prompt_id": work.item.id,
            "run_idx": work.run_idx, "lane": work.lane, "load_state": work.load_state, "cold_kind": work.cold_kind,
            "model": cell.model, "engine": cell.engine, "started_at_utc": started_at, "max_tokens": max_tokens,
            "first_delta_ms": _r(result.first_delta_ms), "ttfb_ms": _r(result.ttfb_ms),
            "first_answer_ms": _r(result.first_answer_ms), "total_duration_ms": _r(result.total_duration_ms),
            "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "reasoning_tokens": result.reasoning_tokens, "tokens_estimated": result.tokens_estimated,
            "tokens_per_sec": _r(result.tokens_per_sec, 2), "server_tokens_per_sec": _r(result.server_tokens_per_sec, 2),
            "server_prompt_ms": _r(result.server_prompt_ms), "rate_disagreement": result.rate_disagreement,
            "finish_reason": result.finish_reason, "backend": result.backend, "error": result.error,
            "format_ok": None if result.error else format_ok(work.item.format, result.text),
            "marker_hit": None if result.error else marker_hit(work.item.markers, result.text),
            "response_preview": result.response_preview,
            **(self.sampler.peaks(t0, t1) if self.sampler else {}),
        }
        with self.write_lock:
            self.ledger.write(record)
            self.responses.write({"key": list(call_key(record)), "text": result.text})
            self.state.done.add(call_key(record))
            self.result.calls += 1
            self.result.errors += bool(result.error)
            self.done_in_phase += 1
            rate = f", {result.tokens_per_sec:.1f} tok/s" if result.tokens_per_sec else (f", error: {result.error[:60]}" if result.error else "")
            self.progress(f"{self.current_phase} {self.done_in_phase}/{self.total_in_phase}{rate}",
                          self.done_in_phase / max(1, self.total_in_phase))
        return result

    def _key(self, work: _Work) -> tuple:
        return key_of(work.target.cell.cell_id, work.suite.name, work.item.id, work.lane, work.run_idx)

    def pending(self, works: list[_Work]) -> list[_Work]:
        return [w for w in works if self._key(w) not in self.state.done]

    # -- cold starts

    def make_cold(self, target: Target) -> str:
        if target.restart is not None:
            target.restart()
        elif target.cell.engine == "ollama":
            ollama.unload(target.cell.base_url, target.cell.model)
            time.sleep(2.0)  # the methodology's pause after an unload
        target.loaded_fresh = target.cold_kind != "process_warm"  # process_warm: nothing was restarted or unloaded
        return target.cold_kind

    def warm_up(self, target: Target, item: Item) -> None:
        """An unrecorded call so a resumed warm series is really warm."""
        request = CallRequest(base_url=target.cell.base_url, api=target.cell.api, model=target.cell.model,
                              messages=[{"role": "user", "content": item.prompt}], max_tokens=8,
                              temperature=self.options.temperature, headers={"X-Weeyuga-Test": "true"},
                              options=target.options, keep_alive=target.keep_alive)
        stream_chat(request, target.cell.engine, self.http)
        target.loaded_fresh = False

    # -- phases

    def run_cold_warm(self, target: Target, suite: Suite) -> None:
        runs = 0 if self.options.smoke else self.options.runs
        items = suite.items[:1] if self.options.smoke else suite.items
        for item in items:
            works = [_Work(target, suite, item, 0, load_state=target.cold_load_state)]
            works += [_Work(target, suite, item, i) for i in range(1, runs + 1)]
            todo = self.pending(works)
            if not todo:
                continue
            if todo[0].run_idx == 0:
                todo[0].cold_kind = self.make_cold(target)
            else:
                self.warm_up(target, item)
            for work in todo:
                self.call(work)

    def run_once(self, target: Target, suite: Suite) -> None:
        items = suite.items[:1] if self.options.smoke else suite.items
        for work in self.pending([_Work(target, suite, item, 0) for item in items]):
            if target.loaded_fresh:
                work.load_state, work.cold_kind = "cold", target.cold_kind
            self.call(work)

    def run_append(self, target: Target, suite: Suite) -> None:
        history: list[dict[str, str]] = []
        saved = self._saved_responses(target.cell.cell_id, suite.name)
        limit = (suite.stop_at_context_fraction or 1.0) * self.options.num_ctx
        last_prompt_tokens = 0
        items = suite.items[:1] if self.options.smoke else suite.items  # smoke: the first turn only
        for item in items:
            work = _Work(target, suite, item, 0)
            key = self._key(work)
            max_tokens = item.capped_tokens(self.options.num_predict)
            if key in self.state.done:
                text = saved.get(key)
                if text is None:
                    self.skip(target.cell.cell_id, suite.name, "resume: earlier turns' text is missing from responses.jsonl")
                    return
            else:
                if last_prompt_tokens + max_tokens > limit:
                    break  # the conversation has reached the context budget: that is the point of this phase
                if target.loaded_fresh:
                    work.load_state, work.cold_kind = "cold", target.cold_kind
                result = self.call(work, history)
                if result.error:
                    return  # a broken conversation cannot grow further
                text = result.text
                last_prompt_tokens = (result.prompt_tokens or 0) + (result.completion_tokens or 0)
            history += [{"role": "user", "content": item.prompt}, {"role": "assistant", "content": text}]

    def _saved_responses(self, cell_id: str, phase: str) -> dict[tuple, str]:
        path = self.run_dir / RESPONSES_NAME
        if not path.exists():
            return {}
        saved = {}
        for record in read_records(path):
            key = tuple(record["key"])
            if key[0] == cell_id and key[1] == phase:
                saved[key] = record["text"]
        return saved

    def run_parallel(self, targets: list[Target], suite: Suite) -> None:
        lanes = min(2, suite.lanes) if self.options.smoke else suite.lanes
        items = suite.items[:1] if self.options.smoke else suite.items
        works = []
        for lane in range(lanes):
            target = targets[lane % len(targets)]
            rotated = items[lane % len(items):] + items[:lane % len(items)]
            works += [_Work(target, suite, item, 0, lane=lane) for item in rotated]
        todo = self.pending(works)
        if not todo:
            return
        by_lane: dict[int, list[_Work]] = {}
        for work in todo:
            by_lane.setdefault(work.lane, []).append(work)
        started = time.monotonic()
        results: list[CallResult] = []

        def lane_worker(lane_works: list[_Work]) -> None:
            for work in lane_works:
                results.append(self.call(work))

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(by_lane)) as pool:
            for future in [pool.submit(lane_worker, ws) for ws in by_lane.values()]:
                future.result()
        wall_ms = (time.monotonic() - started) * 1000
        tokens = sum(r.completion_tokens or 0 for r in results if not r.error)
        self.write({"type": "lanes", "phase": suite.name, "cells": sorted({t.cell.cell_id for t in targets}),
                    "lanes": lanes, "calls": len(results), "errors": sum(bool(r.error) for r in results),
                    "wall_ms": _r(wall_ms), "completion_tokens_total": tokens,
                    "aggregate_tokens_per_sec": _r(tokens / (wall_ms / 1000), 2) if wall_ms > 0 else None,
                    "resumed": len(todo) < len(works)})

    def phase_size(self, suite: Suite) -> int:
        items = 1 if self.options.smoke else len(suite.items)
        if suite.mode == "cold_warm":
            return items * (1 + (0 if self.options.smoke else self.options.runs))
        if suite.mode == "parallel":
            return items * ((min(2, suite.lanes)) if self.options.smoke else suite.lanes)
        return items

    def run_phase(self, suite: Suite, available: list[Target], index: int, total: int) -> None:
        self.current_phase = f"[{index}/{total}] {suite.name}"
        if suite.mode == "parallel" and suite.lane_models == "mixed":
            if len(available) < 2:
                for target in available:
                    self.skip(target.cell.cell_id, suite.name, "parallel_mixed needs two models (--models A,B)")
                return
            self.done_in_phase, self.total_in_phase = 0, self.phase_size(suite)
            self.run_parallel(available[:2], suite)
            return
        for target in available:
            if (target.cell.cell_id, suite.name) in self.state.skipped:
                continue
            self.done_in_phase, self.total_in_phase = 0, self.phase_size(suite)
            self.current_phase = f"[{index}/{total}] {suite.name} {target.cell.model}"
            runner = {"cold_warm": self.run_cold_warm, "once": self.run_once, "document": self.run_once,
                      "append": self.run_append}.get(suite.mode)
            if runner is not None:
                runner(target, suite)
            else:
                self.run_parallel([target], suite)

    def check_cells(self) -> tuple[list[Target], dict[str, str]]:
        """Health-check every cell: (available targets, reasons for the others)."""
        available, reasons = [], {}
        for target in self.targets:
            reason = health_check(target.cell)
            if reason and self.options.for_publication:
                raise WeeyugaError(f"--for-publication: cell {target.cell.cell_id} is unavailable: {reason}")
            if reason:
                reasons[target.cell.cell_id] = reason
            else:
                available.append(target)
        return available, reasons

    def run(self, suites: list[Suite], available: list[Target]) -> RunResult:
        if self.options.probe_only or not available:
            return self.result
        with ResourceSampler(lambda: self._sampled_pid(available), self.nvml, self.run_dir / SAMPLES_NAME,
                             label={"run_id": self.run_id}) as sampler:
            self.sampler = sampler
            for index, suite in enumerate(suites, 1):
                self.run_phase(suite, available, index, len(suites))
        self.sampler = None
        return self.result

    def _sampled_pid(self, targets: list[Target]) -> int | None:
        for target in targets:
            pid = target.pid()
            if pid:
                return pid
        return None

    def close(self) -> None:
        self.http.close()
        self.ledger.close()
        self.responses.close()


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


# ---------------------------------------------------------------------------------------
# Entry point


def new_run_id() -> str:
    return str(uuid.uuid4())


def meta_record(run_id: str, targets: list[Target], available: list[Target], suites: list[Suite],
                options: RunOptions, gates: dict[str, Any], git: tuple[str | None, bool | None, list[str]]) -> dict[str, Any]:
    return {
        "type": "meta", "schema_version": LEDGER_SCHEMA, "benchmark_run_id": run_id,
        "harness_version": HARNESS_VERSION, "weeyuga_version": __version__, "git_sha": git[0], "git_dirty": git[1],
        "started_at_utc": utc_now(), "host": host_pseudonym(), "platform": platform.system().lower(),
        "load_avg_start": load_average(), "cells_planned": [t.cell.cell_id for t in available],
        "cells": [{"cell_id": t.cell.cell_id, "engine": t.cell.engine, "model": t.cell.model, "api": t.cell.api,
                   "available": t in available, **(engine_facts(t.cell) if t in available else {})} for t in targets],
        "suites": {s.name: {"version": s.version, "sha256": s.sha256, "mode": s.mode} for s in suites},
        "options": options.to_dict(), "canonical_overrides": options.canonical_overrides,
        "submitter_handle": options.submitter_handle, "device_tag": options.device_tag,
        "phase_notes": options.phase_notes, "gates": gates, "env": {k: os.environ[k] for k in RECORDED_ENV if k in os.environ},
        "command": options.command,
    }


def run_failure(records: list[dict[str, Any]], planned: bool) -> str | None:
    """Why a run that reached its end still failed: not one successful call among the calls it planned
    (over the whole ledger, so a resume that adds only errors does not fail a run that had results)."""
    if not planned:
        return None
    calls = [r for r in records if r.get("type") == "call"]
    if any(c.get("error") is None for c in calls):
        return None
    if calls:
        return f"all {len(calls)} calls failed (first error: {calls[0]['error'][:160]})"
    skipped = [f"{s['cell_id']}{' ' + s['phase'] if s.get('phase') else ''}: {s['reason']}"
               for s in records if s.get("type") == "skipped"]
    return "no call was made" + (f" ({'; '.join(skipped[:3])})" if skipped else "")


def check_run_dir(run_dir: Path, resume: bool) -> LedgerState:
    """A new run needs a folder without a ledger; a resume needs one with a meta line."""
    state = read_state(run_dir / LEDGER_NAME)
    if resume and state.meta is None:
        raise BadInput(f"nothing to resume: {run_dir / LEDGER_NAME} has no meta line")
    if not resume and state.meta is not None:
        raise BadInput(f"{run_dir} already holds a run; resume it with --resume {state.meta['benchmark_run_id']}")
    return state


def run_suites(targets: list[Target], options: RunOptions, run_dir: Path, run_id: str | None = None,
               resume: bool = False, clock: Clock = time.perf_counter, nvml: Any = None,
               progress: Progress = quiet, suites_dir: Path | None = None) -> RunResult:
    """Run (or resume) the phases against the targets; the ledger is in run_dir/run.jsonl."""
    state = check_run_dir(run_dir, resume)
    if resume and state.finished:  # e.g. killed while reporting: a second `end` line would be a lie
        return RunResult(state.meta["benchmark_run_id"], run_dir, finished=True)
    if resume:
        run_id = state.meta["benchmark_run_id"]
        recorded = state.meta["options"]
        options = replace(options, phases=recorded["phases"], runs=recorded["runs"], temperature=recorded["temperature"],
                          num_ctx=recorded["num_ctx"], num_predict=recorded["num_predict"], smoke=recorded["smoke"])
    run_id = run_id or new_run_id()
    suites = [load_suite(name, suites_dir) for name in options.phases]
    if resume:
        for suite in suites:
            then = state.meta["suites"].get(suite.name, {}).get("sha256")
            if then and then != suite.sha256:
                raise BadInput(f"suite {suite.name} changed since run {run_id} started; start a new run instead")
    git = git_state()
    gates = check_gates(options, git[1], git[2])
    runner = Runner(targets, options, run_dir, run_id, state, clock, nvml, progress)
    try:
        available, reasons = runner.check_cells()
        if resume:
            runner.write({"type": "resume", "at_utc": utc_now(), "load_avg": load_average(), "gates": gates,
                          "command": options.command})
        else:
            runner.write(meta_record(run_id, targets, available, suites, options, gates, git))
        for cell_id, reason in reasons.items():
            runner.skip(cell_id, None, reason)
        runner.run(suites, available)
        runner.result.failure = run_failure(list(read_records(runner.result.ledger_path)), not options.probe_only)
        runner.write({"type": "end", "finished_at_utc": utc_now(), "load_avg_end": load_average(),
                      "calls": runner.result.calls, "errors": runner.result.errors,
                      "status": "failed" if runner.result.failure else "complete",
                      "status_reason": runner.result.failure})
        runner.result.finished = True
    finally:
        runner.close()
    return runner.result
