"""`weeyuga auto`: probe, decide, install, fetch, launch, run, report, privacy-scan, stop.

Each step is a stage module's entry function; this module only sequences them, plans what fits
the time budget on each axis (speed, quality, agent: budget.py), and falls back to the embedded
default model when the planned one is not on this machine (recorded as a deviation, with the command to get it). A GPU
plan whose llama-server is CPU-only, or of a backend nobody can vouch for, is recorded too
(`install_fallback`): known before the run where the dry run can tell, always once installed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from orchestrator.flows.budget import (AXES, BudgetPlan, DecodeRate, decode_rate, load_budget, measured_answer_fills,
                                       measured_rate, plan_budget)
from orchestrator.plan.decide import Plan, decide
from orchestrator.core.errors import WeeyugaError
from orchestrator.runtime.install import RuntimeInstall
from orchestrator.runtime.launch import build_command, launch, load_runtime
from orchestrator.core.methodology import methodology
from orchestrator.core.paths import state_dir
from orchestrator.measure.phases import load_phase
from orchestrator.flows.pipeline import ensure_writable, find_run_dir, new_run_dir, run_recorded
from orchestrator.publish.privacy import Finding, scan
from orchestrator.plan.probe import Hardware
from orchestrator.plan.profiles import ModelSpec, Profiles, with_model_file
from orchestrator.core.progress import Progress, quiet
from orchestrator.publish.manifest import RunContext, load_context
from orchestrator.publish.report import report
from orchestrator.publish.report.capacity import capacity_sentences
from orchestrator.measure.run import RunOptions
from orchestrator.runtime import managed_runtime
from orchestrator.measure.suites import PHASES
from orchestrator.core.runfolder import LEDGER_NAME
from orchestrator.core.runspec import Cell, Target

RUNS = methodology().runs_per_prompt

DEFAULT_TIME_BUDGET_MIN = 15.0


@dataclass(frozen=True)
class PhaseEstimate:
    phase: str
    calls: int
    seconds: float
    skip: str | None = None  # why it cannot run on what auto serves (one model)


@dataclass(frozen=True)
class AutoPlan:
    """Everything auto will do, before it does any of it (what --dry-run prints)."""

    hardware: Hardware
    plan: Plan
    phases: list[str]
    estimates: list[PhaseEstimate]
    phase_notes: dict[str, str]
    run_dir: Path
    run_id: str
    steps: list[str] = field(default_factory=list)
    install_fallback: dict[str, Any] | None = None  # what the dry run can already tell
    budget: BudgetPlan | None = None  # per axis: what runs, what is skipped and why (None on a resume)
    model_path: str | None = None  # --model-path: a local GGUF served instead of a fetched one
    local_model: ModelSpec | None = None  # that file's own description, when it is not a catalogue model


@dataclass(frozen=True)
class AutoResult:
    run_dir: Path
    run_id: str
    status: str
    calls: int
    errors: int
    findings: list[Finding]
    submit_command: list[str]
    status_reason: str | None = None  # why a run that ran to its end failed
    capacity: list[str] = field(default_factory=list)  # "<cell>: serves N concurrent users ..." per cell that measured it


def plan_with_fallback(hw: Hardware, profiles: Profiles, overrides: dict[str, Any]) -> Plan:
    """The rules' plan, or the embedded default when the planned model would need a download first."""
    plan = decide(hw, profiles, overrides)
    if "model" in overrides or managed_runtime(plan.runtime).model_on_machine(plan, profiles) or plan.model == profiles.embedded_default:
        return plan
    fallback = decide(hw, profiles, {**overrides, "model": profiles.embedded_default})
    why = f"fallback: {plan.model} is not on this machine; get it with `weeyuga model get {plan.model}` or pass --model"
    deviations = [dataclasses.replace(d, source="fallback", overrode=why) if d.knob in ("model", "quant") and d.source == "user"
                  else d for d in fallback.deviations]
    return dataclasses.replace(fallback, deviations=deviations)


def estimate_decode_rate(plan: Plan, hw: Hardware) -> float:
    """Tokens/s guess for the time budget only: weights stream from memory once per token."""
    gpu_bw = hw.gpu[0].bandwidth_gbps_theoretical if hw.gpu and plan.ngl else None
    bandwidth = gpu_bw or hw.host_memory_bandwidth_gbps_measured or 10.0
    return max(1.0, 0.5 * bandwidth / max(plan.model_size_gb, 0.05))


