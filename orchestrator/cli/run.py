"""`run`: the suites against a runtime the user started."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from orchestrator.core.errors import BadInput
from orchestrator.core.reproduce import portable_command
from orchestrator.cli.common import CONTEXT, COUNT, ENGINES, TEMPERATURE, add_run_options, command, load_or_probe


def canonical_options(profiles, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(options in effect, overrides of the canonical table) for temperature, num_ctx, num_predict."""
    canonical = profiles.canonical["request_options"]
    effective, overrides = {}, {}
    for name in canonical:
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
    from orchestrator.measure.suites import parse_phases

    return run_bring_your_own(args, "run", parse_phases(args.phases), runs=args.runs, smoke=args.smoke, probe_only=args.probe)


def run_bring_your_own(args: argparse.Namespace, name: str, phases: list[str], **run_options: Any) -> int:
    """The phases against the runtime at --target-url, from the target and folder options of
    add_target_options; `weeyuga run` and `weeyuga agent run` differ only in what they run."""
    from orchestrator.core.paths import submissions_root
    from orchestrator.flows.pipeline import byo_targets, default_handle, find_run_dir, new_run_dir, run_recorded
    from orchestrator.plan.probe import validate_device_tag
    from orchestrator.plan.profiles import load_profiles
    from orchestrator.core.progress import progress_reporter
    from orchestrator.publish.manifest import RunContext
    from orchestrator.measure.run import RunOptions

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
    options = RunOptions(phases=phases, force_load=args.force_load, for_publication=args.for_publication,
                         allow_dirty=args.allow_dirty, submitter_handle=handle, device_tag=device_tag,
                         canonical_overrides=overrides, command=portable_command(["weeyuga"] + sys.argv[1:]), **effective, **run_options)
    targets = byo_targets(args.target_url, models, args.engine, args.cell_id_prefix, device_tag)
    try:
        with progress_reporter() as progress:
            recorded = run_recorded(targets, options, run_dir, run_id, context, resume=bool(args.resume),
                                    progress=progress)
    except KeyboardInterrupt:
        print(f"interrupted; the ledger is kept. Continue with: weeyuga {name} --resume {run_id} "
              f"--target-url {args.target_url} --models {args.models}", file=sys.stderr)
        return 130
    report_run_outcome(recorded, run_dir)
    return 0 if recorded.status == "complete" else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run suites against a runtime you started yourself (bring your own)")
    add_target_options(p)
    add_run_options(p)


def add_target_options(p: argparse.ArgumentParser, required: bool = True) -> None:
    """Where a bring-your-own run goes and how its requests are shaped (`run`, `quality run`, `agent run`)."""
    p.add_argument("--target-url", required=required, help="the runtime's base URL, e.g. http://127.0.0.1:11434")
    p.add_argument("--models", required=required, help="comma-separated model names as the runtime knows them")
    p.add_argument("--engine", choices=ENGINES, metavar="ENGINE", help="one of %(choices)s (default: detected from the server)")
    p.add_argument("--cell-id-prefix", help="<node>:<engine> (default: <device-tag>:<engine>)")
    p.add_argument("--hardware", help="a hardware.json (default: probe this machine)")
    p.add_argument("--temperature", type=TEMPERATURE, help="canonical 0.1; a change is recorded")
    p.add_argument("--num-ctx", type=CONTEXT, help="canonical 4096; a change is recorded")
    p.add_argument("--num-predict", type=COUNT, help="canonical 2048; a change is recorded")
