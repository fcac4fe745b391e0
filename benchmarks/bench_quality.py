"""Quality scores of a small model on the real llama-server (#14): per mode, the `Quality: …` line,
wall time and the host's load average, plus the negative control.

    python3 benchmarks/bench_quality.py                                  # SmolLM2-135M, quick and medium
    python3 benchmarks/bench_quality.py --model gemma3-270m --modes medium --max-tokens 128
    python3 benchmarks/bench_quality.py --modes quick --out /tmp/quality-runs   # keep the folders for fit_budget.py

Each mode is one run folder (hello with no warm repeats, to measure the decode rate that scales the
timeouts, then the quality phase) under a temporary directory (or --out). Per pack: pass rate with
its 95% Wilson interval, check-level accuracy and each tier, from run.md's table. Prints figures;
asserts nothing. `benchmarks/fit_budget.py <run folders>` fits the budget's cost model to them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.plan.decide import decide  # noqa: E402
from orchestrator.runtime.launch import launch  # noqa: E402
from orchestrator.core.ledger import read_records  # noqa: E402
from orchestrator.runtime.models import get_model  # noqa: E402
from orchestrator.flows.pipeline import byo_targets  # noqa: E402
from orchestrator.plan.probe import Hardware  # noqa: E402
from orchestrator.plan.profiles import load_profiles  # noqa: E402
from orchestrator.evaluate.quality.packs import MODES, load_packs  # noqa: E402
from orchestrator.evaluate.quality.runner import negative_control  # noqa: E402
from orchestrator.publish.report import report  # noqa: E402
from orchestrator.plan.rulecheck import GOLDEN_DIR  # noqa: E402
from orchestrator.measure.run import RunOptions, run_suites  # noqa: E402
from orchestrator.runtime.selftest import verified_llama_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--modes", default="quick,medium")
    parser.add_argument("--max-tokens", type=int, default=128, help="cap on every answer (the run's num_predict)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="where the run folders go (default: a new temporary folder)")
    args = parser.parse_args()

    control = negative_control(load_packs(MODES["full"]))
    print(f"negative control: {control.checked} junk answers judged, {len(control.passes)} passed (must be 0)")
    profiles = load_profiles()
    runtime = verified_llama_server("cpu")
    model = get_model(profiles.model(args.model))
    plan = decide(Hardware.load(GOLDEN_DIR / "linux-vps-cpu-4c-8gb.json"), profiles,
                  {"model": args.model, "threads": args.threads, "num_ctx": 4096})
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-quality-"))
    out.mkdir(parents=True, exist_ok=True)
    with launch(plan, runtime.binary, model.path, out / "llama.log", variant_args=runtime.variant_args) as running:
        print(f"llama-server {running.engine_version} ({' '.join(runtime.variant_args) or 'native'}), "
              f"--jinja in argv: {'--jinja' in running.command.argv}, {args.model}, max_tokens {args.max_tokens}")
        for mode in args.modes.split(","):
            run_dir = out / mode
            load_before = os.getloadavg()
            started = time.monotonic()
            run_suites(byo_targets(running.base_url, [args.model], "llamacpp", "bench:llamacpp", "bench"),
                       RunOptions(phases=["hello", "quality"], runs=0, num_ctx=4096, num_predict=args.max_tokens,
                                  force_load=True, quality={"mode": mode, "packs": None, "repeat": 1}), run_dir, f"bench-{mode}")
            wall = time.monotonic() - started
            done = report(run_dir, plots=False)
            summary = done.metadata["quality"][0]
            modes = {}
            for failure in summary["failures"]:
                modes[failure["failure_mode"]] = modes.get(failure["failure_mode"], 0) + 1
            seconds: dict[str, float] = {}
            for verdict in read_records(run_dir / "run.jsonl"):
                if verdict["type"] == "quality":
                    seconds[verdict["pack"]] = round(seconds.get(verdict["pack"], 0) + (verdict["latency_s"] or 0))
            print(f"{mode}: {summary['summary']}\n  wall {wall:.0f} s (hello + quality; seconds per pack {seconds}), load average before "
                  f"{'/'.join(f'{x:.2f}' for x in load_before)}, after {'/'.join(f'{x:.2f}' for x in os.getloadavg())}; "
                  f"failure modes {modes}; run folder {run_dir}")
            table = done.markdown.split("## Quality", 1)[1].split("\n\n")[2]
            print(table)


if __name__ == "__main__":
    main()
