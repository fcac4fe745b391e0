"""One streamed chat call, timed by the methodology's definitions.

Two wire formats: the OpenAI-compatible `/v1/chat/completions` SSE stream (llama.cpp and any
bring-your-own server) and Ollama's native `/api/chat` NDJSON stream, which is the only way
to set Ollama's num_ctx per request and to read its own eval_count / eval_duration.

Every failure (HTTP error, malformed stream, stall, disconnect) becomes a CallResult with
`error` set; nothing here raises for a bad server.

Messages are OpenAI-shaped of any role (system/user/assistant/tool, with `tool_calls`,
`tool_call_id`, content None) and go to both wire formats as given; `tools`/`tool_choice`
reach the request body when set. The full assistant message comes back in `CallResult.message`:
content, reasoning content and tool calls, each assembled from the streamed fragments
(OpenAI: index-keyed pieces of name and arguments; Ollama: whole calls with object arguments,
serialised to a JSON string so both read alike).

Definitions (milliseconds from just before the request is sent):
    ttfb_ms            response headers received
    first_delta_ms     first chunk carrying content, reasoning or a tool call (TTFT)
    first_answer_ms    first chunk carrying answer content
    total_duration_ms  final chunk received
    tokens_per_sec     completion_tokens / ((total - first_delta) / 1000)
    finished_ms        the chunk that ends the answer (OpenAI `finish_reason`, Ollama `done`)
    tokens_per_sec_after_first
                       (completion_tokens - 1) / ((finished - first_delta) / 1000): the interval the
                       runtime times. llama-server's predicted_per_second counts the decode steps after
                       the first token (which comes free with the prompt's logits) from that token's
                       sampling to the last one's, and sends the final chunk right after the last;
                       tokens_per_sec's n tokens over n - 1 gaps reads short answers 10-35% fast.

The prompt cache: `cache_prompt` is what the request asked of the runtime's prompt cache (None: its API
has no switch, nothing was sent). `prompt_cached_tokens` is what the runtime says it reused: llama.cpp's
`timings.cache_n`, else the OpenAI `usage.prompt_tokens_details.cached_tokens`; None when it does not say
(Ollama reports only `prompt_eval_count`, the tokens it evaluated, so nothing is derived from it).
`prefill_tokens_per_sec` is the runtime's own prefill rate over the tokens it really processed:
llama.cpp `timings.prompt_n / prompt_ms` (prompt_n excludes the cached prefix), Ollama
`prompt_eval_count / prompt_eval_duration`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx

PREVIEW_CHARS = 240
DISAGREEMENT_THRESHOLD = 0.05
Clock = Callable[[], float]  # seconds, monotonic


@dataclass(frozen=True)
class CallRequest:
    base_url: str
    api: str  # openai | ollama
    model: str
    messages: list[dict[str, Any]]  # OpenAI chat messages of any role, passed through as given
    max_tokens: int
    temperature: float
    headers: dict[str, str] = field(default_factory=dict)
    request_fields: dict[str, Any] = field(default_factory=dict)  # extra top-level OpenAI fields
    options: dict[str, Any] = field(default_factory=dict)  # Ollama native options
    keep_alive: str | None = None
    connect_timeout_s: float = 10.0
    stall_timeout_s: float = 120.0  # no byte for this long = stalled
    tools: list[dict[str, Any]] | None = None  # OpenAI function-tool declarations
    tool_choice: Any = None  # OpenAI only ("auto", "none", "required" or a named function)
    cache_prompt: bool | None = None  # recorded: what request_fields asked of the prompt cache; None: not sent


@dataclass
class CallResult:
    first_delta_ms: float | None = None
    total_duration_ms: float | None = None
    ttfb_ms: float | None = None
    first_answer_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    tokens_estimated: bool = False
    tokens_per_sec: float | None = None
    finish_reason: str | None = None
    backend: str | None = None
    error: str | None = None
    text: str = ""
    server_tokens_per_sec: float | None = None
    server_prompt_ms: float | None = None
    rate_disagreement: bool | None = None
    chunks: int = 0
    # The whole assistant message: {"role", "content", "reasoning_content", "tool_calls": [...]}
    message: dict[str, Any] = field(default_factory=dict)
    prompt_cached_tokens: int | None = None
    prefill_tokens_per_sec: float | None = None
    delta_ms: list[float] = field(default_factory=list)  # arrival of each chunk that carried a delta (decode_profile)
    finished_ms: float | None = None
    tokens_per_sec_after_first: float | None = None
    draft_tokens: int | None = None  # speculative decoding: tokens drafted (llama.cpp timings.draft_n)
    draft_accepted: int | None = None  # ... and accepted by the model (timings.draft_n_accepted)

    @property
    def response_preview(self) -> str:
        return self.text[:PREVIEW_CHARS]


class _Stream:
    """Accumulates chunks as they arrive; both wire formats feed it."""

    def __init__(self, clock: Clock, started: float) -> None:
        self.clock, self.started = clock, started
        self.result = CallResult()
        self.parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}  # stream index -> call being assembled
        self.content_chunks = 0

    def ms(self) -> float:
        return (self.clock() - self.started) * 1000.0

    def finished(self) -> None:
        if self.result.finished_ms is None:
            self.result.finished_ms = self.ms()

    def delta(self, content: str | None, reasoning: str | None, tool_calls: list[dict[str, Any]] | None) -> None:
        if not (content or reasoning or tool_calls):
            return
        now = self.ms()
        result = self.result
        result.delta_ms.append(now)
        if result.first_delta_ms is None:
            result.first_delta_ms = now
        if content:
            if result.first_answer_ms is None:
                result.first_answer_ms = now
            self.parts.append(content)
        if reasoning:
            self.reasoning_parts.append(reasoning)
        for fragment in tool_calls or []:
            self._tool_fragment(fragment)
        self.content_chunks += 1

    def _tool_fragment(self, fragment: dict[str, Any]) -> None:
        """OpenAI streams a call as index-keyed pieces to concatenate; Ollama sends it whole (no index)."""
        index = fragment["index"] if "index" in fragment else len(self.tool_calls)
        call = self.tool_calls.setdefault(index, {"id": None, "type": "function",
                                                  "function": {"name": "", "arguments": ""}})
        call["id"] = call["id"] or fragment.get("id")
        function = fragment.get("function") or {}
        call["function"]["name"] += function.get("name") or ""
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            call["function"]["arguments"] += arguments
        elif arguments is not None:  # Ollama: an object
            call["function"]["arguments"] = json.dumps(arguments, ensure_ascii=False)

    def message(self) -> dict[str, Any]:
        calls = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        for number, call in enumerate(calls):
            call["id"] = call["id"] or f"call_{number}"  # Ollama gives none; a tool reply must name one
        return {"role": "assistant", "content": "".join(self.parts) or None,
                "reasoning_content": "".join(self.reasoning_parts) or None, "tool_calls": calls}


def _finish(stream: _Stream, engine: str) -> CallResult:
    result = stream.result
    result.total_duration_ms = stream.ms()
    result.text = "".join(stream.parts)
    result.message = stream.message()
    result.backend = result.backend or engine
    if result.completion_tokens is None and result.error is None:
        result.completion_tokens = stream.content_chunks  # one token per chunk: the usual streaming granularity
        result.tokens_estimated = True
    if result.error is None and result.first_delta_ms is not None and result.completion_tokens:
        decode_ms = result.total_duration_ms - result.first_delta_ms
        if decode_ms > 0:
            result.tokens_per_sec = result.completion_tokens / (decode_ms / 1000.0)
    steps = (result.completion_tokens or 0) - 1
    if result.error is None and result.finished_ms is not None and result.first_delta_ms is not None and steps > 0:
        span_ms = result.finished_ms - result.first_delta_ms
        if span_ms > 0:
            result.tokens_per_sec_after_first = steps / (span_ms / 1000.0)
    if result.tokens_per_sec and result.server_tokens_per_sec:
        gap = abs(result.tokens_per_sec - result.server_tokens_per_sec) / result.server_tokens_per_sec
        result.rate_disagreement = gap > DISAGREEMENT_THRESHOLD
    return result


def _openai_body(req: CallRequest) -> dict[str, Any]:
    body = {**req.request_fields, "model": req.model, "messages": req.messages, "stream": True,
            "stream_options": {"include_usage": True}, "max_tokens": req.max_tokens, "temperature": req.temperature}
    if req.tools is not None:
        body["tools"] = req.tools
    if req.tool_choice is not None:
        body["tool_choice"] = req.tool_choice
    return body


def _ollama_body(req: CallRequest) -> dict[str, Any]:
    body = {"model": req.model, "messages": req.messages, "stream": True,
            "options": {**req.options, "num_predict": req.max_tokens, "temperature": req.temperature}}
    if req.keep_alive is not None:
        body["keep_alive"] = req.keep_alive
    if req.tools is not None:
        body["tools"] = req.tools
    return body


def per_second(count: Any, duration: Any, units_per_second: float) -> float | None:
    """A runtime's count over its own duration; None when it gave either not as a positive number."""
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (count, duration)):
        return None
    return count / (duration / units_per_second)


