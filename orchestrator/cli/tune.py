"""`tune`: measured launches for the fastest knobs that fit."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.cli.common import CONTEXT, COUNT, MANAGED_RUNTIMES, SLOTS, command, load_or_probe
from orchestrator.cli.runtime import prepare_runtime


@command("tune")
def cmd_tune(args: argparse.Namespace) -> int:
    from orchestrator.plan.decide import decide
    from orchestrator.runtime.launch import install_signal_handlers
    from orchestrator.core.paths import state_dir
    from orchestrator.plan.profiles import load_profiles, with_model_file
    from orchestrator.core.errors import BadInput
    from orchestrator.core.progress import progress_reporter
    from orchestrator.plan.probe import load_nvml
    from orchestrator.flows.tune import render_markdown, report_json, tune_on_this_machine, write_report_files, write_tuned_profile

    install_signal_handlers()
    hardware = load_or_probe(args.hardware, args.device_tag)
    profiles = load_profiles()
    if not (args.model or args.model_path):
        raise BadInput("tune: give --model ID (a catalogue model) or --model-path GGUF (a local one)")
    overrides = {name: value for name, value in (("model", args.model), ("runtime", args.runtime), ("num_ctx", args.ctx),
                                                 ("num_parallel", args.parallel)) if value is not None}
    profiles, overrides, _ = with_model_file(profiles, overrides, args.model_path)
    plan = decide(hardware, profiles, overrides, use_tuned=False)
    prepared = prepare_runtime(plan, args.model_path)
    runtime = prepared.install
    out_dir = Path(args.out) if args.out else state_dir() / "tune"
    out_dir.mkdir(parents=True, exist_ok=True)
    with progress_reporter() as progress:
        result = tune_on_this_machine(plan, hardware, profiles, runtime.binary, prepared.model_path,
                                      runtime.fit_params_binary if prepared.model_path else None, out_dir, load_nvml(), progress,
                                      args.exhaustive, args.max_launches, args.parallel,
                                      variant_args=runtime.variant_args)
    stem = write_report_files(result, out_dir)
    written = None if args.no_write or args.exhaustive or not result.recommended else write_tuned_profile(result)
    if args.json:
        print(report_json(result))
    else:
        print(render_markdown(result))
        print(f"report: {stem}.json, {stem}.md, {stem}.png")
        if written:
            print(f"tuned profile: {written} (decide and auto now use it, recorded as 'tuned' deviations)")
    return 0 if result.recommended else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="measure launches to find the fastest NGL (GPU) or threads (CPU) that fit")
    p.add_argument("--model", help="catalogue model id")
    p.add_argument("--model-path", help="use this local GGUF for --model instead of the cache; alone, a local model "
                   "planned from its own metadata")
    p.add_argument("--runtime", choices=MANAGED_RUNTIMES, metavar="RUNTIME", default="llama.cpp",
                   help="one of %(choices)s; ollama: one server, each candidate reloads the model with its num_gpu / num_thread")
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
