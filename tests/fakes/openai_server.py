"""FAKE OpenAI-compatible streaming server, for tests only: timed SSE chunks and scripted faults.

The model name picks the behaviour: `fake` (usage + llama.cpp-style timings), `fake-nousage`,
`fake-reasoning`, `fake-500`, `fake-malformed`, `fake-stall`, `fake-disconnect`, and `fake-tools`
(when the request declares tools and the last message is not a tool result, it streams the
state's scripted `tool_calls` as OpenAI does: index-keyed fragments of name and arguments,
finish_reason `tool_calls`; after a tool result it answers in text; scripted `tool_turns` go first,
one per request). Answers are
canned per prompt id (the X-Weeyuga-Benchmark-Prompt-Id header) so machine checks have
something to check. Passing against it proves our protocol handling, not any real runtime.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

from tests.fakes.http import JsonHandler

CANNED = {
    "P-EASY": "Hello! How can I help you today?",
    "P-MEDIUM": ("Sunlight contains every visible wavelength. Air molecules scatter short blue wavelengths far more "
                 "than red ones, which is Rayleigh scattering. At noon the light crosses little atmosphere, so the "
                 "scattered blue fills the sky. Our eyes are also more sensitive to blue than to violet."),
    "5Q-01": "Canberra",
    "5Q-02": "8",
    "5Q-03": "red, green, blue",
    "5Q-04": '{"language": "Python", "year": 1991}',
    "5Q-05": "A hash table maps each key to a value for fast lookup.",
}
DEFAULT = "```python\ndef solve(values):\n    return sorted(values)\n```\nThis sorts the values."


@dataclass
class FakeServerState:
    chunk_delay_s: float = 0.001
    stall_s: float = 5.0
    requests: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    generation_ms: float = 0.0  # total time spent streaming tokens (for tests of the server figure)
    fixed_rate: float | None = None  # report this decode rate in `timings` instead of the measured one
    # what `fake-tools` asks for: (name, arguments as a JSON object), streamed in that order
    tool_calls: list[tuple[str, dict]] = field(default_factory=lambda: [("read_file", {"path": "README.md"})])
    last_prompt: str | None = None  # the prompt the (single) slot holds, for the prompt cache
    chat_template_caps: dict | None = None  # llama-server's /props field, e.g. {"supports_tools": False}
    # scripted agent turns: while any are left, each request with tools takes the next (a list of
    # calls as above; an empty list answers in text), whatever the last message was
    tool_turns: list[list[tuple[str, dict]]] = field(default_factory=list)
    prompt_chars_per_token: float | None = None  # report prompt tokens as the messages' characters / this (else 10)
    # calls per question, keyed by the last message's text (BFCL tests); arguments given as a str are
    # streamed as they are (broken JSON too); an empty list answers in text
    replies: dict[str, list[tuple[str, dict | str]]] = field(default_factory=dict)


def tool_call_fragments(calls: list[tuple[str, dict]]) -> list[dict]:
    """Each call as OpenAI streams it: the id and the first half of the name, then the rest of the
    name, then the arguments in two pieces; every piece carries the call's index."""
    fragments = []
    for index, (name, arguments) in enumerate(calls):
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        half, cut = len(name) // 2, len(text) // 2
        fragments += [{"index": index, "id": f"call_fake_{index}", "type": "function", "function": {"name": name[:half]}},
                      {"index": index, "function": {"name": name[half:]}},
                      {"index": index, "function": {"arguments": text[:cut]}},
                      {"index": index, "function": {"arguments": text[cut:]}}]
    return fragments


def tokens_for(prompt_id: str | None, text_prompt: str, max_tokens: int) -> list[str]:
    text = CANNED.get(prompt_id or "")
    if text is None:
        text = (" ".join(["Once", "a", "fisherman", "found", "a", "coin", "from", "a", "sunken", "empire."] * 20)
                if "story" in text_prompt else DEFAULT)
    words = text.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    return pieces[:max_tokens]


