"""Catalogue at crowd scale (#4, #20): full build, add-one, peak memory and the leaderboard page.

    python3 benchmarks/bench_catalogue.py [N] [--page]     # default 20000 synthetic runs

Synthetic runs are tests/fakes/catalogue.py's: copies of the generated EXAMPLE spread over the golden
machines, three models, varied rates, a tenth with quality and agent ledger lines. Prints:
- full build: a fresh index, every run read (wall and CPU seconds, workers included);
- nothing changed: the index answers, no run read;
- add one run: one new folder, one export shard rewritten;
- equal to a full rebuild: catalogue.json bytes and every export row compared;
- peak memory (max RSS of this process after the build and after add-one, and of the largest worker);
- with --page: the leaderboard in headless Chromium (/usr/bin/chromium via Playwright): time to the
  first rendered table, and to re-render after choosing a filter.
The load average is printed before and after: on a shared machine the wall times depend on it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.publish.catalogue import update_catalogue  # noqa: E402
from orchestrator.publish.catalogue.export import export_glob, sql_string  # noqa: E402
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


def same_rows(one: Path, other: Path) -> bool:
    """Both exports hold the same rows, in the same order (compared inside DuckDB, not in Python lists)."""
    with contextlib.closing(duckdb.connect()) as db:
        tables = [f"(SELECT row_number() OVER () AS position, * FROM read_parquet({sql_string(export_glob(d))}, "
                  f"filename = false))" for d in (one, other)]
        differ = db.execute(f"SELECT count(*) FROM ({tables[0]} EXCEPT ALL {tables[1]}) UNION ALL "
                            f"SELECT count(*) FROM ({tables[1]} EXCEPT ALL {tables[0]})").fetchall()
        return differ == [(0,), (0,)]


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


def main(n: int, with_page: bool) -> None:
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs (a shared machine)")
    runs = SyntheticRuns()
    with tempfile.TemporaryDirectory() as tmp:
        root, work = Path(tmp) / "submissions", Path(tmp)
        timed(f"writing {n} synthetic run folders", lambda: runs.write_many(root, n))
        full = timed(f"full build of {n} runs", lambda: update_catalogue(root, work / "catalogue.json"))
        print(f"  {full.counts}, export {sum(f.stat().st_size for f in full.export_dir.iterdir()) / 2**20:.1f} MiB "
              f"in {full.shards_written} shards, catalogue.json {(work / 'catalogue.json').stat().st_size / 2**20:.1f} MiB")
        print(f"  peak memory so far: {peak_rss_mib():.0f} MiB this process, "
              f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MiB largest worker")
        same = timed("nothing changed", lambda: update_catalogue(root, work / "catalogue.json"))
        print(f"  {same.reread} read, {same.unchanged} unchanged")
        runs.write(root, n)
        added = timed("add one run", lambda: update_catalogue(root, work / "catalogue.json"))
        print(f"  {added.reread} read, {added.unchanged} unchanged, {added.shards_written} shard(s) rewritten; "
              f"peak memory so far {peak_rss_mib():.0f} MiB")
        rebuilt = timed("full rebuild (fresh index) to compare", lambda: update_catalogue(root, work / "again.json"))
        same_json = (work / "catalogue.json").read_bytes() == (work / "again.json").read_bytes()
        print(f"  incremental == full rebuild: catalogue.json {same_json}, "
              f"export rows {same_rows(added.export_dir, rebuilt.export_dir)}")
        if with_page:
            page = timed("leaderboard page written", lambda: write_leaderboard(added.export_dir, root, work / "page"))
            loaded, filtered, shown = page_timings(page.index, "filter-hardware_class")
            print(f"leaderboard in headless Chromium, {page.rows} rows: first render {loaded:.0f} ms after navigation, "
                  f"a filter re-renders in {filtered:.0f} ms ({shown} rows on screen)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=20000)
    parser.add_argument("--page", action="store_true", help="also time the leaderboard page in headless Chromium")
    args = parser.parse_args()
    main(args.n, args.page)
