"""The agent phase on the real llama-server with SmolLM2: one small task at tight budgets through
`weeyuga agent run`. Asserts well-formed records and an outcome from the set, never a success
(a 135M model rarely solves anything). With CI=true nothing here skips."""

import sys

import pytest

from orchestrator.evaluate.agent.loop import OUTCOMES
from orchestrator.core.ledger import read_ledger
from orchestrator.core.paths import REPO_ROOT
from orchestrator.core.procs import run_captured
from tests.test_integration_llama import MODEL, llama_server, smollm2  # noqa: F401  (session fixtures)
from tests.test_integration_run import server  # noqa: F401  (SmolLM2 on llama-server, num_ctx 2048)

pytestmark = pytest.mark.integration


def test_smollm2_on_one_task_leaves_well_formed_records_and_an_outcome_from_the_set(server, tmp_path):
    args = ["agent", "run", "--target-url", server.base_url, "--models", MODEL, "--submissions-dir", str(tmp_path),
            "--submitter-handle", "ci", "--device-tag", "ci-box", "--force-load", "--tasks", "py-slugify",
            "--passes", "1", "--steps-per-pass", "3", "--max-tokens", "128", "--context-tokens", "1536",
            "--command-timeout", "60"]
    proc = run_captured([sys.executable, "-m", "orchestrator.cli", *args], timeout=600, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr  # the run worked, whatever the model did
    (ledger,) = tmp_path.glob("ci/ci-box/run-*/run.jsonl")
    records = read_ledger(ledger)  # every line checked against the run-record schema
    calls = [r for r in records if r["type"] == "call"]
    assert 1 <= len(calls) <= 3 and all(c["error"] is None for c in calls)
    assert [(c["phase"], c["prompt_id"], c["step"], c["attempt"]) for c in calls] == \
        [("agent", "py-slugify", step, 1) for step in range(1, len(calls) + 1)]
    passes = [r for r in records if r["type"] == "agent_pass"]
    (run,) = [r for r in records if r["type"] == "agent_run"]
    assert len(passes) == run["passes"] == 1 and run["outcome"] in OUTCOMES and run["reason"]
    assert run["model_calls"] == len(calls) and run["sandbox"] == "process" and run["net_isolated"] in (True, False)
