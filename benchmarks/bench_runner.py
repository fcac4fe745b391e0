"""Runner figures (#3): client SSE ingest rate on one core, and client-vs-server decode rate agreement.

    python3 benchmarks/bench_runner.py            # both; the second builds/uses the cached llama-server
    python3 benchmarks/bench_runner.py --ingest   # only the synthetic ingest rate

Prints figures; asserts nothing (this shared machine is noisy).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.measure.client import CallRequest, stream_chat  # noqa: E402

SERVER = r'''
import socket, sys, json
chunk = ("data: " + json.dumps({"id": "x", "object": "chat.completion.chunk", "model": "m",
         "choices": [{"index": 0, "delta": {"content": " token"}, "finish_reason": None}]}) + "\n\n").encode()
n = int(sys.argv[1])
tail = ("data: " + json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}) + "\n\n"
        + "data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": n}}) + "\n\n"
        + "data: [DONE]\n\n").encode()
body = chunk * n + tail
head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); srv.bind(("127.0.0.1", 0)); srv.listen(8)
print(srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head_part, _, rest = data.partition(b"\r\n\r\n")
    length = int([l for l in head_part.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
    while len(rest) < length:
        rest += conn.recv(65536)
    conn.sendall(head + body)
    conn.close()
'''


def ingest(tokens: int = 200_000, repeats: int = 3) -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(tokens)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        rates, cpu_rates = [], []
        for _ in range(repeats):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            result = stream_chat(CallRequest(f"http://127.0.0.1:{port}", "openai", "m",
                                             [{"role": "user", "content": "x"}], tokens, 0.0), "openai")
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            assert result.error is None and result.completion_tokens == tokens, result.error
            rates.append(tokens / wall)
            cpu_rates.append(tokens / cpu)
        print(f"SSE ingest: {statistics.median(cpu_rates):,.0f} tokens per client CPU-second "
              f"({statistics.median(rates):,.0f} tok/s wall, server in another process), {tokens:,} chunks x {repeats}")
    finally:
        server.kill()
        server.wait()


def agreement() -> None:
    from orchestrator.plan.decide import decide
    from orchestrator.runtime.install import install_llama_cpp
    from orchestrator.runtime.launch import launch
    from orchestrator.runtime.models import get_model
    from orchestrator.plan.probe import Hardware
    from orchestrator.plan.profiles import load_profiles
    from orchestrator.plan.rulecheck import GOLDEN_DIR
    from orchestrator.measure.suites import load_prompts

    profiles = load_profiles()
    server = install_llama_cpp("cpu")
    model = get_model(profiles.model(profiles.embedded_default))
    plan = decide(Hardware.load(GOLDEN_DIR / "linux-vps-cpu-4c-8gb.json"), profiles,
                  {"model": profiles.embedded_default, "threads": min(2, os.cpu_count() or 1), "num_ctx": 2048})
    gaps = []
    with launch(plan, server.binary, model.path, Path("/tmp/weeyuga-bench-llama.log")) as running:
        for prompt in list(load_prompts().values())[1:]:
            for _ in range(5):
                r = stream_chat(CallRequest(running.base_url, "openai", plan.model,
                                            [{"role": "user", "content": prompt.text}], 256, 0.1), "llamacpp")
                gaps.append((abs(r.tokens_per_sec - r.server_tokens_per_sec) / r.server_tokens_per_sec,
                             r.tokens_per_sec, r.server_tokens_per_sec, r.completion_tokens))
    rel = [g[0] for g in gaps]
    print(f"client vs llama-server decode rate on {plan.model}: median |client - server| / server = "
          f"{statistics.median(rel) * 100:.2f}% (max {max(rel) * 100:.2f}%, n={len(rel)}); "
          f"median client {statistics.median(g[1] for g in gaps):.1f} tok/s, server {statistics.median(g[2] for g in gaps):.1f} tok/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ingest", action="store_true", help="only the synthetic ingest figure")
    args = parser.parse_args()
    ingest()
    if not args.ingest:
        agreement()