def _feed_openai(stream: _Stream, event: dict[str, Any]) -> bool:
    """One SSE event; True when the stream says it is finished."""
    result = stream.result
    if "error" in event:
        error = event["error"]
        result.error = f"server error in stream: {error.get('message') if isinstance(error, dict) else error}"
        return True
    for choice in event.get("choices") or []:
        delta = choice.get("delta") or {}
        stream.delta(delta.get("content"), delta.get("reasoning_content") or delta.get("reasoning"),
                     delta.get("tool_calls"))
        if choice.get("finish_reason"):
            result.finish_reason = choice["finish_reason"]
            stream.finished()
    usage = event.get("usage")
    if usage:
        result.prompt_tokens = usage.get("prompt_tokens")
        result.completion_tokens = usage.get("completion_tokens")
        details = usage.get("completion_tokens_details") or {}
        result.reasoning_tokens = details.get("reasoning_tokens")
        if result.prompt_cached_tokens is None:  # llama.cpp's timings.cache_n, when present, is the same figure
            result.prompt_cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    timings = event.get("timings")  # llama.cpp's own measurement
    if timings:
        result.server_tokens_per_sec = timings.get("predicted_per_second")
        result.server_prompt_ms = timings.get("prompt_ms")
        if timings.get("cache_n") is not None:
            result.prompt_cached_tokens = timings["cache_n"]
        result.prefill_tokens_per_sec = per_second(timings.get("prompt_n"), timings.get("prompt_ms"), 1e3)
        result.draft_tokens, result.draft_accepted = timings.get("draft_n"), timings.get("draft_n_accepted")
    return False


