"""A FAKE llama-server for the self-test and fallback tests: never evidence about the real one.

Run as a program with llama-server's flags. `behaviour.json` beside the program says how this
"build" behaves: it crashes with a signal (printing backtrace-like lines first, as llama.cpp does)
unless one of `ok_args` is on its command line or one of `ok_flags` was among its build's cmake
flags; otherwise it serves /health and a non-streamed /v1/chat/completions with llama.cpp-style
`timings`. `crash_on` is "startup" or "first_call"; `answer` and `tokens_per_sec` shape the reply.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from http.server import ThreadingHTTPServer
from pathlib import Path

from tests.fakes.http import JsonHandler


def install(directory: Path, cmake_flags: list[str], **behaviour) -> Path:
    """Write a fake build into `directory/bin/llama-server`; returns the program's path."""
    program = directory / "bin" / "llama-server"
    program.parent.mkdir(parents=True, exist_ok=True)
    repo = str(Path(__file__).resolve().parents[2])
    program.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {repo!r})\n"
                       "from tests.fakes.llama_server import main\nmain(sys.argv)\n")
    program.chmod(0o755)
    (program.parent / "behaviour.json").write_text(json.dumps({"cmake_flags": cmake_flags, **behaviour}))
    return program


def crash(sig: int) -> None:
    print("ggml_backend_cpu: using repacked weights", flush=True)
    print("#0  0x00007f3a2c1d4e10 in ggml_backend_amx_mul_mat () from libggml-cpu.so", flush=True)
    print("#1  0x00007f3a2c1a0b22 in ggml_graph_compute_thread ()", flush=True)
    os.kill(os.getpid(), sig)


def main(argv: list[str]) -> None:
    behaviour = json.loads((Path(argv[0]).parent / "behaviour.json").read_text())
    healthy = (any(a in argv for a in behaviour.get("ok_args", []))
               or any(f in " ".join(behaviour["cmake_flags"]) for f in behaviour.get("ok_flags", []))
               or behaviour.get("always_ok", False))
    sig = getattr(signal, behaviour.get("signal", "SIGSEGV"))
    if not healthy and behaviour.get("crash_on", "startup") == "startup":
        crash(sig)
    port = int(argv[argv.index("--port") + 1])
    answer = behaviour.get("answer", "Red, green and blue are the primary colours of light.")
    rate = behaviour.get("tokens_per_sec", 50.0)

    class Handler(JsonHandler):
        def do_GET(self):
            answers = {"/health": {"status": "ok"}, "/v1/models": {"object": "list", "data": [{"id": "self-test"}]}}
            self._json(answers.get(self.path, {"error": "not found"}), 200 if self.path in answers else 404)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if not healthy:
                crash(sig)
            n = body.get("max_tokens", 16)
            self._json({"choices": [{"index": 0, "finish_reason": "length",
                                     "message": {"role": "assistant", "content": answer}}],
                        "timings": {"prompt_n": 12, "prompt_ms": 5.0, "predicted_n": n,
                                    "predicted_ms": 1000.0 * n / rate, "predicted_per_second": rate}})

    print("main: server is listening", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
