"""`weeyuga review` on a genuine `weeyuga auto` run folder: the real llama-server with SmolLM2
(hello and 5q, 32-token answers). Review accepts it; the same folder with its durations rescaled
consistently (rates multiplied, the chain sealed again, the report regenerated) decodes faster than
the memory can feed the model and is rejected. With CI=true nothing here skips."""

import json
import shutil
import sys

import pytest

from orchestrator.core.ledger import read_records, seal
from orchestrator.core.paths import REPO_ROOT
from orchestrator.core.procs import run_captured
from orchestrator.publish.report import report
from orchestrator.publish.review import review
from tests.test_integration_llama import MODEL, llama_server, smollm2  # noqa: F401  (session fixtures)

pytestmark = pytest.mark.integration
TIMES = ("first_delta_ms", "ttfb_ms", "first_answer_ms", "total_duration_ms", "server_prompt_ms", "wall_ms")
RATES = ("tokens_per_sec", "server_tokens_per_sec", "tokens_per_sec_after_first", "prefill_tokens_per_sec",
         "aggregate_tokens_per_sec")


@pytest.fixture(scope="module")
def auto_run(llama_server, smollm2, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("subs")
    args = ["auto", "--yes", "--phases", "hello,5q", "--model", MODEL, "--num-ctx", "2048", "--num-predict", "32",
            "--threads", "2", "--runs", "1", "--submitter-handle", "ci", "--device-tag", "ci-box",
            "--submissions-dir", str(root), "--force-load"]
    proc = run_captured([sys.executable, "-m", "orchestrator.cli", *args], timeout=900, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (ledger,) = root.glob("ci/ci-box/run-*/run.jsonl")
    return ledger.parent


def test_review_accepts_a_genuine_auto_run(auto_run):
    result = review(auto_run)
    assert result.accepted, "\n".join(map(str, result.rejections))
    manifest = json.loads((auto_run / "manifest.json").read_text())
    assert manifest["models"][0]["roofline"]  # so the physics check ran on real GGUF facts
    assert not any("roofline not checked" in str(w) for w in result.warnings)
    print("\n".join(map(str, result.warnings)))


def test_review_rejects_the_same_run_rescaled_consistently(auto_run, tmp_path):
    """Times divided and rates multiplied by whatever puts decode at twice the roofline (the client's rate
    recomputed from the new times, as weeyuga would), the chain sealed again and the report regenerated."""
    run_dir = tmp_path / "ci" / "ci-box" / auto_run.name
    shutil.copytree(auto_run, run_dir)
    utilisation = min(e["utilisation"] for e in json.loads((run_dir / "metadata.json").read_text())
                      ["memory_bandwidth_utilisation"])
    factor = 2 / utilisation
    records = list(read_records(run_dir / "run.jsonl"))
    for record in records:
        for name in TIMES:
            if record.get(name) is not None:
                record[name] = round(record[name] / factor, 1)
        for name in RATES:
            if record.get(name) is not None:
                record[name] = round(record[name] * factor, 2)
        if record.get("type") == "call" and record.get("tokens_per_sec"):
            decode_s = (record["total_duration_ms"] - record["first_delta_ms"]) / 1000
            record["tokens_per_sec"] = round(record["completion_tokens"] / decode_s, 2)
    (run_dir / "run.jsonl").write_bytes(seal(records))
    report(run_dir)
    result = review(run_dir)
    assert not result.accepted and any("memory-bandwidth roofline" in str(f) for f in result.rejections), \
        "\n".join(map(str, result.findings))