def planning_rate(plan: Plan, hw: Hardware, profiles: Profiles, submissions: Path) -> DecodeRate:
    """Tuned, else measured on this device in an earlier run, else estimated; with the quality packs' answer
    fills measured here for this model."""
    tuned = profiles.tuned_for(hw.device_tag).get("models", {}).get(plan.model, {}).get("tokens_per_sec")
    newest = load_budget().newest_runs
    measured = measured_rate(submissions, hw.device_tag, plan.model, newest)
    fills = measured_answer_fills(submissions, hw.device_tag, plan.model, newest)
    return decode_rate(tuned, measured, estimate_decode_rate(plan, hw), fills)


def estimate_phases(plan: Plan, rate: float, phases: list[str], runs: int, call_seconds: dict[str, float] | None = None,
                    **more_options: Any) -> list[PhaseEstimate]:
    """Each phase's calls (its units' keys on one cell) and time: its calls at the seconds a call of it took in a
    run measured here (`call_seconds`), else its cost model at this decode rate. auto serves one model: a phase
    that needs more (parallel_mixed) costs nothing and says why it cannot run."""
    options = RunOptions(phases=phases, runs=runs, num_ctx=plan.num_ctx, num_predict=plan.num_predict, **more_options)
    served = Target(Cell("plan:estimate:model", "estimate", plan.model, ""))
    out = []
    for name in phases:
        phase = load_phase(name, options=options)
        groups, why = phase.groups([served])
        if not groups:
            out.append(PhaseEstimate(name, 0, 0.0, why))
            continue
        calls = sum(len(unit.keys) for unit in phase.units([served.cell.cell_id], options))
        measured = (call_seconds or {}).get(name)  # speed phases only; an appended conversation's length varies
        out.append(PhaseEstimate(name, calls, calls * measured if measured and phase.calls_fixed
                                 else phase.estimate_seconds(rate, plan.num_predict, runs)))
    return out


def phase_sizing(plan: Plan, smoke: bool, phase_options: dict[str, Any] | None) -> dict[str, Any]:
    """The RunOptions fields estimates need: capacity's top level is the plan's slots unless given."""
    given = phase_options or {}
    return {**given, "smoke": smoke, "capacity": {"max_users": plan.num_parallel, **given.get("capacity", {})}}


def plan_auto(hw: Hardware, profiles: Profiles, overrides: dict[str, Any], phases: list[str] | None,
              runs: int | None, time_budget_min: float, root: Path, handle: str, resume: str | None,
              quality_mode: str | None = None, smoke: bool = False, model_path: str | None = None,
              phase_options: dict[str, Any] | None = None) -> AutoPlan:
    """The speed phases, quality set and agent task set that fit the time budget (budget.py);
    `phases` (--phases) fixes which run, `quality_mode` (--quality-mode) the quality set, `runs` (--runs)
    the warm repeats (None: the most that fit); `phase_options`: RunOptions fields that size phases
    (capacity's top level, endurance's minutes), for their estimates."""
    if resume:  # the run's recorded options decide what runs; these estimates only inform
        run_dir = find_run_dir(root, resume)
        context = load_context(run_dir)
        if context is None or context.plan is None:
            raise WeeyugaError(f"{run_dir} was not made by `weeyuga auto` (no plan in context.json); use `weeyuga run --resume`")
        plan, run_id = context.plan, run_dir.name[len("run-"):]
        sizing = phase_sizing(plan, smoke, phase_options)
        rate = planning_rate(plan, hw, profiles, root)
        speed = [p for p in phases or PHASES if p not in AXES]
        estimates = estimate_phases(plan, rate.tokens_per_sec, speed, RUNS if runs is None else runs, rate.call_seconds, **sizing)
        return AutoPlan(hw, plan, phases or PHASES, estimates, {}, run_dir, run_id)
    profiles, overrides, local_model = with_model_file(profiles, overrides, model_path)
    plan = plan_with_fallback(hw, profiles, overrides)
    rate = planning_rate(plan, hw, profiles, root)
    speed = [p for p in phases or PHASES if p not in AXES]
    sizing = phase_sizing(plan, smoke, phase_options)
    budget = plan_budget(time_budget_min * 60, rate,
                         lambda warm: estimate_phases(plan, rate.tokens_per_sec, speed, warm, rate.call_seconds, **sizing),
                         phases, plan.num_predict, smoke, quality_mode, runs)
    estimates = estimate_phases(plan, rate.tokens_per_sec, speed, budget.runs, rate.call_seconds, **sizing)
    run_dir, run_id = new_run_dir(root, handle, hw.device_tag)
    runtime = managed_runtime(plan.runtime).locate(plan)
    steps = describe_steps(plan, profiles, run_dir, runtime, model_path)
    return AutoPlan(hw, plan, budget.phases, estimates, budget.phase_notes, run_dir, run_id, steps,
                    install_fallback(plan, runtime), budget, model_path, local_model)


