"""The streaming client against the FAKE SSE server and the FAKE Ollama: every fault is a record."""

import itertools

import pytest

from orchestrator.measure.client import CallRequest, stream_chat
from tests.fakes import ollama as fake_ollama
from tests.fakes.openai_server import FakeServerState, start_in_thread


@pytest.fixture(scope="module")
def server():
    srv, state, url = start_in_thread(FakeServerState(stall_s=1.5))
    yield state, url
    srv.shutdown()


def call(url, model, prompt="Tell me a story", max_tokens=40, **kw):
    return stream_chat(CallRequest(url, "openai", model, [{"role": "user", "content": prompt}], max_tokens, 0.1,
                                   stall_timeout_s=0.5, **kw), "llamacpp")


def test_usage_timings_and_definitions(server):
    state, url = server
    result = call(url, "fake")
    assert result.error is None and result.completion_tokens == 40 and not result.tokens_estimated
    assert 0 < result.ttfb_ms <= result.first_delta_ms == result.first_answer_ms < result.total_duration_ms
    expected = 40 / ((result.total_duration_ms - result.first_delta_ms) / 1000)
    assert result.tokens_per_sec == pytest.approx(expected)
    assert result.server_tokens_per_sec > 0 and result.server_prompt_ms == 5.0
    assert result.finish_reason == "length" and result.backend == "fake"
    assert len(result.response_preview) <= 240 and result.text.startswith("Once")


def test_request_body_and_tagging_headers(server):
    state, url = server
    call(url, "fake", headers={"X-Weeyuga-Test": "true", "X-Weeyuga-Benchmark-Run-Id": "r1"})
    body, headers = state.requests[-1], state.headers[-1]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 40 and body["temperature"] == 0.1
    assert headers["X-Weeyuga-Test"] == "true" and headers["X-Weeyuga-Benchmark-Run-Id"] == "r1"


def test_missing_usage_is_counted_and_flagged_estimated(server):
    result = call(server[1], "fake-nousage")
    assert result.error is None and result.completion_tokens == 40 and result.tokens_estimated
    assert result.server_tokens_per_sec is None and result.rate_disagreement is None


def test_reasoning_counts_for_first_delta_not_first_answer(server):
    result = call(server[1], "fake-reasoning")
    assert result.first_delta_ms < result.first_answer_ms
    assert result.reasoning_tokens == 3 and "think" not in result.text


@pytest.mark.parametrize("model,message", [
    ("fake-500", "HTTP 500: "),
    ("fake-malformed", "malformed stream data"),
    ("fake-stall", "stalled: no data"),
    ("fake-disconnect", "disconnected mid-stream"),
])
def test_faults_become_error_results(server, model, message):
    result = call(server[1], model)
    assert result.error and result.error.startswith(message)
    assert result.tokens_per_sec is None and result.total_duration_ms is not None


def test_connection_refused_is_an_error_not_a_crash():
    result = call("http://127.0.0.1:9", "fake")
    assert result.error.startswith("cannot connect")


def test_injected_clock_makes_timings_exact(server):
    ticks = itertools.count()
    result = stream_chat(CallRequest(server[1], "openai", "fake", [{"role": "user", "content": "hi"}], 10, 0.1),
                         "llamacpp", clock=lambda: next(ticks) * 0.010)
    # clock reads: start, headers, then one per content chunk (10), the finish chunk, then the end.
    assert (result.ttfb_ms, result.first_delta_ms) == (10.0, 20.0)
    assert result.finished_ms == pytest.approx(120.0) and result.total_duration_ms == pytest.approx(130.0)
    assert result.tokens_per_sec == pytest.approx(10 / 0.11)
    assert result.tokens_per_sec_after_first == pytest.approx(9 / 0.1)  # 9 tokens after the first, 20 -> 120 ms


def test_ollama_native_stream_gives_server_rate():
    srv, state, url = fake_ollama.start_in_thread()
    try:
        result = stream_chat(CallRequest(url, "ollama", "smollm2:135m", [{"role": "user", "content": "hi"}], 32, 0.1,
                                         options={"num_ctx": 2048}, keep_alive="5m"), "ollama")
    finally:
        srv.shutdown()
    assert result.error is None and result.text == "The sky is blue."
    assert (result.prompt_tokens, result.completion_tokens) == (12, 4)
    assert result.server_tokens_per_sec == pytest.approx(100.0) and result.server_prompt_ms == pytest.approx(3.0)
    path, body = state.requests[-1]
    assert path == "/api/chat" and body["options"] == {"num_ctx": 2048, "num_predict": 32, "temperature": 0.1}
    assert body["keep_alive"] == "5m"


TOOLS = [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]


def test_streamed_tool_calls_are_assembled_from_index_keyed_fragments(server):
    state, url = server
    state.tool_calls = [("read_file", {"path": "README.md"}), ("run_tests", {"verbose": True, "k": "unit"})]
    result = call(url, "fake-tools", tools=TOOLS, tool_choice="auto")
    body = state.requests[-1]
    assert body["tools"] == TOOLS and body["tool_choice"] == "auto"
    assert result.error is None and result.finish_reason == "tool_calls" and result.text == ""
    assert result.message == {"role": "assistant", "content": None, "reasoning_content": None, "tool_calls": [
        {"id": "call_fake_0", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "README.md"}'}},
        {"id": "call_fake_1", "type": "function",
         "function": {"name": "run_tests", "arguments": '{"verbose": true, "k": "unit"}'}}]}
    assert result.first_delta_ms is not None and result.first_answer_ms is None


def test_a_tool_result_conversation_goes_through_as_given(server):
    state, url = server
    called = {"id": "call_fake_0", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Read it"},
                {"role": "assistant", "content": None, "tool_calls": [called]},
                {"role": "tool", "tool_call_id": "call_fake_0", "content": "# weeyuga"}]
    result = stream_chat(CallRequest(url, "openai", "fake-tools", messages, 8, 0.1, tools=TOOLS), "llamacpp")
    assert state.requests[-1]["messages"] == messages and "tool_choice" not in state.requests[-1]
    assert result.error is None and result.message["tool_calls"] == [] and result.message["content"] == result.text != ""


def test_reasoning_and_content_make_the_message(server):
    result = call(server[1], "fake-reasoning", max_tokens=3)
    assert result.message["reasoning_content"] == "Let me think." and result.message["content"] == result.text
    assert "tools" not in server[0].requests[-1]


def test_ollama_native_tool_calls_are_whole_with_arguments_as_json_text():
    srv, state, url = fake_ollama.start_in_thread()
    try:
        result = stream_chat(CallRequest(url, "ollama", "smollm2:135m", [{"role": "user", "content": "hi"}], 32, 0.1,
                                         tools=TOOLS), "ollama")
    finally:
        srv.shutdown()
    assert state.requests[-1][1]["tools"] == TOOLS
    assert result.error is None and result.message["content"] is None
    assert result.message["tool_calls"] == [
        {"id": "call_0", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "README.md"}'}},
        {"id": "call_1", "type": "function", "function": {"name": "run_tests", "arguments": '{"verbose": true}'}}]
