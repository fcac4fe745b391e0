"""Cost of the agent suite's sandbox and gate per task (#15): first the overhead of one command
through the sandbox, contained (bwrap, #25) side by side with the old uncontained process sandbox
(unshare -rn) and a bare process group; then, for every task, the time to prepare a fresh
ProcessSandbox from the seed, one test run on the seed, and the 3-run gate on the reference
solution, and the medians per language.

    python3 benchmarks/bench_agent_gate.py [repeats]     # default 3
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.evaluate.agent import load_tasks  # noqa: E402
from orchestrator.evaluate.sandbox.contain import Containment, probe_containment, uncontained  # noqa: E402
from orchestrator.evaluate.sandbox.process import ProcessSandbox  # noqa: E402
from orchestrator.evaluate.agent.gate import run_gate, verify_once  # noqa: E402

SOLUTIONS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "agent_solutions"


def measure(task) -> dict[str, float]:
    started = time.monotonic()
    sandbox = ProcessSandbox()
    sandbox.prepare(task)
    prepared = time.monotonic()
    verify_once(sandbox, task, 60)
    seed_run = time.monotonic()
    folder = SOLUTIONS / task.id
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            sandbox.write_file(path.relative_to(folder).as_posix(), path.read_bytes())
    gate = run_gate(sandbox, task, 60)
    gated = time.monotonic()
    sandbox.destroy()
    return {"prepare_destroy_s": prepared - started + (time.monotonic() - gated), "seed_run_s": seed_run - prepared,
            "gate_3_runs_s": gated - seed_run, "gate_passed": float(gate.passed), "net_isolated": float(sandbox.net_isolated)}


def command_overhead(task, containment, repeats: int = 20) -> float:
    """Median wall time of /bin/true through the sandbox: process group, rlimits, and its containment."""
    sandbox = ProcessSandbox(containment=containment)
    sandbox.prepare(task)
    times = [sandbox.run(["/bin/true"], 10).duration_s for _ in range(repeats)]
    sandbox.destroy()
    return statistics.median(times)


def main(repeats: int) -> None:
    tasks = load_tasks()
    contained, old = probe_containment(), uncontained()
    bare = Containment("none", False, "a process group with rlimits only")
    figures = {name: command_overhead(tasks[0], how) for name, how in
               (("contained", contained), ("old (unshare -rn)", old), ("bare", bare))}
    print(f"one command through the sandbox ({contained.detail}):")
    for name, seconds in figures.items():
        print(f"  {name:18} {seconds * 1000:6.1f} ms  ({seconds / figures['old (unshare -rn)']:.2f}x the old)")
    per_language: dict[str, list[dict[str, float]]] = defaultdict(list)
    for task in tasks:
        runs = [measure(task) for _ in range(repeats)]
        median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        per_language[task.language].append(median)
        print(f"{task.id:20} prepare+destroy {median['prepare_destroy_s']:.3f}s  one run {median['seed_run_s']:.2f}s  "
              f"gate (3 runs) {median['gate_3_runs_s']:.2f}s  passed={bool(median['gate_passed'])}")
    print()
    for language, rows in sorted(per_language.items()):
        print(f"{language:11} median per task: prepare+destroy {statistics.median(r['prepare_destroy_s'] for r in rows):.3f}s, "
              f"one test run {statistics.median(r['seed_run_s'] for r in rows):.2f}s, "
              f"gate {statistics.median(r['gate_3_runs_s'] for r in rows):.2f}s "
              f"(net isolated: {bool(rows[0]['net_isolated'])})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
