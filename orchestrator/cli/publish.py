"""`report`, `privacy-scan`, `submit`, `catalogue` and `compare`: a finished run, shared."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.core.errors import BadInput
from orchestrator.cli.common import command, print_json


def existing_dir(path: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise BadInput(f"{path}: no such run folder")
    return folder


@command("report")
def cmd_report(args: argparse.Namespace) -> int:
    from orchestrator.publish.report import report

    run_dir = existing_dir(args.run_dir)
    result = report(run_dir, plots=not args.no_plots, html=args.html)
    print(f"{run_dir / 'metadata.json'}\n{run_dir / 'run.md'}" + "".join(f"\n{run_dir / p}" for p in result.plots)
          + (f"\n{result.page}" if result.page else ""))
    return 0


@command("privacy-scan")
def cmd_privacy(args: argparse.Namespace) -> int:
    from orchestrator.publish.privacy import redact, scan

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
    from orchestrator.core.paths import REPO_ROOT
    from orchestrator.publish.submit import submit

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
    from orchestrator.publish.catalogue import update_catalogue
    from orchestrator.publish.catalogue.export import query, render_table
    from orchestrator.publish.leaderboard import write_leaderboard
    from orchestrator.core.paths import submissions_root
    from orchestrator.core.procs import install_signal_handlers

    install_signal_handlers()  # SIGTERM unwinds like Ctrl-C: one line, and no staging file left behind
    root = submissions_root(args.submissions_dir)
    result = update_catalogue(root, Path(args.out), Path(args.export) if args.export else None, rescan=args.rescan)
    if args.query is not None:
        print(render_table(query(result.export_dir, args.query, args.exclude_contended)), end="")
        return 0
    counts = result.counts
    print(f"{result.out}: {counts['runs']} runs ({counts['complete']} complete, {counts['partial']} partial), {counts['invalid']} invalid, "
          f"{counts['outliers']} outlier cell(s) marked; {result.reread} read, {result.unchanged} unchanged, {result.dropped} dropped; "
          f"export {result.export_dir} ({result.files_written} file(s) written)")
    for bad in result.invalid:
        print(f"  invalid {bad['path']}: {bad['reason']}")
    if counts["invalid"] > len(result.invalid):
        print(f"  ... and {counts['invalid'] - len(result.invalid)} more invalid runs "
              "(profiles/catalogue.yaml invalid_listed sets how many are listed)")
    if args.html:
        page = write_leaderboard(result.index_file, root, Path(args.html), args.exclude_contended)
        print(f"leaderboard: {page.index} ({page.rows} rows)")
    return 0


@command("compare")
def cmd_compare(args: argparse.Namespace) -> int:
    from orchestrator.publish.compare import compare, load_metadata, render_markdown
    from orchestrator.evaluate.quality.rundir import compare_quality

    if len(args.runs) < 2:
        raise BadInput("compare needs BASELINE [BASELINE ...] CANDIDATE: at least two runs")
    *baselines, candidate = [load_metadata(Path(p)) for p in args.runs]
    result = compare(baselines, candidate)
    result.quality, result.quality_note = compare_quality([Path(p) for p in args.runs[:-1]], Path(args.runs[-1]))
    if args.json:
        print_json(result.to_dict())
    else:
        print(render_markdown(result), end="")
    return 1 if args.exit_on_regression and (result.regressions or result.red_flags or result.quality_regressions) else 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="metadata.json, run.md and plots for a run folder")
    p.add_argument("run_dir")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--html", action="store_true", help="also write run.html: the same report as one self-contained page")

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
    p.add_argument("--rescan", action="store_true",
                   help="list every run folder and stat its files, not only changed device folders: finds a file changed "
                        "inside an existing run folder, edited in place too")
    p.add_argument("--exclude-contended", action="store_true",
                   help="leave rows of phases other processes contended out of --query and --html")

    p = sub.add_parser("compare", help="regressions and wins between runs (methodology thresholds)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="BASELINE [BASELINE ...] CANDIDATE: run folders or metadata.json")
    p.add_argument("--json", action="store_true")
    p.add_argument("--exit-on-regression", action="store_true", help="exit 1 on a regression or red flag (speed or quality)")
