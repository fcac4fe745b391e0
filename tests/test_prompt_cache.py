"""The prompt cache (issue #16 §1): what each runtime's switch sends, what the runtime says it reused,
the prefill rate over the uncached tokens, the prompt_cache phase, and how the manifest and run.md
record the methodology. Against the FAKE SSE server (a one-slot prompt cache like llama-server's)
and the FAKE Ollama."""

from orchestrator.measure.client import CallRequest, stream_chat
from orchestrator.core.ledger import read_records
from orchestrator.core.canonical import prompt_cache_policy
from orchestrator.flows.pipeline import byo_targets, run_recorded
from orchestrator.publish.manifest import RunContext
from orchestrator.publish.report import report
from orchestrator.measure.run import RunOptions
from orchestrator.runtime import RUNTIMES
from orchestrator.runtime.base import byo_target
from tests.fakes import ollama as fake_ollama
from tests.test_agent_phase import fake  # noqa: F401  (the FAKE SSE server, fresh per test)


def chat(url, cache_prompt):
    return stream_chat(CallRequest(url, "openai", "fake", [{"role": "user", "content": "the same prompt"}], 8, 0.1,
                                   request_fields={"cache_prompt": cache_prompt}), "llamacpp")


def test_the_client_reads_cached_tokens_and_the_uncached_prefill_rate(fake):  # noqa: F811
    _, url = fake
    first, repeated, refused = chat(url, True), chat(url, True), chat(url, False)
    assert (first.prompt_cached_tokens, first.prefill_tokens_per_sec) == (0, 2000.0)  # 10 tokens in 5 ms
    assert (repeated.prompt_cached_tokens, repeated.prefill_tokens_per_sec) == (9, 2000.0)  # the last token, in 0.5 ms
    assert repeated.server_prompt_ms == 0.5 and repeated.prompt_tokens == 10  # usage still counts the whole prompt
    assert refused.prompt_cached_tokens == 0


def test_ollama_says_nothing_about_reuse_and_its_prefill_rate_is_its_own():
    srv, _, url = fake_ollama.start_in_thread()
    try:
        result = stream_chat(CallRequest(url, "ollama", "smollm2:135m", [{"role": "user", "content": "hi"}], 8, 0.1),
                             "ollama")
    finally:
        srv.shutdown()
    assert result.prompt_cached_tokens is None and result.prefill_tokens_per_sec == 4000.0  # 12 tokens in 3 ms


def test_each_runtime_says_how_it_is_told_about_the_cache():
    assert RUNTIMES["llama.cpp"].prompt_cache_switch() == ("cache_prompt", None)
    for name in ("ollama", "openai"):
        switch, why = RUNTIMES[name].prompt_cache_switch()
        assert switch is None and "no prompt-cache switch" in why


def run(url, tmp_path, phases, engine="llamacpp"):
    runtime = next(r for r in RUNTIMES.values() if r.engine == engine)
    targets = [byo_target(runtime, f"node:{engine}:fake", "fake", url, lambda: None)] if engine != "llamacpp" else \
        byo_targets(url, ["fake"], "llamacpp", "node:llamacpp", "node")
    options = RunOptions(phases=phases, runs=1)
    run_recorded(targets, options, tmp_path, "run-1", RunContext())
    return [r for r in read_records(tmp_path / "run.jsonl") if r["type"] == "call"]


def test_timed_calls_ask_for_no_reuse_and_the_prompt_cache_phase_measures_it(fake, tmp_path):  # noqa: F811
    state, url = fake
    calls = run(url, tmp_path, ["5q", "prompt_cache"])
    timed = [c for c in calls if c["phase"] == "5q"]
    assert {c["cache_prompt"] for c in timed} == {False} and {c["prompt_cached_tokens"] for c in timed} == {0}
    measured = [c for c in calls if c["phase"] == "prompt_cache"]
    pairs = prompt_cache_policy().pairs
    assert len(measured) == 2 * 2 * pairs  # two items, each `pairs` times off then on
    assert [c["cache_prompt"] for c in measured[:4]] == [False, True, False, True]
    assert [c["prompt_cached_tokens"] for c in measured[:4]] == [0, 9, 0, 9]
    assert [r["cache_prompt"] for r in state.requests if "cache_prompt" in r][-4:] == [False, True, False, True]
    assert all(isinstance(c["prefill_tokens_per_sec"], float) and "contention_cpu" in c for c in calls)
    done = report(tmp_path, plots=False)
    rows = {r["prompt_id"]: r for r in done.metadata["prompt_cache"]}
    assert set(rows) == {"P-MEDIUM", "P-HARD"} and rows["P-HARD"]["cached_tokens_on_p50"] == 9
    assert rows["P-HARD"]["n_off"] == rows["P-HARD"]["n_on"] == pairs
    assert "## Prompt cache" in done.markdown and "`cache_prompt: false`" in done.markdown
    manifest = (tmp_path / "manifest.json").read_text()
    assert '"sent_as": "cache_prompt"' in manifest and '"timed_calls": false' in manifest


def test_a_runtime_without_a_switch_is_sent_nothing_and_recorded_as_null(fake, tmp_path):  # noqa: F811
    state, url = fake
    calls = run(url, tmp_path, ["5q"], engine="openai")
    assert {c["cache_prompt"] for c in calls} == {None} and not any("cache_prompt" in r for r in state.requests)
    done = report(tmp_path, plots=False)
    assert "Not sent where the runtime has no switch: the OpenAI API has no prompt-cache switch" in done.markdown


def test_a_resume_between_the_calls_of_a_pair_puts_the_prefix_back_first(fake, tmp_path):  # noqa: F811
    state, url = fake
    targets = byo_targets(url, ["fake"], "llamacpp", "node:llamacpp", "node")
    run_recorded(targets, RunOptions(phases=["prompt_cache"], smoke=True), tmp_path, "run-1", RunContext())
    ledger = tmp_path / "run.jsonl"
    ledger.write_text("".join(ledger.read_text().splitlines(keepends=True)[:-2]))  # killed before the cached call
    state.last_prompt = "something else"  # the slot moved on meanwhile
    run_recorded(targets, RunOptions(phases=["prompt_cache"], smoke=True), tmp_path, "run-1", None, resume=True)
    warm_up, resumed = state.requests[-2:]
    assert "cache_prompt" not in warm_up and resumed["cache_prompt"] is True
    calls = [r for r in read_records(ledger) if r["type"] == "call"]
    assert [(c["run_idx"], c["prompt_cached_tokens"]) for c in calls] == [(0, 0), (1, 9)]


def test_agent_calls_keep_the_prompt_cache_and_timed_calls_do_not():
    """canonical.yaml prompt_cache.reused_by: a multi-turn agent step reuses its conversation's prefix."""
    from orchestrator.core.canonical import prompt_cache_policy

    policy = prompt_cache_policy()
    assert policy.sent_by("agent") is True
    assert policy.sent_by("5q") is policy.timed_calls is False
