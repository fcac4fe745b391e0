"""weeyuga and BenchLoop side by side on the same llama-server (#27 §4).

    python3 benchmarks/bench_benchloop.py                        # SmolLM2-135M and Gemma-3-270M, written scenarios
    python3 benchmarks/bench_benchloop.py --mode medium --venv /tmp/benchloop-venv --out /tmp/side-by-side

BenchLoop (`benchloop-cli` 0.2.3, from PyPI into its own venv, created once at --venv) and weeyuga run
one after the other against one llama-server per model (launched here, 127.0.0.1, --jinja). BenchLoop
runs with HOME in the output folder (its runs go to ~/.bench-loop) and BENCHLOOP_NO_SUBMIT=1: by default
it posts every finished run, with the machine's description, to its public leaderboard.

What BenchLoop 0.2.3 measures (read from its source): each task is one non-streamed chat completion at
temperature 0; against an OpenAI-compatible server its "generation tok/s" is completion tokens over the
call's whole wall time (prefill and first token included, TTFT not measured: 0), and a task passes on its
suite's rule. weeyuga streams, and its decode rate is the tokens after the first over the time after it.
The referee is llama-server's own `eval time` line (decode only) for every request, from its log.

Prints, per model:
- speed: each tool's median decode tok/s over its speed calls beside the server's own median over the
  same calls (the log lines written while that tool ran), and the ratio tool/server;
- quality: per comparable suite (BenchLoop toolcall ↔ toolcall, instructfollow ↔ instruct, dataextract ↔
  extract, reasonmath ↔ math, coding ↔ codeexec) each tool's pass count with its 95% Wilson interval;
- the ranking of the two models by each tool's pooled pass rate, and whether the tools agree (and whether
  the difference is significant by the interval on it).
Asserts nothing. On 2 idle cores expect ~25 min for both models with the written scenarios (--mode quick);
under load, far longer.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.core.ledger import read_records  # noqa: E402
from orchestrator.core.procs import run_captured  # noqa: E402
from orchestrator.evaluate.quality.scoring import difference_interval, interval_text, wilson  # noqa: E402
from orchestrator.flows.pipeline import byo_targets  # noqa: E402
from orchestrator.measure.run import RunOptions, run_suites  # noqa: E402
from orchestrator.plan.decide import decide  # noqa: E402
from orchestrator.plan.probe import Hardware  # noqa: E402
from orchestrator.plan.profiles import load_profiles  # noqa: E402
from orchestrator.plan.rulecheck import GOLDEN_DIR  # noqa: E402
from orchestrator.runtime.launch import launch  # noqa: E402
from orchestrator.runtime.models import get_model  # noqa: E402
from orchestrator.runtime.selftest import verified_llama_server  # noqa: E402

BENCHLOOP = "benchloop-cli==0.2.3"
# BenchLoop suite -> weeyuga pack
SUITES = {"toolcall": "toolcall", "instructfollow": "instruct", "dataextract": "extract", "reasonmath": "math",
          "coding": "codeexec"}
EVAL_LINE = re.compile(r"\beval time =\s*([\d.]+) ms /\s*(\d+) tokens")


def server_decode_rates(log: Path, start: int) -> list[float]:
    """Decode tok/s of each request llama-server timed after byte `start` of its log (its `eval time` lines,
    not the `prompt eval time` ones)."""
    with log.open("rb") as fh:
        fh.seek(start)
        text = fh.read().decode("utf-8", "replace")
    rates = []
    for line in text.splitlines():
        if "prompt eval time" in line:
            continue
        found = EVAL_LINE.search(line)
        if found and float(found.group(1)) > 0 and int(found.group(2)) > 1:
            rates.append(int(found.group(2)) / (float(found.group(1)) / 1000))
    return rates


def ensure_venv(venv: Path) -> Path:
    binary = venv / "bin" / "benchloop"
    if not binary.exists():
        for argv in ([sys.executable, "-m", "venv", str(venv)], [str(venv / "bin" / "pip"), "install", "-q", BENCHLOOP]):
            done = run_captured(argv, timeout=900)
            if done.returncode:
                sys.exit(f"{' '.join(argv)} failed: {done.stderr.strip()[-400:]}")
    return binary


def run_benchloop(binary: Path, url: str, model: str, home: Path) -> dict:
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(home), "BENCHLOOP_NO_SUBMIT": "1"}
    suites = ",".join(["speed", *SUITES])
    done = run_captured([str(binary), "run", "--model", model, "--endpoint", url, "--provider", "openai_compat",
                         "--suites", suites], timeout=6 * 3600, env=env)
    runs = sorted((home / ".bench-loop" / "runs").glob("*/run.json"))
    if done.returncode or not runs:
        sys.exit(f"benchloop run failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-400:]}")
    return json.loads(runs[-1].read_text(encoding="utf-8"))


def benchloop_figures(run: dict) -> tuple[list[float], dict[str, tuple[int, int]]]:
    suites = run["suites"]
    speed = [t["metadata"]["speed_metrics"]["generation_tok_per_sec"] for t in suites.get("speed", {}).get("tasks", [])
             if t.get("metadata", {}).get("speed_metrics")]
    quality = {name: (sum(t["passed"] for t in suites[name]["tasks"]), len(suites[name]["tasks"]))
               for name in SUITES if name in suites and suites[name]["tasks"]}
    return speed, quality


def run_weeyuga(url: str, model: str, mode: str, max_tokens: int, run_dir: Path) -> tuple[list[float], dict[str, tuple[int, int]]]:
    run_suites(byo_targets(url, [model], "llamacpp", "bench:llamacpp", "bench"),
               RunOptions(phases=["hello", "quality"], runs=5, num_ctx=4096, num_predict=max_tokens, force_load=True,
                          quality={"mode": mode, "packs": list(SUITES.values()), "repeat": 1}), run_dir, "side-by-side")
    records = list(read_records(run_dir / "run.jsonl"))
    speed = [r["tokens_per_sec_after_first"] or r["tokens_per_sec"] for r in records
             if r.get("type") == "call" and r["phase"] == "hello" and r["load_state"] == "warm" and r.get("tokens_per_sec")]
    verdicts: dict[str, list[bool]] = {}
    for r in records:
        if r.get("type") == "quality":
            verdicts.setdefault(r["pack"], []).append(r["passed"])
    return speed, {pack: (sum(v), len(v)) for pack, v in verdicts.items()}


def pooled(counts: dict[str, tuple[int, int]]) -> tuple[int, int]:
    return sum(k for k, _ in counts.values()), sum(n for _, n in counts.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="smollm2-135m-instruct,gemma3-270m-it")
    parser.add_argument("--mode", default="quick", help="weeyuga's quality mode for its five comparable packs")
    parser.add_argument("--max-tokens", type=int, default=512, help="weeyuga's num_predict (BenchLoop sets its own)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "weeyuga-benchloop-venv")
    parser.add_argument("--out", type=Path, help="run folders and BenchLoop's home (default: a new temporary folder)")
    args = parser.parse_args()

    binary = ensure_venv(args.venv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-benchloop-"))
    profiles, runtime = load_profiles(), verified_llama_server("cpu")
    totals: dict[str, dict[str, tuple[int, int]]] = {"benchloop": {}, "weeyuga": {}}
    for model_id in args.models.split(","):
        model = get_model(profiles.model(model_id))
        plan = decide(Hardware.load(GOLDEN_DIR / "linux-vps-cpu-4c-8gb.json"), profiles,
                      {"model": model_id, "threads": args.threads, "num_ctx": 4096})
        log = out / model_id / "llama.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with launch(plan, runtime.binary, model.path, log, variant_args=runtime.variant_args) as running:
            print(f"\n== {model_id} on llama-server {running.engine_version}, {running.base_url}, load average "
                  f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())}")
            mark = log.stat().st_size
            bl_speed, bl_quality = benchloop_figures(run_benchloop(binary, running.base_url, model_id, out / model_id / "home"))
            bl_server = server_decode_rates(log, mark)
            mark = log.stat().st_size
            wy_speed, wy_quality = run_weeyuga(running.base_url, model_id, args.mode, args.max_tokens, out / model_id / "weeyuga")
            wy_server = server_decode_rates(log, mark)
        # the server's rates over each tool's whole session: its speed calls are a subset, so this is the referee's
        # figure at that model and machine, not call-matched
        for tool, mine, server in (("benchloop", bl_speed, bl_server), ("weeyuga", wy_speed, wy_server)):
            if mine and server:
                ratio = statistics.median(mine) / statistics.median(server)
                print(f"speed  {tool:9} median decode {statistics.median(mine):7.1f} tok/s over {len(mine)} speed calls; "
                      f"llama-server's own median {statistics.median(server):7.1f} tok/s over {len(server)} requests: "
                      f"ratio {ratio:.2f}")
        print("quality (pass / total, 95% Wilson interval):")
        for suite, pack in SUITES.items():
            print(f"  {suite:15} BenchLoop {counts_text(bl_quality.get(suite))}   |   "
                  f"{pack:9} weeyuga {counts_text(wy_quality.get(pack))}")
        totals["benchloop"][model_id], totals["weeyuga"][model_id] = pooled(bl_quality), pooled(wy_quality)
    models = args.models.split(",")
    if len(models) == 2:
        print("\nranking by pooled pass rate over the comparable suites:")
        orders = {}
        for tool, counts in totals.items():
            (a, b) = (counts[m] for m in models)
            diff = difference_interval(*a, *b) if a[1] and b[1] else None
            orders[tool] = models if (a[0] / max(a[1], 1)) >= (b[0] / max(b[1], 1)) else models[::-1]
            print(f"  {tool:9} {orders[tool][0]} ≥ {orders[tool][1]}: {models[0]} {a[0]}/{a[1]}, {models[1]} {b[0]}/{b[1]}; "
                  f"difference {'significant' if diff and diff.excludes_zero() else 'not significant'} "
                  f"({interval_text(diff.low, diff.high) if diff else '–'})")
        print(f"  the tools {'agree' if orders['benchloop'] == orders['weeyuga'] else 'DISAGREE'} on the order")
    print(f"\nrun folders, BenchLoop runs and llama-server logs under {out}")


def counts_text(counts: tuple[int, int] | None) -> str:
    if not counts:
        return "–"
    interval = wilson(*counts)
    return f"{counts[0]:3}/{counts[1]:<3} {interval_text(interval.low, interval.high):>9}"


if __name__ == "__main__":
    main()
