"""Peak memory and time of the run-folder readers on a huge ledger (#25 §3): `quality inspect`, `quality
rescore`, `compare` and `report` on a copy of submissions/EXAMPLE whose run.jsonl holds N extra call lines
(the audit's case: 1e6 lines, 573 MB, took the catalogue to 9.4 GB). Each command runs in its own Python;
its peak RSS is its own (ru_maxrss). The quality readers keep only quality lines; report keeps every record.

    python3 benchmarks/bench_readers.py [N]     # default 200000 lines (about 120 MB): a few minutes
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = next((ROOT / "submissions" / "EXAMPLE").glob("*/run-*"))
MEASURED = ("import resource, sys; from orchestrator.cli import main; code = main(sys.argv[1:]); "
            "print(code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")


def grown_run(folder: Path, lines: int) -> Path:
    run = folder / "alice" / "mac-m1-8gb" / EXAMPLE.name
    shutil.copytree(EXAMPLE, run)
    records = (run / "run.jsonl").read_text().splitlines()
    call = next(line for line in records if json.loads(line)["type"] == "call")
    with open(run / "run.jsonl", "w") as out:  # meta, the extra calls, then the rest: still a valid ledger
        out.write(records[0] + "\n" + (call + "\n") * lines + "\n".join(records[1:]) + "\n")
    return run


def measure(argv: list[str]) -> tuple[int, float, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURED, *argv], cwd=ROOT, capture_output=True, text=True)
    code, peak_kb = done.stderr.strip().splitlines()[-1].split()
    return int(code), int(peak_kb) / 1024, time.perf_counter() - started


def main(lines: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = grown_run(Path(tmp), lines)
        size = (run / "run.jsonl").stat().st_size / 2**20
        print(f"run.jsonl: {lines} extra call lines, {size:.0f} MB")
        for name, argv in {"quality inspect": ["quality", "inspect", str(run)],
                           "quality rescore": ["quality", "rescore", str(run)],
                           "compare": ["compare", str(run), str(run)],
                           "report": ["report", str(run), "--no-plots"]}.items():
            code, peak_mb, seconds = measure(argv)
            print(f"{name:16s} exit {code}  peak RSS {peak_mb:7.0f} MB  {seconds:6.1f} s  ({peak_mb / size:.2f} MB per MB of ledger)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