def without_model_code(auto_plan: AutoPlan, sandbox: dict[str, Any]) -> AutoPlan:
    """Where nothing contains model-written code (the sandbox choice is `unavailable`): no agent phase,
    its reason noted; the quality phase leaves codeexec out itself (QualityPhase.units)."""
    if sandbox.get("kind") != "unavailable":
        return auto_plan
    phases = [phase for phase in auto_plan.phases if phase != "agent"]
    notes = {**auto_plan.phase_notes, "agent": f"not run: {sandbox['reason']}"}
    budget = auto_plan.budget and dataclasses.replace(auto_plan.budget, phases=phases, phase_notes=notes, agent=None)
    return dataclasses.replace(auto_plan, phases=phases, phase_notes=notes, budget=budget)


def install_fallback(plan: Plan, runtime: RuntimeInstall | None) -> dict[str, Any] | None:
    """The deviation when the installed (or to-be-built) runtime cannot serve the planned backend."""
    return managed_runtime(plan.runtime).install_fallback(plan, runtime)


def describe_install_fallback(deviation: dict[str, Any]) -> str:
    return (f"install fallback: backend {deviation['value']} instead of {deviation['replaced']}: {deviation['why']} "
            "(an install_fallback deviation in the manifest)")


def describe_steps(plan: Plan, profiles: Profiles, run_dir: Path, runtime: RuntimeInstall | None,
                   local_file: str | None = None) -> list[str]:
    model_path, record, install_step = managed_runtime(plan.runtime).dry_run_facts(plan, profiles, runtime)
    model_path = local_file or model_path
    binary = runtime.binary if runtime else "<llama-server to be built>"
    variant_args = tuple(record.chosen.args) if record and record.chosen else ()
    command = build_command(load_runtime(plan.runtime), plan, binary, 0, model_path or "<model.gguf>", plan.model,
                            variant_args=variant_args)
    return [
        "probe this machine (done)",
        "decide the plan (done)",
        f"runtime: {'use ' + runtime.binary if runtime else install_step}",
        "self-test it on this CPU: " + (f"verified, variant {record.chosen.variant}" if record and record.chosen
                                                 else "on first use (about half a minute)"),
        f"model: {'use local file ' + local_file if local_file else 'use cached ' + model_path if model_path else 'fetch ' + plan.model + ' ' + plan.quant}",
        "launch: " + " ".join(command.argv).replace(" --port 0", " --port <free port>"),
        f"run the phases below, writing {run_dir}/run.jsonl",
        "report: metadata.json, run.md, plots",
        "privacy-scan the run folder",
        "stop the runtime",
        f"print: weeyuga submit {run_dir}",
    ]


def with_runtime_deviation(plan: Plan, deviation: Any) -> Plan:
    """The plan as it really runs: a deviation the runtime forced on it (self-test flags) joins its list once."""
    if deviation is None:
        return plan
    kept = [d for d in plan.deviations if d.knob != deviation.knob]
    return dataclasses.replace(plan, deviations=[*kept, deviation])


