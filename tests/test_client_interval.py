"""tokens_per_sec_after_first: the client's decode rate over the interval llama-server times, from
scripted streams (llama.cpp's and Ollama's chunk shapes) read with an injected clock."""

import json

import httpx
import pytest

from orchestrator.measure.client import CallRequest, stream_chat

BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m"}


def sse(events: list) -> bytes:
    return b"".join(b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n\n" for e in events)


def llama_stream(pieces: list[str], n_gen: int, finish: str, server_rate: float) -> bytes:
    """What llama-server streams: a role chunk, one chunk per piece, the finish chunk with `timings`,
    the usage chunk, [DONE]. `n_gen` counts an end-of-generation token that is never streamed."""
    timings = {"prompt_n": 9, "prompt_ms": 4.0, "predicted_n": n_gen, "predicted_per_second": server_rate}
    return sse([{**BASE, "choices": [{"index": 0, "delta": {"role": "assistant", "content": None}, "finish_reason": None}]},
                *[{**BASE, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces],
                {**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}], "timings": timings},
                {**BASE, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": n_gen}, "timings": timings},
                b"[DONE]"])


def scripted_clock(times_s: list[float]):
    """Returns the given readings in order; the test fails if the client reads it more often."""
    readings = iter(times_s)
    return lambda: next(readings)


def call(body: bytes, clock, api: str = "openai", content_type: str = "text/event-stream"):
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body, headers={"content-type": content_type}))
    with httpx.Client(transport=transport) as http:
        return stream_chat(CallRequest("http://runtime.test", api, "m", [{"role": "user", "content": "hi"}], 64, 0.0),
                           "llamacpp", http, clock)


def server_and_client_times(sampled_s: list[float], lag_s: float) -> tuple[float, list[float]]:
    """llama-server's rate for tokens sampled at `sampled_s` (decode steps after the first over the time
    from the first sample to the last), and the client clock's readings when each chunk arrives `lag_s` later."""
    rate = (len(sampled_s) - 1) / (sampled_s[-1] - sampled_s[0])
    return rate, [t + lag_s for t in sampled_s]


@pytest.mark.parametrize("gaps_ms", [[20] * 7, [10, 30, 12, 45, 11, 9, 25], [5] * 31])
def test_a_stop_by_end_token_matches_the_server_over_its_interval(gaps_ms):
    # the last sampled token is the end-of-generation one: counted by the server, never streamed;
    # its sampling ends the interval, and the finish chunk follows it
    sampled = [0.100]
    for gap in gaps_ms:
        sampled.append(sampled[-1] + gap / 1000)
    server_rate, arrivals = server_and_client_times(sampled, lag_s=0.0008)
    # start, headers, one per streamed piece (all but the end token), the finish chunk, the end
    clock = scripted_clock([0.0, 0.002, *arrivals[:-1], arrivals[-1], arrivals[-1] + 0.0005])
    result = call(llama_stream(["w"] * (len(sampled) - 1), len(sampled), "stop", server_rate), clock)
    assert result.error is None and result.completion_tokens == len(sampled)
    assert result.tokens_per_sec_after_first == pytest.approx(server_rate)
    # the methodology's rate counts n tokens over the n - 1 gaps (and ends at the last chunk): fast on short answers
    assert result.tokens_per_sec > result.tokens_per_sec_after_first


def test_a_stop_by_length_ends_at_the_finish_chunk_after_the_last_piece():
    sampled = [0.050 + 0.025 * i for i in range(8)]
    server_rate, arrivals = server_and_client_times(sampled, lag_s=0.001)
    # the last piece arrives, then the finish chunk 0.1 ms later: the interval ends at the finish chunk
    clock = scripted_clock([0.0, 0.001, *arrivals, arrivals[-1] + 0.0001, arrivals[-1] + 0.0003])
    result = call(llama_stream(["w"] * 8, 8, "length", server_rate), clock)
    assert result.finished_ms == pytest.approx((arrivals[-1] + 0.0001) * 1000)
    assert result.tokens_per_sec_after_first == pytest.approx(7 / (0.175 + 0.0001))
    assert abs(result.tokens_per_sec_after_first - server_rate) / server_rate < 0.001
    assert result.tokens_per_sec == pytest.approx(8 / (arrivals[-1] + 0.0003 - arrivals[0]))


def test_ollama_done_chunk_ends_the_interval():
    lines = [{"message": {"role": "assistant", "content": w}, "done": False} for w in ("a", "b", "c", "d")]
    lines.append({"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
                  "prompt_eval_count": 5, "prompt_eval_duration": 2_000_000, "eval_count": 4, "eval_duration": 40_000_000})
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    clock = scripted_clock([0.0, 0.001, 0.010, 0.020, 0.030, 0.040, 0.045, 0.046])
    result = call(body, clock, api="ollama", content_type="application/x-ndjson")
    assert result.finished_ms == pytest.approx(45.0)
    assert result.tokens_per_sec_after_first == pytest.approx(3 / 0.035)


@pytest.mark.parametrize("events,reads", [
    ([{**BASE, "choices": [{"index": 0, "delta": {"content": "one"}, "finish_reason": None}]},
      {**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
      {**BASE, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}, b"[DONE]"], 5),
    ([{**BASE, "choices": [{"index": 0, "delta": {"content": "cut"}, "finish_reason": None}]}], 4),
], ids=["one token: no steps after the first", "no finish chunk: an error, no rate"])
def test_no_rate_without_steps_after_the_first_or_without_a_finish(events, reads):
    result = call(sse(events), scripted_clock([0.01 * i for i in range(reads)]))
    assert result.tokens_per_sec_after_first is None


def test_agreement_reports_the_gap_over_the_runtime_interval_beside_the_methodology_one():
    from orchestrator.publish.report.figures import agreement

    calls = [{"error": None, "tokens_per_sec": 8 / 7 * 50, "tokens_per_sec_after_first": rate, "server_tokens_per_sec": 50.0}
             for rate in (50.0, 50.5, 49.0, 51.0)]
    calls.append({"error": None, "tokens_per_sec": 40.0, "server_tokens_per_sec": 40.0})  # a line from before the field
    figures = agreement(calls)
    assert (figures["n_compared"], figures["n_compared_after_first"]) == (5, 4)
    assert figures["median_relative_gap"] == pytest.approx(1 / 7, abs=1e-4)
    assert figures["median_relative_gap_after_first"] == 0.015 and figures["p90_relative_gap_after_first"] == 0.02

