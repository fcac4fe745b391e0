"""`weeyuga review` (#26 §1): the time one review takes, by check, and the duplicate scan against a
submissions folder of N runs.

    python3 benchmarks/bench_review.py [N]      # default 2000 catalogued runs for the duplicate scan

The reviewed folder is tests/test_review.py's genuine run (weeyuga against the FAKE server, a real
clock: hello, 5q, parallel_same and the toolcall pack; about 40 calls). The catalogue is N copies of
it under other run ids, their call lines changed so none is a duplicate (the scan reads every one).
Prints each check's seconds (the report regeneration draws the plots: most of a review), the whole
review, and the duplicate scan's seconds per 1,000 catalogued runs. The load average is printed
before and after: on a shared machine the times depend on it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.measure import run as run_module  # noqa: E402
from orchestrator.publish.review import CHECKS, duplicates, form, review  # noqa: E402
from tests.test_review import speed_and_quality_run  # noqa: E402


def timed(what, fn):
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    print(f"{what:<34} {seconds:8.3f} s")
    return result, seconds


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print(f"load average before: {os.getloadavg()}")
    run_module.host_load = lambda: (0.5, 0.5, 0.5)  # the gate would refuse a busy machine; this is a benchmark
    with tempfile.TemporaryDirectory(prefix="bench-review-") as scratch:
        root = Path(scratch) / "subs"
        run_dir, _ = timed("make the genuine run", lambda: speed_and_quality_run(root))
        loaded, _ = timed("form: read every document", lambda: form.load(run_dir)[0])
        for name, check in CHECKS:
            timed(f"{name}", lambda check=check: check(loaded))
        result, _ = timed("whole review", lambda: review(run_dir))
        print(f"accepted: {result.accepted}; {len(result.warnings)} warnings")
        ledger = (run_dir / "run.jsonl").read_text()
        for n in range(runs):
            copy = root / "other" / "box" / f"run-{uuid.uuid4()}"
            copy.mkdir(parents=True)
            (copy / "run.jsonl").write_text(ledger.replace('"run_idx": 0', f'"run_idx": 0, "n": {n}'))
        _, seconds = timed(f"duplicate scan over {runs} runs", lambda: duplicates.check(loaded, root))
        print(f"duplicate scan: {seconds / runs * 1000:.2f} s per 1,000 catalogued runs")
        shutil.rmtree(root, ignore_errors=True)
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