def _feed_ollama(stream: _Stream, event: dict[str, Any]) -> bool:
    result = stream.result
    if "error" in event:
        result.error = f"server error in stream: {event['error']}"
        return True
    message = event.get("message") or {}
    stream.delta(message.get("content"), message.get("thinking"), message.get("tool_calls"))
    if not event.get("done"):
        return False
    stream.finished()
    result.finish_reason = {"stop": "stop", "length": "length"}.get(event.get("done_reason"), event.get("done_reason"))
    result.prompt_tokens = event.get("prompt_eval_count")
    result.completion_tokens = event.get("eval_count")
    if event.get("eval_count") and event.get("eval_duration"):
        result.server_tokens_per_sec = event["eval_count"] / (event["eval_duration"] / 1e9)
    if event.get("prompt_eval_duration") is not None:
        result.server_prompt_ms = event["prompt_eval_duration"] / 1e6
    result.prefill_tokens_per_sec = per_second(event.get("prompt_eval_count"), event.get("prompt_eval_duration"), 1e9)
    return True


@dataclass(frozen=True)
class WireFormat:
    path: str
    body: Callable[[CallRequest], dict[str, Any]]
    feed: Callable[[_Stream, dict[str, Any]], bool]
    sse: bool  # Server-Sent Events ("data: ..." lines) rather than one JSON object per line


WIRE_FORMATS = {"openai": WireFormat("/v1/chat/completions", _openai_body, _feed_openai, sse=True),
                "ollama": WireFormat("/api/chat", _ollama_body, _feed_ollama, sse=False)}


def stream_chat(req: CallRequest, engine: str, http: httpx.Client | None = None,
                clock: Clock = time.perf_counter) -> CallResult:
    """Send one streamed chat request and measure it. Never raises for server misbehaviour."""
    wire = WIRE_FORMATS[req.api]
    url, body, feed = req.base_url + wire.path, wire.body(req), wire.feed
    owned = http is None
    http = http or httpx.Client()
    timeout = httpx.Timeout(connect=req.connect_timeout_s, read=req.stall_timeout_s, write=30.0, pool=30.0)
    stream = _Stream(clock, clock())
    finished = False
    try:
        with http.stream("POST", url, json=body, headers=req.headers, timeout=timeout) as response:
            stream.result.ttfb_ms = stream.ms()
            stream.result.backend = response.headers.get("x-weeyuga-backend")
            if response.status_code != 200:
                detail = response.read().decode("utf-8", "replace").strip().replace("\n", " ")[:200]
                stream.result.error = f"HTTP {response.status_code}: {detail}"
                return _finish(stream, engine)
            for line in response.iter_lines():
                if wire.sse:
                    if not line.startswith("data:"):
                        continue  # blank separators, comments, event: lines
                    line = line[5:].strip()
                    if line == "[DONE]":
                        finished = True
                        break
                elif not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    stream.result.error = f"malformed stream data: {line[:80]!r}"
                    break
                if not isinstance(event, dict):
                    stream.result.error = f"malformed stream data: {line[:80]!r}"
                    break
                stream.result.chunks += 1
                if feed(stream, event):
                    finished = True
                    break
    except httpx.ReadTimeout:
        stream.result.error = f"stalled: no data for {req.stall_timeout_s:.0f} s"
    except httpx.ConnectError as exc:
        stream.result.error = f"cannot connect to {req.base_url}: {exc}"
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        stream.result.error = f"disconnected mid-stream: {exc}"
    except httpx.HTTPError as exc:
        stream.result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if owned:
            http.close()
    if not finished and stream.result.error is None:
        stream.result.error = "stream ended without a final chunk"
    return _finish(stream, engine)
