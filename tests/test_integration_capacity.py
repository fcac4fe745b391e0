"""The capacity and endurance phases on the real llama-server with SmolLM2, through `weeyuga auto --phases
hello,capacity,endurance` with two slots, 16-token answers and a six-second endurance phase: the printed
capacity sentence, the capacity and endurance lines, run.md's sections and plots, and the thermal
readings this machine exposes. With CI=true nothing here skips."""

import json
import sys

import pytest

from orchestrator.core.ledger import read_ledger
from orchestrator.core.paths import REPO_ROOT
from orchestrator.core.procs import run_captured
from tests.test_integration_llama import MODEL, llama_server, smollm2  # noqa: F401  (session fixtures)

pytestmark = pytest.mark.integration


def test_auto_measures_capacity_and_endurance_and_prints_the_sentence(llama_server, smollm2, tmp_path):  # noqa: F811
    args = ["auto", "--yes", "--phases", "hello,capacity,endurance", "--smoke", "--model", MODEL, "--num-ctx", "2048",
            "--num-predict", "16", "--threads", "2", "--num-parallel", "2", "--endurance-minutes", "0.1",
            "--submitter-handle", "ci", "--device-tag", "ci-box", "--submissions-dir", str(tmp_path), "--force-load"]
    proc = run_captured([sys.executable, "-m", "orchestrator.cli", *args], timeout=600, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (sentence,) = [line for line in proc.stdout.splitlines() if line.startswith("capacity: ")]
    assert f"ci-box:llamacpp:{MODEL}: " in sentence and ("serves " in sentence or "meets the SLO" in sentence)
    (ledger,) = tmp_path.glob("ci/ci-box/run-*/run.jsonl")
    run_dir = ledger.parent
    records = read_ledger(ledger)  # schema-checked
    calls = [r for r in records if r["type"] == "call" and r["phase"] in ("capacity", "endurance")]
    assert all(c["error"] is None and c["server_tokens_per_sec"] and c["server_prompt_ms"] is not None for c in calls)
    levels = [r for r in records if r["type"] == "capacity"]
    assert [(r["level"], r["calls"], r["errors"]) for r in levels] == [("users-1", 1, 0), ("users-2", 2, 0), ("rate-50", 2, 0)]
    assert levels[1]["aggregate_tokens_per_sec"] > 0 and levels[2]["arrival_rate_per_s"] > 0
    (bucket,) = [r for r in records if r["type"] == "endurance"]
    assert bucket["users"] == 2 and bucket["calls"] >= 2 and bucket["decode_tokens_per_sec_p50"] > 0
    print(f"\nthermal readings this machine exposes: {bucket['sensors'] or 'none'}; throttling: {bucket['throttling']}")
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["capacity"]["serving"][0]["sentence"] in sentence
    assert metadata["thermal"]["sensors"] == bucket["sensors"]
    markdown = (run_dir / "run.md").read_text()
    assert "## Capacity: how many users, at what latency" in markdown and "![capacity](capacity.png)" in markdown
    assert "## Endurance: sustained load and thermal evidence" in markdown and "decode rate drift" in markdown
    assert (run_dir / "capacity.png").exists()
