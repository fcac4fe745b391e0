"""`tune`: measured launches for the fastest knobs that fit."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.cli.common import CONTEXT, COUNT, MANAGED_RUNTIMES, SLOTS, LazyChoices, bounded, command, load_or_probe
from orchestrator.cli.runtime import prepare_runtime
from orchestrator.core.errors import BadInput

KLD_BUDGET = bounded(float, 1e-6, 10.0)
RATE = bounded(float, 0.001, 1e9)


@command("tune")
def cmd_tune(args: argparse.Namespace) -> int:
    from orchestrator.plan.decide import decide
    from orchestrator.runtime.launch import install_signal_handlers
    from orchestrator.core.paths import state_dir
    from orchestrator.plan.profiles import load_profiles, with_model_file
    from orchestrator.core.progress import progress_reporter
    from orchestrator.plan.probe import load_nvml
    from orchestrator.plan.runtimes import load_runtime
    from orchestrator.flows.tune import (parse_quants, render_markdown, render_quants, report_json, tune_on_this_machine,
                                         tune_quants_on_this_machine, write_quant_report, write_report_files, write_tuned_profile)

    install_signal_handlers()
    quants = parse_quants(args.quants) if args.quants else None
    if args.speed_target is not None and not quants:
        raise BadInput("--speed-target chooses among --quants; give --quants too")
    axes = None if args.axes is None else [a for a in args.axes.split(",") if a and a != "none"]
    known = load_runtime(args.runtime).tune_axes
    if axes and (unknown := sorted(set(axes) - set(known))):
        raise BadInput(f"--axes: {', '.join(unknown)} is not an axis of {args.runtime} "
                       f"(runtimes/{args.runtime}.yaml tune_axes: {', '.join(known) or 'none'})")
    hardware = load_or_probe(args.hardware, args.device_tag)
    profiles = load_profiles()
    if not (args.model or args.model_path):
        raise BadInput("tune: give --model ID (a catalogue model) or --model-path GGUF (a local one)")
    overrides = {name: value for name, value in (("model", args.model), ("runtime", args.runtime), ("num_ctx", args.ctx),
                                                 ("num_parallel", args.parallel)) if value is not None}
    profiles, overrides, _ = with_model_file(profiles, overrides, args.model_path)
    plan = decide(hardware, profiles, overrides, use_tuned=False)
    prepared = prepare_runtime(plan, args.model_path, profiles)
    runtime = prepared.install
    out_dir = Path(args.out) if args.out else state_dir() / "tune"
    out_dir.mkdir(parents=True, exist_ok=True)
    if quants:
        if not prepared.model_path:
            raise BadInput(f"--quants makes quants from a GGUF file; {plan.runtime} keeps its own models")
        with progress_reporter() as progress:
            chosen = tune_quants_on_this_machine(plan, runtime, prepared.model_path, out_dir, quants, args.objective,
                                                 args.max_kld, args.speed_target, load_nvml(), progress)
        stem = write_quant_report(chosen, out_dir, plan.device_tag)
        print(report_json(chosen) if args.json else render_quants(chosen) + f"report: {stem}.json, {stem}.md")
        return 0 if chosen.chosen else 1
    with progress_reporter() as progress:
        result = tune_on_this_machine(plan, hardware, profiles, runtime.binary, prepared.model_path,
                                      runtime.fit_params_binary if prepared.model_path else None, out_dir, load_nvml(), progress,
                                      args.exhaustive, args.max_launches, args.parallel,
                                      variant_args=runtime.variant_args, objective=args.objective, axes=axes,
                                      max_kld=args.max_kld, install=runtime)
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
    p = sub.add_parser("tune", help="measure launches to find the fastest NGL (GPU) or threads (CPU) that fit, then the launch "
                                       "knobs (flash attention, batch sizes, KV type within a KLD budget ...), or the quant")
    p.add_argument("--model", help="catalogue model id")
    p.add_argument("--model-path", help="use this local GGUF for --model instead of the cache; alone, a local model "
                   "planned from its own metadata")
    p.add_argument("--runtime", choices=MANAGED_RUNTIMES, metavar="RUNTIME", default="llama.cpp",
                   help="one of %(choices)s; ollama: one server, each candidate reloads the model with its num_gpu / num_thread")
    p.add_argument("--ctx", type=CONTEXT, help="context per slot to tune for (default: the plan's)")
    p.add_argument("--parallel", type=SLOTS, metavar="N",
                   help="also tune slots: 1, 2, 4 .. N concurrent streams (NGL is searched with N slots' KV cache)")
    p.add_argument("--max-launches", type=COUNT, help="stop measuring after this many launches")
    p.add_argument("--exhaustive", action="store_true",
                   help="measure every value, and the grid of the launch-knob axes (for comparison; writes no profile)")
    p.add_argument("--objective", choices=LazyChoices("orchestrator.flows.tune.axes", "OBJECTIVES"), default="decode",
                   metavar="OBJECTIVE",
                   help="what the launch-knob search maximises: decode tok/s, prefill tok/s, or their geometric mean")
    p.add_argument("--axes", metavar="LIST",
                   help="launch-knob axes to search, comma-separated (default: all of the runtime's tune_axes; 'none': none)")
    p.add_argument("--max-kld", type=KLD_BUDGET, metavar="X",
                   help="loss budget (mean KLD, nats) for a lossy KV type, or with --quants for a quant "
                        "(default: runtimes/llama.cpp.yaml tune_quality)")
    p.add_argument("--quants", metavar="LIST",
                   help="choose the quant instead: make each (e.g. Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q3_K_M,Q2_K) from the F16 "
                        "source, measure its KLD and speed, pick the fastest within --max-kld")
    p.add_argument("--speed-target", type=RATE, metavar="TOK/S",
                   help="with --quants: the most accurate quant reaching this rate instead")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-write", action="store_true", help="do not write profiles/local/<device-tag>.yaml")
    p.add_argument("--out", help="folder for the tune report (default: the state dir)")
    p.add_argument("--hardware")
    p.add_argument("--device-tag")
