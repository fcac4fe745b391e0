"""What weeyuga's measurement costs and how true it is, on this machine (#16 §5). Four figures:

1. client ingest rate: streamed tokens per client CPU-second against the FAKE OpenAI SSE server
   (tests/fakes, in its own process so its CPU is not counted) through one httpx client, as a run's
   calls go: a new connection per call, since a stream is closed once its answer is whole (reusing
   llama-server 11434's connections failed 2 calls in 10 with "disconnected") (target >= 50,000);
2. fidelity on the real llama-server (the cached, self-tested build with its variant flags) and
   SmolLM2: median and p90 of |client - server| / server decode rate on warm calls of >= 32 tokens
   for `tokens_per_sec` (the methodology's) and on calls of >= 8 tokens for
   `tokens_per_sec_after_first` (the runtime's own interval), and TTFT - server prompt time
   (targets <= 2%, <= 2%, <= 15 ms);
3. end to end: weeyuga's warm decode tok/s of P-HARD through its managed llama-server divided by
   `llama-bench` tg128 at depth = the call's prompt tokens, same model, threads and variant flags
   (llama-bench built beside llama-server by install_tool), measured alternately: call, bench,
   call, ... (target >= 0.95). The server's own rate splits the gap: client/server is the
   harness's part, server/bench the server's (sampling, its loop); a leaner sampler chain, sent per
   request, is measured in the same alternation;
4. decision latency: `weeyuga decide` (probe + decide, interpreter start included) wall time, and
   probe() + decide() in process (target <= 2 s).

    nice python3 benchmarks/bench_measurement.py [--rounds 6] [--threads 2] [--model ID]

Prints figures and the load average around each; asserts nothing (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orchestrator.measure.client import CallRequest, CallResult, stream_chat  # noqa: E402
from orchestrator.core.procs import kill_group, run_captured, spawn_options  # noqa: E402

FAKE_SERVER = ("import sys, time; sys.path.insert(0, {repo!r}); "
               "from tests.fakes.openai_server import FakeServerState, start_in_thread; "
               "_, _, url = start_in_thread(FakeServerState(chunk_delay_s=0.0)); print(url, flush=True); time.sleep(3600)")
# The server's default chain is penalties;dry;top_n_sigma;top_k;typ_p;top_p;min_p;xtc;temperature:
# at its defaults all but top_k, top_p, min_p and temperature pass every candidate through unchanged.
LEAN_SAMPLERS = {"samplers": ["top_k", "temperature"]}


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    return ordered[low] + (ordered[min(low + 1, len(ordered) - 1)] - ordered[low]) * (pos - low)


# ------------------------------------------------------------------------------------------------
# 1. client ingest rate


def ingest(calls: int) -> None:
    import httpx

    print(f"[1] client ingest rate ({load()})")
    server = subprocess.Popen([sys.executable, "-c", FAKE_SERVER.format(repo=str(REPO))], stdout=subprocess.PIPE,
                              text=True, **spawn_options())
    try:
        url = server.stdout.readline().strip()
        request = CallRequest(url, "openai", "fake", [{"role": "user", "content": "Tell me a story"}], 200, 0.1,
                              headers={"X-Weeyuga-Test": "true"})
        with httpx.Client() as http:
            stream_chat(request, "fake", http)  # connection and code paths warm
            per_round = []
            for _ in range(3):
                tokens, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
                for _ in range(calls):
                    result = stream_chat(request, "fake", http)
                    assert result.error is None, result.error
                    tokens += result.completion_tokens
                per_round.append((tokens / (time.process_time() - cpu0), tokens / (time.perf_counter() - wall0)))
        cpu_rate = statistics.median(r[0] for r in per_round)
        print(f"    {cpu_rate:,.0f} streamed tokens per client CPU-second (target >= 50,000; "
              f"{statistics.median(r[1] for r in per_round):,.0f} tok/s wall, server in another process; "
              f"{calls} calls x 200 tokens, median of 3) ({load()})")
    finally:
        kill_group(server)
        server.wait()


# ------------------------------------------------------------------------------------------------
# 4. decision latency


def decision_latency(repeats: int):
    from orchestrator.plan.decide import decide
    from orchestrator.plan.probe import ProbeSources, probe
    from orchestrator.plan.profiles import load_profiles

    print(f"[4] decision latency ({load()})")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = run_captured([sys.executable, "-m", "orchestrator.cli", "decide"], timeout=120, cwd=REPO, env=env)
        walls.append(time.perf_counter() - started)
        assert done.returncode == 0, done.stderr
    in_process, without_bandwidth = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        hardware = probe()
        decide(hardware, load_profiles())
        in_process.append(time.perf_counter() - started)
        started = time.perf_counter()
        decide(probe(ProbeSources.real(measure_bandwidth=False)), load_profiles())
        without_bandwidth.append(time.perf_counter() - started)
    print(f"    `weeyuga decide` (new interpreter, probe + decide): median {statistics.median(walls):.2f} s, "
          f"max {max(walls):.2f} s over {repeats} (target <= 2 s); in process: probe() + decide() median "
          f"{statistics.median(in_process):.2f} s, of which all but {statistics.median(without_bandwidth):.2f} s is "
          f"the host memory-bandwidth test ({load()})")
    return hardware


# ------------------------------------------------------------------------------------------------
# 2 and 3. fidelity and end to end on the real llama-server


def llama_bench(program: str, model_path: str, threads: int, depth: int, flags: list[str], repetitions: int) -> float:
    """tg128 at `depth`: decode tokens per second, llama-bench's own mean over its repetitions."""
    argv = [program, "-m", model_path, "-p", "0", "-n", "128", "-d", str(depth), "-t", str(threads),
            "-r", str(repetitions), "-o", "json", *flags]
    done = run_captured(argv, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"llama-bench failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    (test,) = json.loads(done.stdout)
    return test["avg_ts"]


def real_server(rounds: int, threads: int, model_id: str | None, hardware, bench_repetitions: int) -> None:
    from orchestrator.plan.decide import decide
    from orchestrator.runtime.install import install_tool, tool_variant_args
    from orchestrator.runtime.launch import launch
    from orchestrator.runtime.models import get_model
    from orchestrator.plan.profiles import load_profiles
    from orchestrator.measure.suites import load_prompts
    from orchestrator.runtime.selftest import verified_llama_server

    profiles = load_profiles()
    runtime = verified_llama_server()
    bench = install_tool(runtime, "llama-bench")
    bench_flags = tool_variant_args(runtime, "llama-bench")
    plan = decide(hardware, profiles, {"model": model_id or profiles.embedded_default, "threads": threads,
                                       "num_ctx": 2048, "ngl": 0})
    model = get_model(profiles.model(plan.model))
    prompts = load_prompts()
    print(f"[2, 3] {plan.model} on llama-server {runtime.version} (variant flags {list(runtime.variant_args)}; "
          f"llama-bench {bench_flags}), {threads} threads ({load()})")

    def ask(running, prompt_id: str, max_tokens: int, fields: dict | None = None) -> CallResult:
        request = CallRequest(running.base_url, "openai", plan.model,
                              [{"role": "user", "content": prompts[prompt_id].text}], max_tokens, plan.temperature,
                              request_fields=fields or {})
        result = stream_chat(request, "llamacpp", http)
        assert result.error is None, result.error
        return result

    import httpx

    calls: list[CallResult] = []  # every warm call, for the fidelity figures
    default_rates, lean_rates, bench_rates = [], [], []
    depth = None
    load_seen = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as scratch, httpx.Client() as http, \
            launch(plan, runtime.binary, str(model.path), Path(scratch) / "llama-server.log",
                   variant_args=runtime.variant_args) as running:
        ask(running, "P-HARD", 16)  # warm: weights paged in, first-call setup done
        for round_number in range(rounds):
            # the end-to-end arms: P-HARD with the plan's settings, with the lean sampler chain, and
            # llama-bench; the order reverses every round, so a drifting load weighs on each alike
            arms = ["default", "lean", "bench"]
            for arm in arms if round_number % 2 == 0 else arms[::-1]:
                if arm == "bench":  # the first round has set `depth`: it runs llama-bench last
                    bench_rates.append(llama_bench(bench, str(model.path), threads, depth, bench_flags, bench_repetitions))
                    continue
                hard = ask(running, "P-HARD", 128, LEAN_SAMPLERS if arm == "lean" else None)
                calls.append(hard)
                (lean_rates if arm == "lean" else default_rates).append(hard)
                depth = hard.prompt_tokens
            print(f"    round {round_number + 1}: server {default_rates[-1].server_tokens_per_sec:.1f}, lean chain "
                  f"{lean_rates[-1].server_tokens_per_sec:.1f}, llama-bench {bench_rates[-1]:.1f} tok/s ({load()})")
            # shorter answers for the fidelity figures: >= 32 tokens, and 8 to 31
            calls += [ask(running, "P-MEDIUM", 64), ask(running, "P-MEDIUM", 8), ask(running, "P-EASY", 16)]
            load_seen.append(os.getloadavg()[0])
    server_rates = [r.server_tokens_per_sec for r in default_rates]

    # fidelity
    long_calls = [c for c in calls if c.completion_tokens >= 32 and c.server_tokens_per_sec]
    gap = lambda c, rate: abs(rate - c.server_tokens_per_sec) / c.server_tokens_per_sec  # noqa: E731
    methodology = [gap(c, c.tokens_per_sec) for c in long_calls]
    after_first_long = [gap(c, c.tokens_per_sec_after_first) for c in long_calls]
    eight = [c for c in calls if c.completion_tokens >= 8 and c.server_tokens_per_sec]
    after_first = [gap(c, c.tokens_per_sec_after_first) for c in eight]
    methodology_eight = [gap(c, c.tokens_per_sec) for c in eight]
    ttft = [c.first_delta_ms - c.server_prompt_ms for c in calls if c.server_prompt_ms is not None]
    pct = lambda values, q: f"{quantile(values, q) * 100:.2f}%"  # noqa: E731
    print(f"    fidelity, warm calls >= 32 tokens (n={len(long_calls)}): tokens_per_sec |client - server| / server "
          f"median {pct(methodology, 0.5)}, p90 {pct(methodology, 0.9)}; tokens_per_sec_after_first median "
          f"{pct(after_first_long, 0.5)}, p90 {pct(after_first_long, 0.9)} (targets <= 2%)")
    print(f"    fidelity, every call >= 8 tokens (n={len(eight)}, {min(c.completion_tokens for c in eight)}-"
          f"{max(c.completion_tokens for c in eight)} tokens): tokens_per_sec_after_first median {pct(after_first, 0.5)}, "
          f"p90 {pct(after_first, 0.9)}, max {max(after_first) * 100:.2f}% (target p90 <= 2%); tokens_per_sec "
          f"median {pct(methodology_eight, 0.5)}, p90 {pct(methodology_eight, 0.9)}")
    print(f"    TTFT - server prompt time (n={len(ttft)}): median {statistics.median(ttft):+.1f} ms, "
          f"p90 {quantile(ttft, 0.9):+.1f} ms (target <= 15 ms); response headers at a median "
          f"{statistics.median(c.ttfb_ms for c in calls):.1f} ms, first token "
          f"{statistics.median(c.first_delta_ms - c.ttfb_ms for c in calls):.1f} ms after them")

    # end to end
    bench_tg = statistics.median(bench_rates)
    client = statistics.median(r.tokens_per_sec for r in default_rates)
    client_after_first = statistics.median(r.tokens_per_sec_after_first for r in default_rates)
    server = statistics.median(server_rates)
    lean_server = statistics.median(r.server_tokens_per_sec for r in lean_rates)
    lean_client = statistics.median(r.tokens_per_sec for r in lean_rates)
    print(f"    end to end, P-HARD 128 tokens at depth {depth} vs llama-bench tg128 -d {depth}, {rounds} alternations: "
          f"llama-bench {bench_tg:.1f} tok/s; weeyuga tokens_per_sec {client:.1f} ({client / bench_tg:.3f} of "
          f"llama-bench), tokens_per_sec_after_first {client_after_first:.1f} ({client_after_first / bench_tg:.3f}) "
          f"(target >= 0.95)")
    print(f"    where the gap is: client / server {client_after_first / server:.3f} (the harness), server / llama-bench "
          f"{server / bench_tg:.3f} (llama-server's own: sampling, its loop, HTTP); with the lean sampler chain "
          f"{LEAN_SAMPLERS}: server {lean_server:.1f} tok/s ({lean_server / bench_tg:.3f} of llama-bench, "
          f"{lean_server / server - 1:+.1%} vs the default chain), tokens_per_sec {lean_client:.1f} "
          f"({lean_client / bench_tg:.3f})")
    print(f"    load average (1 min) during [2, 3]: {min(load_seen):.2f}-{max(load_seen):.2f} ({load()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="alternations on the real server (default 6)")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--model", help="catalogue id (default: the embedded default, SmolLM2)")
    parser.add_argument("--ingest-calls", type=int, default=300)
    parser.add_argument("--bench-repetitions", type=int, default=2, help="llama-bench -r per alternation (default 2)")
    parser.add_argument("--skip-real", action="store_true", help="only figures 1 and 4")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # figures as they come, also into a file
    print(f"bench_measurement on {os.cpu_count()} CPUs ({load()})")
    ingest(args.ingest_calls)
    hardware = decision_latency(3)
    if not args.skip_real:
        real_server(args.rounds, args.threads, args.model, hardware, args.bench_repetitions)


if __name__ == "__main__":
    main()
