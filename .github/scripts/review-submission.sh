#!/usr/bin/env bash
# The review a submission pull request gets (.github/workflows/review-submission.yml runs this; so does
# tests/test_review_workflow.py). Run from the pull request's checkout:
#   review-submission.sh BASE_SHA BASE_DIR
# BASE_DIR is a checkout of BASE_SHA, the target branch: its weeyuga does the reviewing, never the
# pull request's own code, and its submissions/ is the catalogue a duplicate is looked for in.
set -euo pipefail
base_sha="$1"
base_dir="$(cd "$2" && pwd)"
pr_dir="$(pwd)"
changes="$(mktemp)"
trap 'rm -f "$changes"' EXIT
git diff --name-status --no-renames "$base_sha...HEAD" > "$changes"
cd "$base_dir"
python3 -m orchestrator.cli review-pr "$changes" --root "$pr_dir" --submissions-dir "$base_dir/submissions"
