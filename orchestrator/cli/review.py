"""`review` and `review-pr`: is a contributed run folder what weeyuga wrote? (publish/review)"""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.core.errors import BadInput, read_failure
from orchestrator.cli.common import command, print_json
from orchestrator.publish.review import ReviewResult, pull_request_changes, review


def _render(result: ReviewResult) -> None:
    verdict = "ACCEPTED" if result.accepted else "REJECTED"
    print(f"{verdict}: {result.run_dir} ({len(result.rejections)} reasons to reject, {len(result.warnings)} warnings)")
    for finding in result.rejections:
        print(f"  reject  {finding}")
    for finding in result.warnings:
        print(f"  warning {finding}")


def _submissions(args: argparse.Namespace) -> Path | None:
    if args.submissions_dir is None:
        return None
    folder = Path(args.submissions_dir)
    if not folder.is_dir():
        raise BadInput(f"{args.submissions_dir}: no such submissions folder")
    return folder


@command("review")
def cmd_review(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir() and not run_dir.is_symlink():
        raise BadInput(f"{args.run_dir}: no such run folder")
    result = review(run_dir, _submissions(args))
    print_json(result.to_json()) if args.json else _render(result)
    return 0 if result.accepted else 1


@command("review-pr")
def cmd_review_pr(args: argparse.Namespace) -> int:
    path = Path(args.changes)
    try:
        changes = pull_request_changes(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise read_failure(path, exc) from None
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text") from None
    submissions = _submissions(args)
    results = [review(Path(args.root) / folder, submissions) for folder in changes.run_folders]
    if args.json:
        print_json({"violations": list(changes.violations), "runs": [r.to_json() for r in results]})
    else:
        for violation in changes.violations:
            print(f"REJECTED: {violation}")
        for result in results:
            _render(result)
    return 0 if not changes.violations and all(r.accepted for r in results) else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("review", help="check a contributed run folder against its own evidence and physics "
                                      "(exit 0 accepts, 1 rejects)")
    p.add_argument("run_dir")
    p.add_argument("--json", action="store_true")
    p.add_argument("--submissions-dir", help="also reject a run already catalogued there under another id")

    p = sub.add_parser("review-pr", help="a submission pull request: only new run folders, each reviewed")
    p.add_argument("changes", help="`git diff --name-status --no-renames BASE...HEAD` output, in a file")
    p.add_argument("--root", default=".", help="the checkout the paths are relative to (default: here)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--submissions-dir", help="the catalogue to check for duplicates (default: none)")