def managed_context(plan: Plan, hw: Hardware, profiles: Profiles, runtime_name: str, engine_version: str | None,
                    backend: str | None, source: str, build: dict[str, Any], argv: list[str],
                    unsupported: dict[str, str], model: dict[str, Any] | None,
                    deviations: list[dict[str, Any]] | None = None,
                    self_test: dict[str, Any] | None = None, budget_plan: dict[str, Any] | None = None) -> RunContext:
    """The manifest's context for a runtime weeyuga launched. argv keeps file names, never our paths;
    the self-test keeps its verdicts and speeds, not its log lines (they can name local paths)."""
    public_argv = [Path(a).name if "/" in a or "\\" in a else a for a in argv]
    verdicts = [{k: t[k] for k in ("variant", "build", "args", "passed", "outcome", "tokens_per_sec")}
                for t in (self_test or {}).get("tried", [])]
    return RunContext(
        plan=plan, hardware=hw, canonical=profiles.canonical, models=[model] if model else [], deviations=deviations or [],
        budget_plan=budget_plan,
        runtime={"name": runtime_name, "managed": True, "engine_version": engine_version, "backend": backend,
                 "source": source, "build": {k: v for k, v in build.items() if k in ("version", "backend", "requested_backend", "targets", "built_at_utc", "jobs", "seconds")},
                 "argv": public_argv, "unsupported": unsupported,
                 "self_test": {"cpu_fingerprint": self_test["fingerprint"]["id"], "chosen": self_test["chosen"]["variant"],
                               "verified_at_utc": self_test["verified_at_utc"], "tried": verdicts} if self_test else None})


def recorded_budget_plan(run_dir: Path) -> dict[str, Any] | None:
    """A resume keeps the budget plan its run started with (context.json)."""
    context = load_context(run_dir) if run_dir.exists() else None
    return context.budget_plan if context else None


def execute(auto_plan: AutoPlan, profiles: Profiles, runs: int | None, handle: str, options: dict[str, Any],
            command: list[str], progress: Progress = quiet, nvml: Any = None,
            on_launch: Callable[[str], None] = lambda line: None) -> AutoResult:
    """Install, fetch, launch, run, report, scan, stop. Ctrl-C stops the runtime and keeps the ledger."""
    plan, hw = auto_plan.plan, auto_plan.hardware
    ensure_writable(auto_plan.run_dir.parent)
    kind = managed_runtime(plan.runtime)
    profiles = profiles.with_model(auto_plan.local_model) if auto_plan.local_model else profiles
    prepared = kind.prepare(plan, profiles, progress, auto_plan.model_path)
    runtime = prepared.install
    plan = with_runtime_deviation(plan, prepared.deviation)
    log_path = state_dir() / "logs" / f"{plan.runtime}-{auto_plan.run_id}.log"
    budget = auto_plan.budget
    runs = budget.runs if budget else RUNS if runs is None else runs  # a resume's recorded runs win in run_suites
    run_options = RunOptions(phases=auto_plan.phases, runs=runs, submitter_handle=handle, device_tag=hw.device_tag,
                             command=command, phase_notes=auto_plan.phase_notes, temperature=plan.temperature,
                             num_ctx=plan.num_ctx, num_predict=plan.num_predict, **{**options, **(budget.run_options() if budget else {})})
    fallback = install_fallback(plan, runtime)
    if fallback:  # said before the launch, so it is seen even when the launch fails
        on_launch(describe_install_fallback(fallback))
    with launch(plan, runtime.binary, prepared.model_path, log_path, variant_args=runtime.variant_args) as running:
        on_launch(f"{plan.runtime} {running.engine_version or ''} serving {plan.model} at {running.base_url} "
                  f"(pid {running.pid}, ready in {running.ready_ms[-1]:.0f} ms)")
        model_record = kind.after_ready(running, prepared, progress)
        target = kind.target(f"{hw.device_tag}:{kind.engine}:{plan.model}", running, plan, prepared)
        context = managed_context(plan, hw, profiles, plan.runtime, running.engine_version, runtime.backend,
                                  runtime.source, runtime.build_info, running.command.argv,
                                  running.command.unsupported, model_record, [fallback] if fallback else [],
                                  runtime.self_test, budget.to_json() if budget else recorded_budget_plan(auto_plan.run_dir))
        resume = (auto_plan.run_dir / LEDGER_NAME).exists()
        recorded = run_recorded([target], run_options, auto_plan.run_dir, auto_plan.run_id, context, resume=resume,
                                progress=progress, nvml=nvml)
    done = report(auto_plan.run_dir)
    findings = scan(auto_plan.run_dir)
    return AutoResult(auto_plan.run_dir, auto_plan.run_id, recorded.status, recorded.result.calls,
                      recorded.result.errors, findings, ["weeyuga", "submit", str(auto_plan.run_dir)],
                      recorded.result.failure, capacity_sentences(done.metadata))
