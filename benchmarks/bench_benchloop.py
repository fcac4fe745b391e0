"""weeyuga and BenchLoop side by side on the same llama-server (#27 §4).

    python3 benchmarks/bench_benchloop.py                        # SmolLM2-135M and Gemma-3-270M, written scenarios
    python3 benchmarks/bench_benchloop.py --mode medium --venv /tmp/benchloop-venv --out /tmp/side-by-side
    python3 benchmarks/bench_benchloop.py --analyse --out /tmp/side-by-side   # read an earlier run again

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
- speed, call-matched: each tool's rate for a request over llama-server's own decode rate for that same
  request (weeyuga: the server timings its ledger keeps per call; BenchLoop: its speed trials matched in
  order to the server's log lines with the same token count), the median ratio and its range;
- quality: per comparable suite (BenchLoop toolcall ↔ toolcall, instructfollow ↔ instruct, dataextract ↔
  extract, reasonmath ↔ math) each tool's pass count with its 95% Wilson interval (not coding ↔ codeexec:
  BenchLoop runs the model's code on the host, uncontained);
- the ranking of the two models by each tool's pooled pass rate, and whether the tools agree (and whether
  the difference is significant by the interval on it).
Asserts nothing. On 2 idle cores about an hour for both models (BenchLoop lets each answer run to 2048
tokens; a small model rambles); under load, far longer.
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
# (BenchLoop's coding suite is left out: it runs the model's code with subprocess on the host, as the
# user, and weeyuga runs model-written code only inside its sandbox.)
SUITES = {"toolcall": "toolcall", "instructfollow": "instruct", "dataextract": "extract", "reasonmath": "math"}
EVAL_LINE = re.compile(r"\beval time =\s*([\d.]+) ms /\s*(\d+) tokens")


def server_decodes(log: Path, start: int, end: int | None = None) -> list[tuple[int, float]]:
    """(tokens, decode tok/s) of each request llama-server timed between bytes `start` and `end` of its log,
    in order (its `eval time` lines, not the `prompt eval time` ones)."""
    with log.open("rb") as fh:
        fh.seek(start)
        text = fh.read(None if end is None else end - start).decode("utf-8", "replace")
    decodes = []
    for line in text.splitlines():
        if "prompt eval time" in line:
            continue
        found = EVAL_LINE.search(line)
        if found and float(found.group(1)) > 0 and int(found.group(2)) > 1:
            decodes.append((int(found.group(2)), int(found.group(2)) / (float(found.group(1)) / 1000)))
    return decodes


def matched(calls: list[tuple[int, float]], server: list[tuple[int, float]]) -> list[float]:
    """tool/server decode ratio of each of a tool's calls, matched in order to the next server request that
    generated as many tokens (a request the tool did not time, such as a warm-up, is passed over)."""
    ratios, at = [], 0
    for tokens, rate in calls:
        found = next((i for i in range(at, len(server)) if server[i][0] == tokens), None)
        if found is None:
            continue
        ratios.append(rate / server[found][1])
        at = found + 1
    return ratios


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


def benchloop_figures(run: dict) -> tuple[list[tuple[int, float]], dict[str, tuple[int, int]]]:
    """(tokens, its generation tok/s) of every speed trial in the order it ran (warm-ups too: each is a request),
    and pass counts per comparable suite."""
    suites = run["suites"]
    speed = [(t["tokens_generated"], t["speed_metrics"]["generation_tok_per_sec"])
             for task in suites.get("speed", {}).get("tasks", []) for t in task.get("metadata", {}).get("trials", [])
             if t.get("speed_metrics") and t.get("tokens_generated")]
    quality = {name: (sum(t["passed"] for t in suites[name]["tasks"]), len(suites[name]["tasks"]))
               for name in SUITES if name in suites and suites[name]["tasks"]}
    return speed, quality


def run_weeyuga(url: str, model: str, mode: str, max_tokens: int, run_dir: Path) -> None:
    run_suites(byo_targets(url, [model], "llamacpp", "bench:llamacpp", "bench"),
               RunOptions(phases=["hello", "quality"], runs=5, num_ctx=4096, num_predict=max_tokens, force_load=True,
                          quality={"mode": mode, "packs": list(SUITES.values()), "repeat": 1}), run_dir, "side-by-side")


def weeyuga_figures(run_dir: Path) -> tuple[list[tuple[float, float]], list[float], dict[str, tuple[int, int]]]:
    """(its decode rate after the first token, the server's own rate for the same call) of each warm speed
    call, the server's rates of all its calls, and pass counts per pack, from its ledger."""
    records = list(read_records(run_dir / "run.jsonl"))
    calls = [r for r in records if r.get("type") == "call" and not r.get("error")]
    speed = [(r["tokens_per_sec_after_first"] or r["tokens_per_sec"], r["server_tokens_per_sec"]) for r in calls
             if r["phase"] == "hello" and r["load_state"] == "warm" and r.get("tokens_per_sec") and r.get("server_tokens_per_sec")]
    verdicts: dict[str, list[bool]] = {}
    for r in records:
        if r.get("type") == "quality":
            verdicts.setdefault(r["pack"], []).append(r["passed"])
    return speed, [r["server_tokens_per_sec"] for r in calls if r.get("server_tokens_per_sec")], \
        {pack: (sum(v), len(v)) for pack, v in verdicts.items()}


def pooled(counts: dict[str, tuple[int, int]]) -> tuple[int, int]:
    return sum(k for k, _ in counts.values()), sum(n for _, n in counts.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="smollm2-135m-instruct,gemma3-270m")
    parser.add_argument("--mode", default="quick", help="weeyuga's quality mode for its comparable packs")
    parser.add_argument("--max-tokens", type=int, default=512, help="weeyuga's num_predict (BenchLoop sets its own)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "weeyuga-benchloop-venv")
    parser.add_argument("--out", type=Path, help="run folders and BenchLoop's home (default: a new temporary folder)")
    parser.add_argument("--analyse", action="store_true", help="only read what an earlier run left in --out")
    args = parser.parse_args()
    models = args.models.split(",")
    if args.analyse:
        if not args.out or not args.out.is_dir():
            sys.exit("--analyse needs --out, the folder of an earlier run")
    else:
        args.out = run_both(args, models)
    analyse(args.out, models)


def run_both(args: argparse.Namespace, models: list[str]) -> Path:
    """Both tools against one llama-server per model; the log offsets where each tool's session began and ended."""
    binary = ensure_venv(args.venv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-benchloop-"))
    profiles, runtime = load_profiles(), verified_llama_server("cpu")
    for model_id in models:
        model = get_model(profiles.model(model_id))
        plan = decide(Hardware.load(GOLDEN_DIR / "linux-vps-cpu-4c-8gb.json"), profiles,
                      {"model": model_id, "threads": args.threads, "num_ctx": 4096})
        log = out / model_id / "llama.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with launch(plan, runtime.binary, model.path, log, variant_args=runtime.variant_args) as running:
            print(f"== {model_id} on llama-server {running.engine_version}, {running.base_url}, load average "
                  f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
            marks = {"benchloop": [log.stat().st_size]}
            run_benchloop(binary, running.base_url, model_id, out / model_id / "home")
            marks["benchloop"].append(log.stat().st_size)
            run_weeyuga(running.base_url, model_id, args.mode, args.max_tokens, out / model_id / "weeyuga")
            marks["weeyuga"] = [marks["benchloop"][1], log.stat().st_size]
        (out / model_id / "marks.json").write_text(json.dumps(marks))
    return out


def analyse(out: Path, models: list[str]) -> None:
    totals: dict[str, dict[str, tuple[int, int]]] = {"benchloop": {}, "weeyuga": {}}
    for model_id in models:
        folder = out / model_id
        log = folder / "llama.log"
        marks_file = folder / "marks.json"
        # a run from before marks.json: BenchLoop ran first, from the server's start
        marks = json.loads(marks_file.read_text()) if marks_file.is_file() else {"benchloop": [0, None]}
        bl_calls, bl_quality = benchloop_figures(
            json.loads(sorted((folder / "home" / ".bench-loop" / "runs").glob("*/run.json"))[-1].read_text(encoding="utf-8")))
        wy_calls, wy_server_all, wy_quality = weeyuga_figures(folder / "weeyuga")
        bl_server = server_decodes(log, *marks["benchloop"])
        print(f"\n== {model_id}")
        bl_ratios = matched(bl_calls, bl_server)
        print(f"speed  benchloop median {statistics.median(r for _, r in bl_calls):7.1f} tok/s over {len(bl_calls)} speed "
              f"requests; call-matched to llama-server's own decode rate for the same request: median ratio "
              f"{statistics.median(bl_ratios):.2f} (range {min(bl_ratios):.2f}..{max(bl_ratios):.2f}, {len(bl_ratios)} matched)")
        wy_ratios = [mine / server for mine, server in wy_calls]
        print(f"speed  weeyuga   median {statistics.median(m for m, _ in wy_calls):7.1f} tok/s over {len(wy_calls)} warm speed "
              f"calls; call-matched (the ledger's server timings): median ratio {statistics.median(wy_ratios):.3f} "
              f"(range {min(wy_ratios):.3f}..{max(wy_ratios):.3f})")
        print(f"       (not call-matched: the server's median over all of weeyuga's calls, quality included, "
              f"{statistics.median(wy_server_all):.1f}; over all of BenchLoop's {statistics.median(r for _, r in bl_server):.1f})")
        print("quality (pass / total, 95% Wilson interval):")
        for suite, pack in SUITES.items():
            print(f"  {suite:15} BenchLoop {counts_text(bl_quality.get(suite))}   |   "
                  f"{pack:9} weeyuga {counts_text(wy_quality.get(pack))}")
        totals["benchloop"][model_id], totals["weeyuga"][model_id] = pooled(bl_quality), pooled(wy_quality)
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
