"""Catalogue build time at thousands of runs (#4): copies of the generated EXAMPLE under new ids.

    python3 benchmarks/bench_catalogue.py [N]     # default 2000 runs
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.catalogue import build_catalogue  # noqa: E402
from orchestrator.paths import REPO_ROOT  # noqa: E402


def main(n: int) -> None:
    example = next((REPO_ROOT / "submissions" / "EXAMPLE").glob("*/run-*"))
    manifest = json.loads((example / "manifest.json").read_text())
    metadata = json.loads((example / "metadata.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(n):
            run_id = f"{i:08x}-0000-4000-8000-000000000000"
            run_dir = root / f"user{i % 97}" / f"device-{i % 13}" / f"run-{run_id}"
            run_dir.mkdir(parents=True)
            manifest.update(run_id=run_id, submitter_handle=f"user{i % 97}", device_tag=f"device-{i % 13}")
            metadata.update(run_id=run_id)
            (run_dir / "manifest.json").write_text(json.dumps(manifest))
            (run_dir / "metadata.json").write_text(json.dumps(metadata))
            shutil.copy(example / "run.jsonl", run_dir / "run.jsonl")  # present, never read by the catalogue
        started = time.perf_counter()
        catalogue = build_catalogue(root)
        elapsed = time.perf_counter() - started
        again = build_catalogue(root)
    per_run_ms = elapsed / n * 1000
    print(f"catalogue of {catalogue['counts']['runs']} runs ({catalogue['counts']['invalid']} invalid): "
          f"{elapsed:.2f} s, {per_run_ms:.2f} ms per run; second build identical: {catalogue == again}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
