"""`probe`, `decide` and `rules`: the machine, its plan, and the rule tables."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from orchestrator.core.errors import BadInput
from orchestrator.cli.common import COUNT, add_knob_overrides, command, knob_overrides, load_or_probe, print_json
from orchestrator.core.runfolder import HARDWARE_NAME


@command("probe")
def cmd_probe(args: argparse.Namespace) -> int:
    from orchestrator.plan.probe import ProbeSources, probe, write_hardware

    hardware = probe(ProbeSources.real(measure_bandwidth=not args.no_bandwidth), device_tag=args.device_tag)
    if args.json:
        print(hardware.to_json(), end="")
        return 0
    print(write_hardware(hardware, Path(args.out)))
    return 0


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
    from orchestrator.plan.decide import decide
    from orchestrator.plan.profiles import load_profiles, with_model_file

    hw = load_or_probe(args.hardware, args.device_tag)
    profiles, overrides, _ = with_model_file(load_profiles(), knob_overrides(args), args.model_path)
    plan = decide(hw, profiles, overrides, use_tuned=not args.no_tuned)
    if args.out:
        from orchestrator.publish.manifest import write_json_atomic
        write_json_atomic(Path(args.out), plan.to_dict())
    if args.json:
        print_json(plan.to_dict())
    else:
        print(render_plan(plan))
    return 0


@command("rules")
def cmd_rules(args: argparse.Namespace) -> int:
    from orchestrator.plan.profiles import load_profiles
    from orchestrator.plan.rulecheck import check_rules

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
    from orchestrator.core.paths import submissions_root
    from orchestrator.publish.rulesuggest import render_suggestions, suggest_rules

    root = submissions_root(args.submissions_dir)
    if not root.is_dir():
        raise BadInput(f"{root}: no such submissions folder")
    result = suggest_rules(root, profiles, args.min_runs)
    print(json.dumps(result.to_dict(), indent=2) if args.json else render_suggestions(result).rstrip("\n"))
    for problem in result.unreadable:
        print(f"skipped: {problem}", file=sys.stderr)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="describe this machine as hardware.json")
    p.add_argument("--out", default=HARDWARE_NAME, help="where to write (default: ./hardware.json)")
    p.add_argument("--device-tag", help="override the derived tag ([a-z0-9-])")
    p.add_argument("--json", action="store_true", help="print the document instead of writing it")
    p.add_argument("--no-bandwidth", action="store_true", help="skip the 0.5 s host memory bandwidth test")

    p = sub.add_parser("decide", help="choose runtime, model and knobs for this (or a recorded) machine")
    p.add_argument("--hardware", help="a hardware.json (default: probe this machine)")
    p.add_argument("--device-tag")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", help="also write the plan JSON here")
    p.add_argument("--no-tuned", action="store_true", help="ignore profiles/local/<device-tag>.yaml")
    p.add_argument("--model-path", metavar="GGUF", help="plan for this local GGUF (its shape and size from its metadata)")
    add_knob_overrides(p)

    p = sub.add_parser("rules", help="maintain the rule tables")
    rules_sub = p.add_subparsers(dest="rules_command", required=True)
    check = rules_sub.add_parser("check", help="validate the tables and replay the golden machines")
    check.add_argument("--update", action="store_true", help="accept the current plans as the new goldens")
    suggest = rules_sub.add_parser("suggest", help="propose rule-table edits (model pins) from tuned runs in the catalogue")
    suggest.add_argument("--submissions-dir", help="the submissions folder (default: the repo's submissions/)")
    suggest.add_argument("--min-runs", type=COUNT, default=1, help="only suggest what at least this many runs measured")
    suggest.add_argument("--json", action="store_true")
