"""`auto` and `doctor`: the whole pipeline, and what it needs."""

from __future__ import annotations

import argparse
import sys

from orchestrator.core.reproduce import portable_command
from orchestrator.cli.common import MINUTES, RUNS, WARM_RUNS, add_knob_overrides, command, knob_overrides, load_or_probe
from orchestrator.cli.plan import render_plan
from orchestrator.cli.quality import QUALITY_MODES
from orchestrator.cli.run import add_load_options, load_options
from orchestrator.cli.sandbox import add_sandbox_option, sandbox_record


def ask(question: str, default: str, assume_yes: bool) -> str:
    """Prompt only on a terminal; --yes or a pipe takes the default."""
    if assume_yes or not sys.stdin.isatty():
        return default
    answer = input(f"{question} [{default}]: ").strip()
    return answer or default


def render_auto_plan(auto_plan) -> str:
    from orchestrator.flows.auto import describe_install_fallback
    from orchestrator.flows.budget import minutes

    lines = [render_plan(auto_plan.plan)]
    if auto_plan.install_fallback:
        lines += ["", "  " + describe_install_fallback(auto_plan.install_fallback)]
    budget = auto_plan.budget
    if budget:
        lines += ["", f"time budget {minutes(budget.budget_s)}; decode rate {budget.rate.tokens_per_sec:.1f} tok/s "
                      f"({budget.rate.source}: {budget.rate.detail})"]
        if budget.rate.answer_fills:
            lines.append(f"quality answer lengths measured for this model here: {len(budget.rate.answer_fills)} pack(s)")
    lines += ["", "phases (estimated):"]
    for est in auto_plan.estimates:
        mark = "run " if est.phase in auto_plan.phases else "skip"
        note = f"  ({auto_plan.phase_notes[est.phase]})" if est.phase in auto_plan.phase_notes else ""
        lines.append(f"  {mark} {est.phase:<15} {est.calls:>3} calls  ~{minutes(est.seconds)}{note}")
    for axis in budget.axes if budget else ():
        lines.append(f"{axis.axis} (~{minutes(axis.seconds)} of {minutes(max(axis.allowance_s, 0))}):")
        if axis.axis == "speed":  # its phases are listed above
            lines += [f"  run  {len(axis.runs)} phase(s)"] + [f"  less {why}" for what, why in axis.skipped.items()
                                                               if what not in auto_plan.phase_notes]
        else:
            lines += [f"  run  {what}" for what in axis.runs] + [f"  skip {why}" for why in axis.skipped.values()]
    if auto_plan.steps:
        lines += ["", "steps:"] + [f"  {i}. {step}" for i, step in enumerate(auto_plan.steps, 1)]
    return "\n".join(lines)


