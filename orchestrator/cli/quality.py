"""`quality run|rescore|inspect`: the quality packs against a runtime you started, and on run folders."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from orchestrator.core.errors import BadInput
from orchestrator.cli.common import COUNT, RUNS, add_folder_options, command
from orchestrator.cli.run import add_target_options, run_bring_your_own
from orchestrator.cli.sandbox import add_sandbox_option, sandbox_record

QUALITY_MODES = ("quick", "medium", "full")


def quality_settings(mode: str, packs: str | None, repeat: int) -> dict[str, Any]:
    """The run's quality options (recorded in the meta line's options)."""
    from orchestrator.evaluate.quality.packs import pack_ids

    return {"mode": mode, "packs": list(pack_ids(packs, mode)) if packs else None, "repeat": repeat}


@command("quality")
def cmd_quality(args: argparse.Namespace) -> int:
    return {"run": quality_run, "rescore": quality_rescore, "inspect": quality_inspect}[args.quality_command](args)


def quality_run(args: argparse.Namespace) -> int:
    from orchestrator.evaluate.quality.packs import load_packs, pack_ids
    from orchestrator.evaluate.quality.runner import negative_control

    if args.negative_control:
        control = negative_control(load_packs(pack_ids(args.packs, args.mode)))
        for pack, scenario, kind in control.passes:
            print(f"DEFECT {pack} {scenario} passes on junk answer {kind!r}")
        print(f"negative control: {control.checked} junk answers judged, {len(control.passes)} passed (must be 0)")
        return 1 if control.passes else 0
    if not (args.target_url and args.models):  # a resume too: the runtime to continue against
        raise BadInput("quality run needs --target-url and --models (or --negative-control, which needs no endpoint)")
    return run_bring_your_own(args, "quality run", ["quality"], quality=quality_settings(args.mode, args.packs, args.repeat),
                              sandbox=sandbox_record(args))


def quality_rescore(args: argparse.Namespace) -> int:
    from orchestrator.evaluate.quality.rundir import rescore_run

    result = rescore_run(Path(args.run_dir))
    for line in result.skipped:
        print(f"skipped {line}")
    print(f"rescored {len(result.records)} call(s), {result.changed} verdict(s) changed; appended to {args.run_dir}/run.jsonl")
    return 0


def quality_inspect(args: argparse.Namespace) -> int:
    from orchestrator.evaluate.quality.packs import PACK_ORDER, load_packs
    from orchestrator.evaluate.quality.rundir import inspect_run

    rows = inspect_run(Path(args.run_dir), failed=args.failed, scenario=args.scenario, mode=args.mode,
                       diff=Path(args.diff) if args.diff else None)
    packs = {p.id: p for p in load_packs(PACK_ORDER)}
    for row in rows:
        r = row.record
        scenario = packs[r["pack"]].scenario(r["scenario"]) if r["pack"] in packs else None
        prompt = scenario.messages[-1]["content"] if scenario else "(pack not loaded)"
        message = row.message or {}
        answer = message.get("content") or ""
        calls = [f"{c['function']['name']}({c['function'].get('arguments', '')})" for c in message.get("tool_calls") or []]
        print(f"== {r['pack']} {r['scenario']} #{r['repeat_idx']}: {'PASS' if r['passed'] else 'FAIL'} "
              f"{r['failure_mode']} ({r['detail']})")
        if row.other is not None or args.diff:
            other = row.other
            print(f"   other run: {'(absent)' if other is None else ('PASS' if other['passed'] else 'FAIL') + ' ' + other['failure_mode']}")
        print(f"   prompt: {prompt}")
        print(f"   answer: {json.dumps(answer)[:2000]}" + (f"\n   tool calls: {'; '.join(calls)}" if calls else ""))
    print(f"{len(rows)} call(s)", file=sys.stderr)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("quality", help="quality packs: run them, rescore saved answers, inspect verdicts")
    quality = group.add_subparsers(dest="quality_command", required=True, metavar="SUBCOMMAND")
    p = quality.add_parser("run", help="run quality packs against a runtime you started (or --negative-control)")
    p.add_argument("--mode", choices=QUALITY_MODES, default="quick",
                   help="quick: toolcall+instruct, written scenarios (31); medium: 5 packs, 45 generated more each "
                        "(~300); full: all 6, 200 generated more each (~1290)")
    p.add_argument("--packs", help="comma-separated pack ids (instead of --mode's)")
    p.add_argument("--repeat", type=COUNT, default=1, help="run each scenario N times (mean, std, CV per pack)")
    p.add_argument("--negative-control", action="store_true",
                   help="answer every scenario with junk, no endpoint; exit 1 if any passes")
    add_sandbox_option(p, "process")
    add_target_options(p, required=False)
    add_folder_options(p)
    p.set_defaults(runs=RUNS, smoke=False, probe=False)
    p = quality.add_parser("rescore", help="re-run today's verifiers on a run's saved answers (appends quality_rescore)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p = quality.add_parser("inspect", help="prompts, answers and verdicts of a run's scenario calls")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--failed", action="store_true", help="only failed calls")
    p.add_argument("--scenario", help="only this scenario id, e.g. TC-03")
    p.add_argument("--mode", help="only this failure mode, e.g. invalid_json")
    p.add_argument("--diff", metavar="OTHER_RUN", help="only calls whose verdict differs in this other run folder")
