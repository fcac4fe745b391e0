"""Stage 4, run: the phases against one or more cells, every call into the ledger.

A cell is `<node>:<engine>:<model>` at a base URL. Per cell: a health check (an unusable
cell becomes a `skipped` record with its reason), then each phase in canonical order, unit by
unit (phases/: what each mode does and how its calls are keyed). The runner keeps the rest:
the reproducibility gates, health, the meta/resume/end lines and resource sampling.

Resume (`resume=True`) reads the ledger and runs only calls whose key is missing.

A run in which no call succeeded (every call failed, or no cell could serve) ends with status
`failed` and the reason on its `end` line; a probe-only run plans no calls and is complete.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import subprocess
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from orchestrator import __version__
from orchestrator.core import records as ledger_lines
from orchestrator.measure.client import Clock
from orchestrator.measure.contention import contended_phases
from orchestrator.measure.contention import describe as describe_contention
from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.core.ledger import Ledger, LedgerState, read_records, read_state
from orchestrator.measure.liveruns import describe as describe_runs
from orchestrator.measure.liveruns import live_runs, register, unregister
from orchestrator.core.canonical import prompt_cache_policy
from orchestrator.core.paths import REPO_ROOT
from orchestrator.measure.phases import Phase, PhaseContext, load_phase
from orchestrator.core.procs import run_captured
from orchestrator.core.progress import Progress, quiet
from orchestrator.core.records import EndRecord, MetaRecord, ResumeRecord, utc_now
from orchestrator.measure.resources import ResourceSampler
from orchestrator.core.runspec import Cell, RunOptions, RunResult, RunTally, Target
from orchestrator.runtime import runtime_for_engine
from orchestrator.core.runfolder import LEDGER_NAME, SAMPLES_NAME

__all__ = ["Cell", "RunOptions", "RunResult", "Target", "run_suites"]  # what the other stages take from here

HARNESS_VERSION = "weeyuga-1"
LEDGER_SCHEMA = "ledger-1"
LOAD_AVG_LIMIT = 4.0
# Environment that changes a runtime's behaviour; recorded (values only, never paths of ours).
RECORDED_ENV = ["OLLAMA_NUM_PARALLEL", "OLLAMA_MAX_LOADED_MODELS", "OLLAMA_KEEP_ALIVE", "OLLAMA_CONTEXT_LENGTH",
                "OLLAMA_FLASH_ATTENTION", "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "OMP_NUM_THREADS"]


# ---------------------------------------------------------------------------------------
# Facts for the meta line


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
    others = live_runs()
    if others and not options.force_load:
        raise WeeyugaError(f"another weeyuga run is measuring on this machine ({describe_runs(others)}): each would "
                           "skew the other's numbers; wait for it to finish or pass --force-load (recorded in the ledger)")
    if options.for_publication and git_dirty and not options.allow_dirty:
        raise WeeyugaError(f"--for-publication refuses a modified weeyuga checkout ({', '.join(dirty_paths[:5])}); "
                           "commit or pass --allow-dirty (recorded in the ledger)")
    return {"load_avg_limit": LOAD_AVG_LIMIT, "force_load": options.force_load,
            "for_publication": options.for_publication, "allow_dirty": options.allow_dirty,
            "dirty_paths": dirty_paths, "other_live_runs": [r.get("run_id") for r in others]}


class Runner:
    """Health, then each phase's units on the cells that can serve, with resources sampled throughout."""

    def __init__(self, targets: list[Target], options: RunOptions, run_dir: Path, run_id: str,
                 state: LedgerState, clock: Clock = time.perf_counter, nvml: Any = None,
                 progress: Progress = quiet) -> None:
        self.targets, self.options, self.run_dir, self.run_id, self.nvml = targets, options, run_dir, run_id, nvml
        validating = options.for_publication or ledger_lines.validate_on_write
        self.ledger = Ledger(run_dir / LEDGER_NAME, schema="run-record" if validating else None, chained=True)
        self.tally = RunTally(run_id, run_dir)
        self.ctx = PhaseContext(targets, options, run_dir, run_id, state, self.ledger, self.tally, clock, progress)
        self.schedule_start: float | None = None  # when the first budgeted phase began (phase_deadline)

    def check_cells(self) -> tuple[list[Target], dict[str, str]]:
        """Health-check every cell: (available targets, reasons for the others)."""
        available, reasons = [], {}
        for target in self.targets:
            reason = runtime_for_engine(target.cell.engine).health(target.cell)
            if reason and self.options.for_publication:
                raise WeeyugaError(f"--for-publication: cell {target.cell.cell_id} is unavailable: {reason}")
            if reason:
                reasons[target.cell.cell_id] = reason
            else:
                available.append(target)
        return available, reasons

    def run_phase(self, phase: Phase, available: list[Target], label: str) -> None:
        groups, refusal = phase.groups(available)
        if refusal:
            for target in available:
                self.ctx.skip(target.cell.cell_id, phase.name, refusal)
        for group in groups:
            cells = [t.cell.cell_id for t in group]
            if all((cell, phase.name) in self.ctx.state.skipped for cell in cells):
                continue
            units = phase.units(cells, self.options)
            self.ctx.begin(label + (f" {group[0].cell.model}" if len(group) == 1 else ""),
                           sum(len(unit.keys) for unit in units))
            deadline = self.phase_deadline(phase.name)
            for index, unit in enumerate(units):
                if index and deadline is not None and self.ctx.clock() > deadline:
                    for cell in cells:
                        self.ctx.skip(cell, phase.name, f"time budget: stopped after {index} of {len(units)} units, "
                                                        f"its {self.options.phase_seconds[phase.name]:.0f} s of "
                                                        "--time-budget spent (with what earlier phases overran)")
                    break
                phase.run_unit(unit, self.ctx)

    def phase_deadline(self, name: str) -> float | None:
        """When a budgeted phase starts no new unit: the end of its slot in the budget's schedule, the phases'
        seconds laid end to end from the first. A phase that overran (a unit runs whole) takes its overrun
        out of the phases after it, so the run as a whole keeps to --time-budget; each phase still runs
        at least one unit, so every planned axis has a result."""
        seconds = self.options.phase_seconds
        if name not in seconds:
            return None
        if self.schedule_start is None:
            self.schedule_start = self.ctx.clock()
        order = [phase for phase in self.options.phases if phase in seconds]
        return self.schedule_start + sum(seconds[phase] for phase in order[:order.index(name) + 1])

    def run(self, phases: list[Phase], available: list[Target]) -> None:
        if self.options.probe_only or not available:
            return
        with ResourceSampler(lambda: self._sampled_pid(available), self.nvml, self.run_dir / SAMPLES_NAME,
                             label={"run_id": self.run_id}, contention=True) as sampler:
            self.ctx.sampler = sampler
            for index, phase in enumerate(phases, 1):
                self.run_phase(phase, available, f"[{index}/{len(phases)}] {phase.name}")
        self.ctx.sampler = None

    def _sampled_pid(self, targets: list[Target]) -> int | None:
        for target in targets:
            pid = target.pid()
            if pid:
                return pid
        return None

    def close(self) -> None:
        self.ctx.close()
        self.ledger.close()


