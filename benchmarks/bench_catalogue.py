"""Catalogue at crowd scale (#4, #20, #26 §3): full build, add-one, peak memory and the leaderboard page.

    python3 benchmarks/bench_catalogue.py [N] [--page] [--big-ledger]     # default 20000 synthetic runs

Synthetic runs are tests/fakes/catalogue.py's: copies of the generated EXAMPLE spread over the golden
machines, three models, varied rates, a tenth with quality and agent ledger lines. Prints:
- full build: a fresh index, every run read (wall and CPU seconds, workers included), in process;
- nothing changed and add one run, each twice: in process, and as `weeyuga catalogue` in a fresh
  interpreter (wall time including interpreter start: the issue's target);
- the index's bytes per run and catalogue.json's size (a bounded summary);
- equal to a full rebuild: catalogue.json (less the export folder's name) and every export row compared;
- peak memory (max RSS of this process after the build and after add-one, and of the largest worker);
- with --page: the leaderboard in headless Chromium (/usr/bin/chromium via Playwright): time to the
  first rendered table, and to re-render after choosing a filter;
- with --big-ledger: one run whose run.jsonl has 1,000,000 lines (about 570 MB; #25 §3) read by a
  fresh interpreter: its wall time and peak memory.
The load average is printed before and after: on a shared machine the wall times depend on it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.publish.catalogue import update_catalogue  # noqa: E402
from orchestrator.publish.catalogue.export import FILE_GLOB, sql_string  # noqa: E402
from orchestrator.publish.leaderboard import write_leaderboard  # noqa: E402
from tests.fakes.catalogue import SyntheticRuns  # noqa: E402


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(label: str, action):
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = action()
    print(f"{label}: {time.perf_counter() - wall:.2f} s wall, {cpu_seconds() - cpu:.2f} s CPU")
    return result


REPO = Path(__file__).resolve().parent.parent


def same_rows(one: Path, other: Path) -> bool:
    """Both exports hold the same rows (compared inside DuckDB, not in Python lists; order across files means nothing)."""
    with contextlib.closing(duckdb.connect()) as db:
        tables = [f"(SELECT * FROM read_parquet({sql_string(str(d / FILE_GLOB))}, filename = false))" for d in (one, other)]
        differ = db.execute(f"SELECT count(*) FROM ({tables[0]} EXCEPT ALL {tables[1]}) UNION ALL "
                            f"SELECT count(*) FROM ({tables[1]} EXCEPT ALL {tables[0]})").fetchall()
        return differ == [(0,), (0,)]


def cli_seconds(root: Path, out: Path) -> float:
    """`weeyuga catalogue` in a fresh interpreter (this checkout's code): wall seconds, start included."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "orchestrator.cli", "catalogue", "--submissions-dir", str(root), "--out", str(out)],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def summary_less_folder(out: Path) -> dict:
    summary = json.loads(out.read_text())
    summary["export"].pop("folder")
    return summary


def big_ledger(work: Path, runs: SyntheticRuns, lines: int = 1_000_000) -> None:
    """One run whose ledger has `lines` call-sized lines and a thousand quality lines, read in a fresh interpreter."""
    run = runs.write(work / "big", 0, axes=True)
    call = json.dumps({"type": "call", "phase": "5q", "text": "x" * 480}) + "\n"
    quality = (run / "run.jsonl").read_text().splitlines(keepends=True)[-6]
    with open(run / "run.jsonl", "a") as fh:
        for i in range(lines):
            fh.write(quality if i % 1000 == 0 else call)
    size = (run / "run.jsonl").stat().st_size
    # VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child of this (large) process would report this one's
    probe = ("import re, sys, time; from pathlib import Path; from orchestrator.publish.catalogue import read_run; "
             "t = time.perf_counter(); r = read_run(Path(sys.argv[1])); "
             "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)); "
             "print(f'{time.perf_counter() - t:.2f} s, {len(r.rows)} rows, invalid: {r.invalid_reason}, '"
             "f'peak {hwm / 1024:.0f} MiB')")
    result = subprocess.run([sys.executable, "-c", probe, str(run)], cwd=REPO, check=True, capture_output=True, text=True)
    print(f"a run.jsonl of {lines + 1} lines ({size / 2**20:.0f} MiB) read by a fresh interpreter: {result.stdout.strip()}")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def page_timings(index: Path, filter_id: str) -> tuple[float, float, int]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page()
        page.goto(index.as_uri())
        page.wait_for_selector("body[data-ready=true]")
        loaded = float(page.get_attribute("body", "data-ready-ms"))  # navigation start to the first render painted
        filtered = page.evaluate("""(id) => {
            const select = document.getElementById(id), started = performance.now();
            select.value = select.options[1].value;
            select.dispatchEvent(new Event('change'));
            document.body.offsetHeight;  // include the layout of the new rows
            return performance.now() - started;
        }""", filter_id)
        shown = page.locator("#rows tr").count()
        browser.close()
    return loaded, filtered, shown


def main(n: int, with_page: bool, with_big_ledger: bool) -> None:
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs (a shared machine)")
    runs = SyntheticRuns()
    with tempfile.TemporaryDirectory() as tmp:
        root, work = Path(tmp) / "submissions", Path(tmp)
        out = work / "catalogue.json"
        timed(f"writing {n} synthetic run folders", lambda: runs.write_many(root, n))
        full = timed(f"full build of {n} runs", lambda: update_catalogue(root, out))
        files = sorted(full.export_dir.glob(FILE_GLOB))
        print(f"  {full.counts}, export {sum(f.stat().st_size for f in files) / 2**20:.1f} MiB in {len(files)} files, "
              f"catalogue.json {out.stat().st_size / 2**10:.1f} KiB, index {full.index_file.stat().st_size / n:.0f} bytes a run")
        print(f"  peak memory so far: {peak_rss_mib():.0f} MiB this process, "
              f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MiB largest worker")
        same = timed("nothing changed (in process)", lambda: update_catalogue(root, out))
        print(f"  {same.reread} read, {same.unchanged} unchanged")
        print(f"nothing changed (weeyuga catalogue, interpreter start included): {cli_seconds(root, out):.2f} s wall")
        runs.write(root, n)
        added = timed("add one run (in process)", lambda: update_catalogue(root, out))
        print(f"  {added.reread} read, {added.unchanged} unchanged, {added.files_written} file(s) written; "
              f"peak memory so far {peak_rss_mib():.0f} MiB")
        runs.write(root, n + 1)
        print(f"add one run (weeyuga catalogue, interpreter start included): {cli_seconds(root, out):.2f} s wall")
        rebuilt = timed("full rebuild (fresh index) to compare", lambda: update_catalogue(root, work / "again.json"))
        print(f"  incremental == full rebuild: catalogue.json {summary_less_folder(out) == summary_less_folder(work / 'again.json')}, "
              f"export rows {same_rows(added.export_dir, rebuilt.export_dir)}")
        if with_page:
            page = timed("leaderboard page written", lambda: write_leaderboard(added.index_file, root, work / "page"))
            loaded, filtered, shown = page_timings(page.index, "filter-hardware_class")
            print(f"leaderboard in headless Chromium, {page.rows} rows: first render {loaded:.0f} ms after navigation, "
                  f"a filter re-renders in {filtered:.0f} ms ({shown} rows on screen)")
        if with_big_ledger:
            big_ledger(work, runs)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=20000)
    parser.add_argument("--page", action="store_true", help="also time the leaderboard page in headless Chromium")
    parser.add_argument("--big-ledger", action="store_true", help="also read one run with a 1,000,000-line ledger")
    args = parser.parse_args()
    main(args.n, args.page, args.big_ledger)
