"""The submission rule for a pull request: it adds files of one new run folder under submissions/
and changes nothing else. Reads `git diff --name-status --no-renames` output (what the workflow
writes); what the PR may not do is a reason each."""

from __future__ import annotations

import re
from dataclasses import dataclass

RUN_FILE = re.compile(r"submissions/([a-z0-9][a-z0-9-]{0,38})/([a-z0-9][a-z0-9-]{0,47})/"
                      r"run-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/[^/]+")


@dataclass(frozen=True)
class PullRequestChanges:
    run_folders: tuple[str, ...]  # submissions/<handle>/<tag>/run-<id>, as the PR adds them
    violations: tuple[str, ...]  # one line each


def pull_request_changes(name_status: str) -> PullRequestChanges:
    folders: list[str] = []
    violations = []
    for line in name_status.splitlines():
        if not line.strip():
            continue
        status, _, path = line.partition("\t")
        if status != "A" or not RUN_FILE.fullmatch(path) or path.startswith("submissions/EXAMPLE/"):
            violations.append(f"the pull request changes {path or line!r} ({status or '?'}): a submission only adds "
                              "files of one new run folder under submissions/<handle>/<device-tag>/run-<id>/")
            continue
        folder = path.rsplit("/", 1)[0]
        if folder not in folders:
            folders.append(folder)
    if len(folders) > 1:
        violations.append(f"the pull request adds {len(folders)} run folders; a submission adds exactly one")
    if not folders and not violations:
        violations.append("the pull request adds no run folder")
    return PullRequestChanges(tuple(folders), tuple(violations))