@command("auto")
def cmd_auto(args: argparse.Namespace) -> int:
    from orchestrator.flows.auto import DEFAULT_TIME_BUDGET_MIN, execute, plan_auto, without_model_code
    from orchestrator.runtime.launch import install_signal_handlers
    from orchestrator.core.paths import submissions_root
    from orchestrator.flows.pipeline import default_handle
    from orchestrator.core.runfolder import validate_device_tag, validate_handle
    from orchestrator.plan.profiles import load_profiles
    from orchestrator.core.progress import progress_reporter
    from orchestrator.measure.suites import parse_phases
    from orchestrator.plan.probe import load_nvml

    install_signal_handlers()
    profiles = load_profiles()
    hardware = load_or_probe(args.hardware, args.device_tag)
    handle = validate_handle(args.submitter_handle or ask("submitter handle", default_handle(), args.yes))
    if not args.device_tag:
        from dataclasses import replace
        hardware = replace(hardware, device_tag=validate_device_tag(ask("device tag", hardware.device_tag, args.yes)))
    auto_plan = plan_auto(hardware, profiles, knob_overrides(args), parse_phases(args.phases) if args.phases else None,
                          args.runs, args.time_budget or DEFAULT_TIME_BUDGET_MIN, submissions_root(args.submissions_dir),
                          handle, args.resume, args.quality_mode, args.smoke, args.model_path, load_options(args))
    print(render_auto_plan(auto_plan), flush=True)
    if args.dry_run:
        print(f"\ndry run: nothing installed, fetched, launched or written (run folder would be {auto_plan.run_dir})")
        return 0
    sandbox = sandbox_record(args) if {"agent", "quality"} & set(auto_plan.phases) else {}
    auto_plan = without_model_code(auto_plan, sandbox)
    # temperature, num_ctx and num_predict come from the plan, whose deviations already record any override
    options = dict(force_load=args.force_load,
                   for_publication=args.for_publication, allow_dirty=args.allow_dirty, smoke=args.smoke,
                   sandbox=sandbox, **load_options(args, auto_plan.plan.num_parallel))
    try:
        with progress_reporter() as progress:
            result = execute(auto_plan, profiles, args.runs, handle, options, portable_command(["weeyuga"] + sys.argv[1:]), progress,
                             nvml=load_nvml(), on_launch=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print(f"\ninterrupted: the runtime is stopped and the ledger kept in {auto_plan.run_dir}\n"
              f"continue with: weeyuga auto --resume {auto_plan.run_id} --submitter-handle {handle} "
              f"--device-tag {hardware.device_tag}", file=sys.stderr)
        return 130
    print(f"\nrun {result.run_id}: {result.calls} calls, {result.errors} errors, status {result.status}"
          + (f" ({result.status_reason})" if result.status_reason else ""))
    print(f"submission folder: {result.run_dir}")
    for sentence in result.capacity:
        print(f"capacity: {sentence}")
    if result.findings:
        for finding in result.findings:
            print(f"  privacy: {finding}")
        print(f"privacy scan found {len(result.findings)} item(s): review them, or run "
              f"`weeyuga privacy-scan {result.run_dir} --redact`, before submitting")
        return 1
    print("privacy scan: clean")
    print(f"next: {' '.join(result.submit_command)}")
    return 0 if result.status == "complete" else 1


@command("doctor")
def cmd_doctor(args: argparse.Namespace) -> int:
    from orchestrator.flows.doctor import run_checks

    checks = run_checks(load_or_probe(args.hardware))
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FIX '} {check.name:<10} {check.detail}")
    missing = [c for c in checks if not c.ok]
    print("everything weeyuga auto needs is here" if not missing else f"{len(missing)} thing(s) to fix first")
    return 0 if not missing else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("auto", help="probe, decide, install, fetch, launch, run, report, privacy-scan, stop")
    p.add_argument("--yes", action="store_true", help="accept the default handle and device tag without asking")
    p.add_argument("--dry-run", action="store_true", help="print the plan and every step; do nothing")
    p.add_argument("--phases", help="comma-separated phases or 'all' (default: speed phases, quality and agent within --time-budget)")
    p.add_argument("--time-budget", type=MINUTES, help="minutes of benchmarking to aim for (default 15)")
    p.add_argument("--runs", type=WARM_RUNS, help=f"warm calls per frozen prompt after the cold one (default {RUNS}, "
                   "fewer when hello's repeats would not fit --time-budget)")
    p.add_argument("--smoke", action="store_true", help="one item per phase, no warm repeats")
    p.add_argument("--submitter-handle")
    p.add_argument("--device-tag")
    p.add_argument("--submissions-dir")
    p.add_argument("--resume", metavar="RUN_ID")
    p.add_argument("--hardware", help="use this hardware.json instead of probing")
    p.add_argument("--force-load", action="store_true")
    p.add_argument("--for-publication", action="store_true")
    p.add_argument("--allow-dirty", action="store_true")
    p.add_argument("--quality-mode", choices=QUALITY_MODES,
                   help="packs of the quality phase (default: the largest set that fits --time-budget)")
    add_sandbox_option(p, "auto")
    p.add_argument("--model-path", metavar="GGUF", help="serve this local GGUF: with --model it stands for that "
                   "catalogue model, without it it is planned from its own metadata (a recorded deviation)")
    add_knob_overrides(p)
    add_load_options(p, "the plan's slots, num_parallel")

    p = sub.add_parser("doctor", help="check everything auto needs and say how to fix what is missing")
    p.add_argument("--hardware", help="use this hardware.json instead of probing")
