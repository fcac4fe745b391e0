"""The runner on the real llama-server with SmolLM2: hello + 5q, agreement with the server's own
timings, and a resume after the runner is SIGKILLed mid-suite. With CI=true nothing here skips."""

import os
import signal
import statistics
import subprocess
import time

import pytest

from orchestrator.plan.decide import decide
from orchestrator.runtime.launch import launch
from orchestrator.core.ledger import call_key, read_records
from orchestrator.core.paths import REPO_ROOT
from orchestrator.plan.probe import Hardware
from orchestrator.plan.profiles import load_profiles
from orchestrator.plan.rulecheck import GOLDEN_DIR
from tests.children import weeyuga_argv
from tests.test_integration_llama import MODEL, llama_server, smollm2  # noqa: F401  (session fixtures)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(llama_server, smollm2, tmp_path_factory):  # noqa: F811
    hw = Hardware.load(GOLDEN_DIR / "linux-vps-cpu-4c-8gb.json")
    plan = decide(hw, load_profiles(), {"model": MODEL, "threads": min(2, os.cpu_count() or 1), "num_ctx": 2048})
    with launch(plan, llama_server.binary, smollm2.path, tmp_path_factory.mktemp("log") / "llama.log",
                variant_args=llama_server.variant_args) as running:
        yield running


def weeyuga(spawn, *args, **kw):
    """`weeyuga ARGS` as a child the test's `spawn` stops however the test ends (tests/children.py)."""
    return spawn(weeyuga_argv(*args), cwd=REPO_ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def run_args(server, subs, *extra):
    return ["run", "--target-url", server.base_url, "--models", MODEL, "--submissions-dir", str(subs),
            "--submitter-handle", "ci", "--device-tag", "ci-box", "--force-load", *extra]


def test_hello_and_5q_numbers_follow_their_definitions(server, tmp_path, spawn):
    proc = weeyuga(spawn, *run_args(server, tmp_path, "--phases", "hello,5q", "--runs", "1"))
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    (ledger,) = tmp_path.glob("ci/ci-box/run-*/run.jsonl")
    records = list(read_records(ledger))
    meta = records[0]
    assert meta["cells"][0]["engine"] == "llamacpp" and meta["cells"][0]["engine_version"]
    calls = [r for r in records if r["type"] == "call"]
    assert len(calls) == 3 * 2 + 5 and all(c["error"] is None for c in calls)
    gaps, after_first = [], []
    for c in calls:
        assert c["ttfb_ms"] <= c["first_delta_ms"] <= c["total_duration_ms"]
        assert not c["tokens_estimated"] and c["prompt_tokens"] > 0
        expected = c["completion_tokens"] / ((c["total_duration_ms"] - c["first_delta_ms"]) / 1000)
        assert c["tokens_per_sec"] == pytest.approx(expected, rel=0.01)
        assert c["peak_rss_mb"] and c["peak_rss_mb"] > 50  # the llama-server process, found by its port
        # timed calls ask for a full prefill, and llama-server says what it reused (nothing)
        assert c["cache_prompt"] is False and isinstance(c["prompt_cached_tokens"], int)
        assert c["prompt_cached_tokens"] < c["prompt_tokens"] and 0 <= c["contention_cpu"] <= 1
        if c["completion_tokens"] >= 32:
            gaps.append(abs(c["tokens_per_sec"] - c["server_tokens_per_sec"]) / c["server_tokens_per_sec"])
        if c["completion_tokens"] >= 8:  # the runtime's own interval: short answers agree too
            after_first.append(abs(c["tokens_per_sec_after_first"] - c["server_tokens_per_sec"]) / c["server_tokens_per_sec"])
    assert gaps and statistics.median(gaps) < 0.10, gaps
    assert after_first and statistics.median(after_first) < 0.05, after_first
    assert (ledger.parent / "manifest.json").exists() and (ledger.parent / "hardware.json").exists()


def test_resume_after_sigkill_has_no_duplicates(server, tmp_path, spawn):
    proc = weeyuga(spawn, *run_args(server, tmp_path, "--phases", "hello,5q", "--runs", "1"))
    deadline = time.monotonic() + 300
    ledger = None
    while time.monotonic() < deadline:
        found = list(tmp_path.glob("ci/ci-box/run-*/run.jsonl"))
        if found and sum(1 for _ in open(found[0])) >= 4:
            ledger = found[0]
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ledger is not None, "the run made no progress"
    before = [r for r in read_records(ledger) if r["type"] == "call"]
    assert 0 < len(before) < 11
    run_id = ledger.parent.name[len("run-"):]
    resumed = weeyuga(spawn, *run_args(server, tmp_path, "--resume", run_id))
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    records = list(read_records(ledger))
    calls = [r for r in records if r["type"] == "call"]
    keys = [call_key(c) for c in calls]
    assert len(keys) == len(set(keys)) == 3 * 2 + 5
    assert calls[: len(before)] == before, "earlier lines were rewritten"
    assert [r["type"] for r in records].count("resume") == 1 and records[-1]["type"] == "end"


def test_a_repeated_prompt_with_the_cache_on_reports_cached_tokens(server, tmp_path, spawn):
    proc = weeyuga(spawn, *run_args(server, tmp_path, "--phases", "prompt_cache", "--smoke"))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    (ledger,) = tmp_path.glob("ci/ci-box/run-*/run.jsonl")
    records = list(read_records(ledger))
    assert records[0]["prompt_cache"]["cells"][records[0]["cells_planned"][0]]["sent_as"] == "cache_prompt"
    off, on = [r for r in records if r["type"] == "call"]  # smoke: one pair, reuse off then on
    assert (off["cache_prompt"], on["cache_prompt"]) == (False, True) and off["error"] is None is on["error"]
    assert off["prompt_cached_tokens"] == 0 and on["prompt_tokens"] > on["prompt_cached_tokens"] >= on["prompt_tokens"] // 2
    assert off["prefill_tokens_per_sec"] > 0 and on["server_prompt_ms"] < off["server_prompt_ms"]

