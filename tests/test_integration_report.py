"""The report's decode profile and plots on the real llama-server with SmolLM2: a long answer's
32-token windows add up to the call's own decode rate, and a real run's report (run.md and
run.html) carries the rate-against-position plot. With CI=true nothing here skips."""

import pytest

from orchestrator.cli import main
from orchestrator.measure.client import CallRequest, stream_chat
from orchestrator.measure.decode_profile import WINDOW_CHUNKS, decode_profile
from orchestrator.core.ledger import read_records
from tests.test_integration_llama import MODEL, llama_server, smollm2  # noqa: F401  (session fixtures)
from tests.test_integration_run import server  # noqa: F401  (SmolLM2 on llama-server, module-scoped)

pytestmark = pytest.mark.integration
LONG_ANSWER_TOKENS = 1024


def test_a_long_answers_windows_add_up_to_its_decode_rate(server):
    request = CallRequest(server.base_url, "openai", MODEL, [{"role": "user", "content": "Write a long story about a lighthouse."}],
                          LONG_ANSWER_TOKENS, 0.1, request_fields={"ignore_eos": True})
    result = stream_chat(request, "llamacpp")
    assert result.error is None and result.completion_tokens == LONG_ANSWER_TOKENS
    profile = decode_profile(result.delta_ms, result.completion_tokens)
    rates = profile["tokens_per_sec"]
    assert len(rates) == pytest.approx(LONG_ANSWER_TOKENS / WINDOW_CHUNKS, abs=1)
    assert profile["tokens_per_chunk"] == pytest.approx(1.0, abs=0.01)  # llama-server streams one token per chunk
    window_seconds = sum(WINDOW_CHUNKS / rate for rate in rates)  # every window but a short tail is full
    assert LONG_ANSWER_TOKENS / window_seconds == pytest.approx(result.tokens_per_sec, rel=0.1)
    print(f"decode rate along {LONG_ANSWER_TOKENS} tokens: first window {rates[0]} tok/s, last {rates[-1]} tok/s, "
          f"call {result.tokens_per_sec:.1f} tok/s, server {result.server_tokens_per_sec:.1f} tok/s")


def test_a_real_runs_report_has_the_position_plot_in_run_md_and_run_html(server, tmp_path):
    args = ["run", "--target-url", server.base_url, "--models", MODEL, "--submissions-dir", str(tmp_path),
            "--submitter-handle", "ci", "--device-tag", "ci-box", "--force-load", "--phases", "hello", "--runs", "1",
            "--num-predict", "96"]
    assert main(args) == 0
    (run_dir,) = [p.parent for p in tmp_path.glob("ci/ci-box/run-*/run.jsonl")]
    profiled = [r for r in read_records(run_dir / "responses.jsonl") if "decode_profile" in r]
    assert profiled, "no answer reached 48 tokens"
    assert main(["report", str(run_dir), "--html"]) == 0
    md = (run_dir / "run.md").read_text()
    assert "![decode_by_position](decode_by_position.png)" in md and "tok/s in the first window" in md
    page = (run_dir / "run.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == md.count("*Figure ")