# ---------------------------------------------------------------------------------------
# Entry point


def new_run_id() -> str:
    return str(uuid.uuid4())


def meta_record(run_id: str, targets: list[Target], available: list[Target], phases: list[Phase],
                options: RunOptions, gates: dict[str, Any], git: tuple[str | None, bool | None, list[str]]) -> MetaRecord:
    return MetaRecord(
        schema_version=LEDGER_SCHEMA, benchmark_run_id=run_id, harness_version=HARNESS_VERSION,
        weeyuga_version=__version__, git_sha=git[0], git_dirty=git[1], started_at_utc=utc_now(), host=host_pseudonym(),
        platform=platform.system().lower(), load_avg_start=load_average(),
        cells_planned=[t.cell.cell_id for t in available],
        cells=[{"cell_id": t.cell.cell_id, "engine": t.cell.engine, "model": t.cell.model, "api": t.cell.api,
                "available": t in available, **(runtime_for_engine(t.cell.engine).facts(t.cell) if t in available else {})} for t in targets],
        suites={p.name: {"version": p.version, "sha256": p.sha256, "mode": p.mode} for p in phases},
        options=options.to_dict(), canonical_overrides=options.canonical_overrides,
        submitter_handle=options.submitter_handle, device_tag=options.device_tag, phase_notes=options.phase_notes,
        gates=gates, env={k: os.environ[k] for k in RECORDED_ENV if k in os.environ}, command=options.command,
        prompt_cache=prompt_cache_record(targets))


def prompt_cache_record(targets: list[Target]) -> dict[str, Any]:
    """The prompt-cache methodology and how each cell's runtime was (or could not be) told it."""
    policy = prompt_cache_policy()
    cells = {}
    for target in targets:
        switch, why = runtime_for_engine(target.cell.engine).prompt_cache_switch()
        cells[target.cell.cell_id] = {"sent_as": switch, "why_not_sent": why}
    return {"timed_calls": policy.timed_calls, "measured_by": policy.measured_by, "reused_by": list(policy.reused_by),
            "cells": cells}


def publication_refusal(options: RunOptions, records: list[dict[str, Any]]) -> str | None:
    """A --for-publication run whose phases other processes contended is not a result to publish."""
    if not options.for_publication:
        return None
    flagged = contended_phases(r for r in records if r.get("type") == "call")
    return f"--for-publication refuses contended phases: {describe_contention(flagged)}; rerun on a quiet machine" if flagged else None


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
                          num_ctx=recorded["num_ctx"], num_predict=recorded["num_predict"], smoke=recorded["smoke"],
                          quality=recorded.get("quality", options.quality), agent=recorded.get("agent", {}),
                          sandbox=recorded.get("sandbox", {}))
    run_id = run_id or new_run_id()
    phases = [load_phase(name, suites_dir, options) for name in options.phases]
    if resume:
        for phase in phases:
            then = state.meta["suites"].get(phase.name, {}).get("sha256")
            if then and then != phase.sha256:
                raise BadInput(f"suite {phase.name} changed since run {run_id} started; start a new run instead")
    git = git_state()
    gates = check_gates(options, git[1], git[2])
    runner = Runner(targets, options, run_dir, run_id, state, clock, nvml, progress)
    entry = register(run_id)
    try:
        available, reasons = runner.check_cells()
        if resume:
            runner.ctx.write(ResumeRecord(utc_now(), load_average(), gates, options.command))
        else:
            runner.ctx.write(meta_record(run_id, targets, available, phases, options, gates, git))
        for cell_id, reason in reasons.items():
            runner.ctx.skip(cell_id, None, reason)
        runner.run(phases, available)
        records = list(read_records(runner.tally.ledger_path))
        failure = run_failure(records, not options.probe_only) or publication_refusal(options, records)
        runner.ctx.write(EndRecord(utc_now(), load_average(), runner.tally.calls, runner.tally.errors,
                                   "failed" if failure else "complete", failure))
    finally:
        runner.close()
        unregister(entry)
    return runner.tally.result(finished=True, failure=failure)
