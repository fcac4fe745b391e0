"""The depth phase and the decode roofline on the real llama-server with SmolLM2, through
`weeyuga auto --phases hello,depth` at num_ctx 2048 and 16-token answers: its call lines, run.md's
depth table and the roofline fraction from the GGUF's tensor table. With CI=true nothing here skips."""

import json
import sys

import pytest

from orchestrator.core.ledger import read_ledger
from orchestrator.core.paths import REPO_ROOT
from orchestrator.core.procs import run_captured
from tests.test_integration_llama import MODEL, llama_server, smollm2  # noqa: F401  (session fixtures)

pytestmark = pytest.mark.integration


def test_auto_runs_the_depth_phase_and_reports_its_table_and_the_roofline(llama_server, smollm2, tmp_path):  # noqa: F811
    args = ["auto", "--yes", "--phases", "hello,depth", "--model", MODEL, "--num-ctx", "2048", "--num-predict", "16",
            "--threads", "2", "--runs", "1", "--submitter-handle", "ci", "--device-tag", "ci-box",
            "--submissions-dir", str(tmp_path), "--force-load"]
    proc = run_captured([sys.executable, "-m", "orchestrator.cli", *args], timeout=900, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "privacy scan: clean" in proc.stdout
    (ledger,) = tmp_path.glob("ci/ci-box/run-*/run.jsonl")
    run_dir = ledger.parent
    calls = [r for r in read_ledger(ledger) if r["type"] == "call" and r["phase"] == "depth"]  # schema-checked
    assert [(c["prompt_id"], c["run_idx"]) for c in calls] == [
        ("depth-0", 0), ("depth-0", 1), ("depth-calibration", 0), ("depth-1024", 0), ("depth-1024", 1),
        ("depth-1792", 0), ("depth-1792", 1)]
    for c in calls:
        assert c["error"] is None and c["load_state"] == "warm" and not c["tokens_estimated"]
        assert c["server_prompt_ms"] and c["server_tokens_per_sec"] and c["rate_disagreement"] is not None
        depth = int(c["prompt_id"].rsplit("-", 1)[1]) if c["prompt_id"][-1].isdigit() else None
        if depth:  # calibrated on SmolLM2's own tokenizer, through the runtime's token counts
            assert c["prompt_tokens"] == pytest.approx(depth, rel=0.05)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    facts = manifest["models"][0]["roofline"]
    assert facts["n_layer"] == 30 and facts["kv_elements_per_token"] == [3 * (64 + 64)] * 30
    hardware = json.loads((run_dir / "hardware.json").read_text())
    test = hardware["host_memory_bandwidth_test"]
    assert test["gbps_min"] <= hardware["host_memory_bandwidth_gbps_measured"] <= test["gbps_max"]
    metadata = json.loads((run_dir / "metadata.json").read_text())
    rows = metadata["depth"]
    assert [r["depth"] for r in rows] == [0, 1024, 1792]
    assert all(r["prefill_tokens_per_sec_p50"] and r["decode_tokens_per_sec_p50"] for r in rows)
    assert all(0 < r["roofline_fraction_p50"] < 2 for r in rows)  # a fraction, whatever else the machine runs
    roofline = {e["phase"]: e for e in metadata["memory_bandwidth_utilisation"]}
    assert set(roofline) == {"hello", "depth"} and roofline["depth"]["bandwidth_kind"] == "measured (host read test)"
    assert roofline["depth"]["context_tokens_p50"] > roofline["hello"]["context_tokens_p50"]
    markdown = (run_dir / "run.md").read_text()
    assert "## Speed at context depth" in markdown and "### Decode vs the memory-bandwidth roofline" in markdown
    assert sum(line.startswith(f"| ci-box:llamacpp:{MODEL} | 1,792 |") for line in markdown.splitlines()) == 1
    assert (run_dir / "depth.png").exists()
