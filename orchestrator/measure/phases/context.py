"""What a phase may do while it runs a unit: timed calls recorded as `call` lines, other records,
resume checks and progress. One PhaseContext per run, shared by every phase (and their threads)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import httpx

from orchestrator.measure.client import CallRequest, CallResult, Clock, stream_chat
from orchestrator.measure.decode_profile import decode_profile
from orchestrator.core.ledger import Ledger, LedgerState, read_records
from orchestrator.core.canonical import prompt_cache_policy
from orchestrator.core.progress import Progress
from orchestrator.core.records import CallKey, CallRecord, Record, SkippedRecord, rounded, utc_now
from orchestrator.measure.resources import ResourceSampler
from orchestrator.core.runspec import RunOptions, RunTally, Target
from orchestrator.runtime import runtime_for_engine
from orchestrator.core.runfolder import RESPONSES_NAME

Grade = Callable[[str], tuple[bool | None, float | None]]  # answer text -> (format_ok, marker_hit)


class PhaseContext:
    def __init__(self, targets: list[Target], options: RunOptions, run_dir: Path, run_id: str, state: LedgerState,
                 ledger: Ledger, tally: RunTally, clock: Clock, progress: Progress) -> None:
        self.targets = {t.cell.cell_id: t for t in targets}
        self.options, self.run_dir, self.run_id, self.state = options, run_dir, run_id, state
        self.ledger, self.tally, self.clock, self.progress = ledger, tally, clock, progress
        self.responses = Ledger(run_dir / RESPONSES_NAME)
        self.http = httpx.Client(limits=httpx.Limits(max_connections=32))
        self.write_lock = threading.Lock()
        self.sampler: ResourceSampler | None = None
        self.label, self.done_in_phase, self.total_in_phase = "", 0, 0

    def target(self, cell_id: str) -> Target:
        return self.targets[cell_id]

    def begin(self, label: str, total: int) -> None:
        """Progress from here counts calls toward `total` under this label."""
        self.label, self.done_in_phase, self.total_in_phase = label, 0, total

    def is_done(self, key: CallKey) -> bool:
        return key.as_tuple() in self.state.done

    def write(self, record: Record) -> None:
        with self.write_lock:
            self.ledger.write(record)

    def skip(self, cell_id: str, phase: str | None, reason: str) -> None:
        """A `skipped` line, once per (cell, phase)."""
        record = SkippedRecord(cell_id, phase, reason, utc_now())
        if record.key in self.state.skipped:
            return
        self.state.skipped.add(record.key)
        self.write(record)
        self.tally.skipped.append(record.to_json())

    def request(self, key: CallKey, messages: list[dict[str, Any]], max_tokens: int, cache_prompt: bool | None = None,
                **fields: Any) -> CallRequest:
        """A request to the key's cell with the run's settings and the tagging headers. `cache_prompt`
        (default: the methodology's, for timed calls) goes out where the runtime has a switch for it."""
        target, opts = self.target(key.cell_id), self.options
        switch, _ = runtime_for_engine(target.cell.engine).prompt_cache_switch()
        cache_prompt = prompt_cache_policy().sent_by(key.phase) if cache_prompt is None else cache_prompt
        cache_field = {switch: cache_prompt} if switch else {}
        headers = {"X-Weeyuga-Test": "true", "X-Weeyuga-Benchmark-Run-Id": self.run_id,
                   "X-Weeyuga-Benchmark-Cell-Id": key.cell_id, "X-Weeyuga-Benchmark-Prompt-Id": key.prompt_id,
                   "X-Weeyuga-Benchmark-Phase": key.phase, "X-Weeyuga-Benchmark-Run-Idx": str(key.run_idx)}
        return CallRequest(
            base_url=target.cell.base_url, api=target.cell.api, model=target.cell.model, messages=messages,
            max_tokens=max_tokens, temperature=opts.temperature, headers=headers,
            request_fields={**{k: v for k, v in target.request_fields.items() if k not in ("max_tokens", "temperature")},
                            **cache_field},
            options={**target.options, "num_ctx": opts.num_ctx}, keep_alive=target.keep_alive,
            stall_timeout_s=opts.stall_timeout_s, cache_prompt=cache_prompt if switch else None, **fields)

    def chat(self, request: CallRequest, *, key_fields: CallKey, load_state: str = "warm",
             cold_kind: str | None = None, grade: Grade | None = None) -> CallResult:
        """One timed call, recorded as a `call` line (and its text and decode profile in responses.jsonl)."""
        target = self.target(key_fields.cell_id)
        started_at = utc_now()
        t0 = time.monotonic()
        result = stream_chat(request, target.cell.engine, self.http, self.clock)
        t1 = time.monotonic()
        target.loaded_fresh = False
        contention = self.sampler.contention_during(t0, t1) if self.sampler else {"contention_cpu": None}
        died = target.crash_note() if result.error else None
        if died:  # a dropped connection is the symptom; the runtime's death is the cause
            result = replace(result, error=f"runtime died: {died}; first symptom: {result.error}")
        format_ok, marker_hit = grade(result.text) if grade and not result.error else (None, None)
        record = CallRecord(
            key_fields.cell_id, key_fields.phase, key_fields.prompt_id, key_fields.run_idx, key_fields.lane,
            load_state, cold_kind, target.cell.model, target.cell.engine, started_at, request.max_tokens,
            rounded(result.first_delta_ms), rounded(result.ttfb_ms), rounded(result.first_answer_ms), rounded(result.total_duration_ms),
            result.prompt_tokens, result.completion_tokens, result.reasoning_tokens, result.tokens_estimated,
            rounded(result.tokens_per_sec, 2), rounded(result.server_tokens_per_sec, 2), rounded(result.server_prompt_ms),
            result.rate_disagreement, result.finish_reason, result.backend, result.error, format_ok, marker_hit,
            result.response_preview, self.sampler.peaks(t0, t1) if self.sampler else {},
            key_fields.step, key_fields.attempt, request.cache_prompt, result.prompt_cached_tokens,
            rounded(result.prefill_tokens_per_sec, 2),
            tokens_per_sec_after_first=rounded(result.tokens_per_sec_after_first, 2), **contention)
        profile = decode_profile(result.delta_ms, result.completion_tokens) if not result.error else None
        with self.write_lock:
            self.ledger.write(record)
            self.responses.write({"key": list(record.key.as_tuple()), "text": result.text,
                                  **({"decode_profile": profile} if profile else {})})
            self.state.done.add(record.key.as_tuple())
            self.tally.calls += 1
            self.tally.errors += bool(result.error)
            self.done_in_phase += 1
            rate = f", {result.tokens_per_sec:.1f} tok/s" if result.tokens_per_sec else (f", error: {result.error[:60]}" if result.error else "")
            self.progress(f"{self.label} {self.done_in_phase}/{self.total_in_phase}{rate}",
                          self.done_in_phase / max(1, self.total_in_phase))
        return result

    def warm_up(self, target: Target, prompt: str) -> None:
        """An unrecorded call so a resumed warm series is really warm."""
        request = CallRequest(base_url=target.cell.base_url, api=target.cell.api, model=target.cell.model,
                              messages=[{"role": "user", "content": prompt}], max_tokens=8,
                              temperature=self.options.temperature, headers={"X-Weeyuga-Test": "true"},
                              options=target.options, keep_alive=target.keep_alive)
        stream_chat(request, target.cell.engine, self.http)
        target.loaded_fresh = False

    def saved_responses(self, cell_id: str, phase: str) -> dict[tuple, str]:
        """Texts of this cell's calls in this phase from responses.jsonl, by key (a resumed conversation)."""
        path = self.run_dir / RESPONSES_NAME
        if not path.exists():
            return {}
        saved = {}
        for record in read_records(path):
            key = tuple(record["key"])
            if key[0] == cell_id and key[1] == phase:
                saved[key] = record["text"]
        return saved

    def close(self) -> None:
        self.http.close()
        self.responses.close()