def make_handler(state: FakeServerState):
    class Handler(JsonHandler):
        protocol_version = "HTTP/1.1"

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _event(self, body) -> None:
            self._chunk(b"data: " + (body if isinstance(body, bytes) else json.dumps(body).encode()) + b"\n\n")

        def do_GET(self):
            if self.path in ("/health", "/props"):
                return self._json({"status": "ok", **({"chat_template_caps": state.chat_template_caps}
                                                      if state.chat_template_caps is not None and self.path == "/props" else {})})
            if self.path == "/v1/models":
                return self._json({"object": "list", "data": [{"id": "fake", "object": "model"}]})
            self._json({"error": "not found"}, 404)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            state.requests.append(body)
            state.headers.append(dict(self.headers))
            model = body.get("model", "fake")
            if model == "fake-500":
                return self._json({"error": {"message": "model failed to load", "code": 500}}, 500)
            prompt = body["messages"][-1].get("content") or ""
            pieces = tokens_for(self.headers.get("X-Weeyuga-Benchmark-Prompt-Id"), prompt, body.get("max_tokens", 64))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("X-Weeyuga-Backend", "fake")
            self.end_headers()
            base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model}
            if model == "fake-reasoning":
                for word in ["Let", " me", " think."]:
                    time.sleep(state.chunk_delay_s)
                    self._event({**base, "choices": [{"index": 0, "delta": {"reasoning_content": word}}]})
            scripted = state.tool_turns.pop(0) if model == "fake-tools" and body.get("tools") and state.tool_turns else None
            calls = scripted if scripted is not None else state.replies[prompt] if prompt in state.replies else (
                state.tool_calls if model == "fake-tools" and body.get("tools") and body["messages"][-1].get("role") != "tool" else [])
            if calls:
                for fragment in tool_call_fragments(calls):
                    time.sleep(state.chunk_delay_s)
                    self._event({**base, "choices": [{"index": 0, "delta": {"tool_calls": [fragment]}}]})
                self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
                self._event(b"[DONE]")
                return self._end()
            started = time.perf_counter()
            for index, piece in enumerate(pieces):
                time.sleep(state.chunk_delay_s)
                self._event({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
                if model == "fake-malformed" and index == 1:
                    self._chunk(b"data: {this is not json\n\n")
                    return self._end()
                if model == "fake-stall" and index == 1:
                    time.sleep(state.stall_s)
                    return self._end()
                if model == "fake-disconnect" and index == 2:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)  # no terminating chunk: the client sees a cut body
                    return
            generation_s = time.perf_counter() - started
            state.generation_ms += generation_s * 1000
            finish = "length" if len(pieces) >= body.get("max_tokens", 64) else "stop"
            final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
            prompt_n = (int(sum(len(m.get("content") or "") for m in body["messages"]) / state.prompt_chars_per_token)
                        if state.prompt_chars_per_token else 10)
            # llama-server's prompt cache: a repeated prompt reuses all but its last token unless the request says no
            cached = prompt_n - 1 if body.get("cache_prompt", True) and prompt == state.last_prompt else 0
            state.last_prompt = prompt
            if model != "fake-nousage":
                final["timings"] = {"cache_n": cached, "prompt_n": prompt_n - cached, "prompt_ms": 5.0 if not cached else 0.5,
                                    "predicted_n": len(pieces),
                                    "predicted_ms": generation_s * 1000,
                                    "predicted_per_second": state.fixed_rate or (len(pieces) / generation_s if generation_s else None)}
            self._event(final)
            if model != "fake-nousage":
                usage = {"prompt_tokens": prompt_n, "completion_tokens": len(pieces), "total_tokens": prompt_n + len(pieces)}
                if model == "fake-reasoning":
                    usage["completion_tokens_details"] = {"reasoning_tokens": 3}
                    usage["completion_tokens"] += 3
                self._event({**base, "choices": [], "usage": usage})
            self._event(b"[DONE]")
            self._end()

        def _end(self):
            try:
                self._chunk(b"")
            except OSError:
                pass

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients closing kept-alive sockets is normal here


def start_in_thread(state: FakeServerState | None = None) -> tuple[ThreadingHTTPServer, FakeServerState, str]:
    state = state or FakeServerState()
    server = QuietServer(("127.0.0.1", 0), make_handler(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state, f"http://127.0.0.1:{server.server_address[1]}"
