"""Stage 6c, submit: a reviewable branch with exactly one run folder, and the PR text.

Refuses a folder that is incomplete or fails the privacy scan. Creates
`submission/<handle>-<device-tag>-<date>` in the clone, stages only that run folder, commits
with the headline numbers, and prints the PR description and push command. Pushes only when
asked; nothing merges itself.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.publish.privacy import scan
from orchestrator.core.procs import run_captured
from orchestrator.publish.report import REQUIRED_FILES
from orchestrator.core.runfolder import MANIFEST_NAME, METADATA_NAME, check_regular_files, run_identity


@dataclass(frozen=True)
class Submission:
    branch: str
    run_path: str  # inside the clone
    commit_message: str
    pr_description: str
    push_command: list[str]
    pushed: bool


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = run_captured(["git", "-C", str(repo), *args])
    if check and result.returncode != 0:
        raise WeeyugaError(f"git {' '.join(args)} failed: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
    return result


def headline(metadata: dict) -> str:
    parts = []
    for row in metadata.get("cells", []):
        if row.get("tokens_per_sec_mean") is not None:
            parts.append(f"{row['cell_id'].rsplit(':', 1)[-1]} {row['phase']} {row['tokens_per_sec_mean']:.1f} tok/s")
    return "; ".join(parts[:4]) or "no successful calls"


def check_complete(run_dir: Path) -> tuple[dict, dict]:
    check_regular_files(run_dir)  # a link inside would commit whatever it points at
    missing = [name for name in REQUIRED_FILES if not (run_dir / name).exists()]
    if missing:
        raise BadInput(f"{run_dir} is missing {', '.join(missing)}; run `weeyuga report {run_dir}` first")
    manifest = datafiles.load(run_dir / MANIFEST_NAME, "manifest")
    metadata = datafiles.load(run_dir / METADATA_NAME, "metadata")
    findings = scan(run_dir)
    if findings:
        listed = "; ".join(str(f) for f in findings[:5])
        raise WeeyugaError(f"privacy scan found {len(findings)} item(s) ({listed}); "
                           f"fix them or run `weeyuga privacy-scan {run_dir} --redact`")
    return manifest, metadata


def pr_description(manifest: dict, metadata: dict, run_path: str) -> str:
    deviations = manifest.get("deviations") or []
    lines = [f"Benchmark run `{manifest['run_id']}` from **{manifest['submitter_handle']}** on `{manifest['device_tag']}`.", "",
             f"Headline: {headline(metadata)}.", "",
             f"Phases: {', '.join(manifest.get('phases_selected', []))}; status {manifest.get('status')}. "
             f"Summary: `{run_path}/run.md`.", "", "Deviations from the canonical settings (recorded by weeyuga):"]
    lines += [f"- {d['knob']} = {d['value']!r} instead of {d['replaced']!r} ({d['source']})" for d in deviations] or ["- none"]
    lines += ["", "Privacy: `weeyuga privacy-scan` found nothing in this folder (keys, tokens, home paths, private "
              "addresses, e-mail, host and user names), and I have reviewed run.jsonl myself."]
    return "\n".join(lines)


def _inside_clone(top: Path, relative: Path) -> Path:
    """top/relative, refused when any folder on the way is a symbolic link (a planted
    `submissions/<handle>` link would carry the copy outside the clone before git could refuse it)."""
    path = top
    for part in relative.parts:
        path = path / part
        if path.is_symlink():
            raise BadInput(f"{path}: is a symbolic link in the clone; refusing to copy the run through it")
    if not path.resolve().is_relative_to(top.resolve()):
        raise BadInput(f"{path}: resolves outside the clone at {top}")
    return path


def _current_branch(repo: Path) -> str:
    """The branch checked out (or the commit, on a detached HEAD), to return to on a failure."""
    named = _git(repo, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return named.stdout.strip() if named.returncode == 0 else _git(repo, "rev-parse", "HEAD").stdout.strip()


def submit(run_dir: Path, repo: Path, push: bool = False, remote: str | None = None) -> Submission:
    run_dir = run_dir.resolve()
    manifest, metadata = check_complete(run_dir)
    # These become the path inside the clone: validated as strictly as on the command line.
    identity = run_identity(manifest, str(run_dir / MANIFEST_NAME))
    handle, tag, run_id = identity.submitter_handle, identity.device_tag, identity.run_id
    if _git(repo, "rev-parse", "--show-toplevel", check=False).returncode != 0:
        raise BadInput(f"{repo} is not a git clone of the benchmarks repository")
    top = Path(_git(repo, "rev-parse", "--show-toplevel").stdout.strip())
    relative = Path("submissions") / handle / tag / f"run-{run_id}"
    target = _inside_clone(top, relative)
    copy = run_dir != target.resolve()
    if copy and target.exists():
        raise BadInput(f"{target} already exists in the clone")
    if _git(repo, "diff", "--cached", "--name-only").stdout.strip():
        raise WeeyugaError(f"the clone at {top} already has staged changes; commit or unstage them first")
    date = (manifest.get("started_at_utc") or "")[:10]
    branch = f"submission/{handle}-{tag}-{date}"
    if _git(repo, "rev-parse", "--verify", "--quiet", branch, check=False).returncode == 0:
        raise BadInput(f"branch {branch} already exists in the clone")
    message = (f"submit: {handle} / {tag} / {date}: {', '.join(manifest.get('phases_selected', []))}\n\n"
               f"Headline: {headline(metadata)}.\nRun {run_id}, status {manifest.get('status')}, "
               f"{len(manifest.get('deviations') or [])} recorded deviation(s).")
    original = _current_branch(repo)
    branched = False
    try:
        if copy:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(run_dir, target)
        _git(repo, "checkout", "-q", "-b", branch)
        branched = True
        _git(repo, "add", "--", str(relative))
        staged = _git(repo, "diff", "--cached", "--name-only").stdout.split()
        outside = [p for p in staged if not p.startswith(str(relative) + "/")]
        if outside or not staged:
            raise WeeyugaError(f"refusing to commit files outside {relative}: {', '.join(outside[:5])}")
        _git(repo, "commit", "-q", "-m", message)
    except BaseException:
        _roll_back(repo, relative, original, branch if branched else None, target if copy else None)
        raise
    remotes = _git(repo, "remote").stdout.split()
    remote = remote or ("fork" if "fork" in remotes else "origin")
    push_command = ["git", "-C", str(top), "push", remote, branch]
    if push:
        if remote not in remotes:
            raise WeeyugaError(f"no git remote {remote!r} in {top}; add your fork: git remote add fork <url>")
        _git(repo, "push", remote, branch)
    return Submission(branch, str(relative), message, pr_description(manifest, metadata, str(relative)),
                      push_command, push)


def _roll_back(repo: Path, relative: Path, original: str, branch: str | None, copied: Path | None) -> None:
    """Leave the clone as submit found it: nothing staged, the original branch out, no new branch,
    no copied folder, so that the same command can be run again."""
    _git(repo, "reset", "-q", "--", str(relative), check=False)
    if branch is not None:
        _git(repo, "checkout", "-q", original, check=False)
        _git(repo, "branch", "-q", "-D", branch, check=False)
    if copied is not None:
        shutil.rmtree(copied, ignore_errors=True)
