"""FAKE Ollama: a tiny stand-in for Ollama's HTTP API and `ollama` CLI, for tests only.

It answers /api/version, /api/tags, /api/ps, /api/pull (streamed progress), /api/generate
(keep_alive 0 unloads) and records the environment it was started with. /api/chat honours the
`num_gpu` option like a GPU with room for FAKE_OLLAMA_FIT_LAYERS of FAKE_OLLAMA_LAYERS layers:
more fails with an out-of-memory error, fewer streams slower, and leaving it out offloads what
fits minus two (its own estimate), logged as llama.cpp logs it. A chat that declares `tools`
(and does not end with a tool result) is answered with the scripted TOOL_CALLS, whole and with
object arguments, as Ollama sends them. Passing against it
proves our mapping and protocol handling, never that real Ollama works.

Run as a CLI: `python -m tests.fakes.ollama serve` (listens on $OLLAMA_HOST) or `--version`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import ThreadingHTTPServer

from tests.fakes.http import JsonHandler

FAKE_VERSION = "0.0.0-fake"
DIGEST = "sha256:" + "ab" * 32
TOOL_CALLS = [{"function": {"name": "read_file", "arguments": {"path": "README.md"}}},
              {"function": {"name": "run_tests", "arguments": {"verbose": True}}}]


class FakeOllamaState:
    def __init__(self):
        self.models = {"smollm2:135m": DIGEST}
        self.loaded: set[str] = set()
        self.env = {k: v for k, v in os.environ.items() if k.startswith("OLLAMA_")}
        self.requests: list[tuple[str, dict]] = []
        self.layers = int(os.environ.get("FAKE_OLLAMA_LAYERS", "0"))  # 0: no GPU model, no delays
        self.fit_layers = int(os.environ.get("FAKE_OLLAMA_FIT_LAYERS", "0"))


def make_handler(state: FakeOllamaState):
    class Handler(JsonHandler):
        def do_GET(self):
            if self.path == "/api/version":
                return self._json({"version": FAKE_VERSION})
            if self.path == "/api/tags":
                return self._json({"models": [{"name": n, "model": n, "digest": d} for n, d in state.models.items()]})
            if self.path == "/api/ps":
                return self._json({"models": [{"name": n} for n in sorted(state.loaded)]})
            if self.path == "/fake/env":
                return self._json(state.env)
            self._json({"error": "not found"}, 404)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            state.requests.append((self.path, body))
            if self.path == "/api/pull":
                tag = body["model"]
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.end_headers()
                if tag.startswith("missing"):
                    self.wfile.write(b'{"error":"pull model manifest: file does not exist"}\n')
                    return
                for done in (0, 50, 100):
                    self.wfile.write(json.dumps({"status": "pulling", "total": 100, "completed": done}).encode() + b"\n")
                self.wfile.write(b'{"status":"success"}\n')
                state.models[tag] = DIGEST
                return
            if self.path == "/api/chat":
                return self._chat(body)
            if self.path == "/api/generate":
                tag = body["model"]
                if body.get("keep_alive") == 0:
                    state.loaded.discard(tag)
                else:
                    state.loaded.add(tag)
                return self._json({"model": tag, "response": "", "done": True})
            self._json({"error": "not found"}, 404)

        def _chat(self, body):
            tag = body["model"]
            if tag not in state.models:
                return self._json({"error": f"model '{tag}' not found"}, 404)
            options = body.get("options", {})
            delay = 0.0
            if state.layers:
                offload = options.get("num_gpu", max(0, state.fit_layers - 2))
                if offload > state.fit_layers:
                    return self._json({"error": "llama runner process has terminated: cudaMalloc failed: out of memory"}, 500)
                if tag not in state.loaded:
                    print(f"load_tensors: offloaded {offload}/{state.layers} layers to GPU", file=sys.stderr, flush=True)
                delay = 1 / (100 + 900 * offload / state.layers)  # 100 tok/s on the CPU, 1000 all on the GPU
            state.loaded.add(tag)
            if body.get("tools") and body["messages"][-1].get("role") != "tool":
                return self._json_line({"model": tag, "message": {"role": "assistant", "content": "",
                                                                  "tool_calls": TOOL_CALLS},
                                        "done": True, "done_reason": "stop", "eval_count": 9,
                                        "eval_duration": 30_000_000})
            words = ["The", " sky", " is", " blue."][: options.get("num_predict", 64)]
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.end_headers()
            for word in words:
                time.sleep(delay)
                self.wfile.write(json.dumps({"model": tag, "message": {"role": "assistant", "content": word},
                                             "done": False}).encode() + b"\n")
                self.wfile.flush()
            self.wfile.write(json.dumps({"model": tag, "message": {"role": "assistant", "content": ""}, "done": True,
                                         "done_reason": "stop", "prompt_eval_count": 12, "prompt_eval_duration": 3_000_000,
                                         "eval_count": len(words), "eval_duration": 40_000_000}).encode() + b"\n")

        def _json_line(self, event):
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.end_headers()
            self.wfile.write(json.dumps(event).encode() + b"\n")

    return Handler


def serve(host_port: str) -> ThreadingHTTPServer:
    host, _, port = host_port.rpartition(":")
    return ThreadingHTTPServer((host or "127.0.0.1", int(port)), make_handler(FakeOllamaState()))


def start_in_thread(port: int = 0) -> tuple[ThreadingHTTPServer, FakeOllamaState, str]:
    state = FakeOllamaState()
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state, f"http://127.0.0.1:{server.server_address[1]}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--version"]:
        print(f"ollama version is {FAKE_VERSION}")
        return 0
    if argv[:1] == ["serve"]:
        server = serve(os.environ.get("OLLAMA_HOST", "127.0.0.1:11434"))
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        return 0
    print("fake ollama: only `serve` and `--version`", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
