"""The leaderboard page: a static folder (index.html, its script and style, and data.js) that a
browser opens from disk, with no server.

The data is one row per run × cell, summarised from the Parquet export with DuckDB; data.js sets
it as a global (a `fetch` of JSON is refused on file:// pages). The page is vanilla JavaScript
and inline SVG, no framework or chart library: a table with filters and sorting, each row linking
to its run.md, and a chart of decode tok/s by hardware class. Everything a contributor wrote is
inserted as text, never as HTML.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from orchestrator import __version__
from orchestrator.publish.catalogue.export import query
from orchestrator.core.errors import os_failure
from orchestrator.evaluate.quality.scoring import wilson
from orchestrator.publish.manifest import write_text_atomic

ASSETS = Path(__file__).resolve().parent / "leaderboard_page"
# One row per run × cell: speed is the median over its phases of warm decode tok/s and TTFT;
# quality the mean scenario score (its verdict where it has no score) and the pass rate with its 95% Wilson
# interval (appended in Python: one Wilson function, evaluate/quality/scoring.py); agent the share of task
# attempts that completed, of those that ran (not skipped for a missing toolchain, nor interrupted).
SUMMARY_SQL = """
SELECT run_path, device_tag, started_at_utc, completeness, hardware_class, gpu_name,
       model, quant, runtime, engine_version, backend,
       round(median(coalesce(warm_tokens_per_sec_mean, tokens_per_sec_mean)) FILTER (WHERE record_kind = 'phase'), 1) AS decode_tps,
       round(median(coalesce(warm_ttft_ms_p50, ttft_ms_p50)) FILTER (WHERE record_kind = 'phase'), 1) AS ttft_ms,
       round(avg(coalesce(quality_score, quality_passed::DOUBLE)) FILTER (WHERE record_kind = 'quality'), 3) AS quality_score,
       round(avg(agent_passed::DOUBLE) FILTER (WHERE record_kind = 'agent_task'
                                               AND agent_outcome NOT IN ('skipped', 'interrupted')), 3) AS agent_pass_rate,
       list_sort(list(DISTINCT CASE record_kind WHEN 'phase' THEN 'speed' WHEN 'quality' THEN 'quality' ELSE 'agent' END)) AS axes,
       count(*) FILTER (WHERE record_kind = 'quality') AS quality_calls,
       count(*) FILTER (WHERE record_kind = 'quality' AND quality_passed) AS quality_passes
FROM catalogue
GROUP BY run_path, device_tag, started_at_utc, completeness, hardware_class, gpu_name, model, quant, runtime,
         engine_version, backend, cell_id
ORDER BY decode_tps DESC NULLS LAST, run_path, model
"""


QUALITY_INTERVAL_COLUMNS = ("quality_pass_rate", "quality_ci_low", "quality_ci_high")


def quality_interval(row: dict) -> tuple[float | None, float | None, float | None]:
    """The row's quality pass rate and its 95% Wilson interval, None without quality calls."""
    calls, passes = row["quality_calls"], row["quality_passes"]
    if not calls:
        return None, None, None
    interval = wilson(passes, calls)
    return round(passes / calls, 3), round(interval.low, 3), round(interval.high, 3)


@dataclass(frozen=True)
class Leaderboard:
    index: Path
    rows: int


def write_leaderboard(export_dir: Path, root: Path, html_dir: Path, exclude_contended: bool = False) -> Leaderboard:
    summary = query(export_dir, SUMMARY_SQL, exclude_contended)
    try:
        html_dir.mkdir(parents=True, exist_ok=True)
        for asset in sorted(ASSETS.iterdir()):
            shutil.copyfile(asset, html_dir / asset.name)
    except OSError as exc:
        raise os_failure(html_dir, exc) from None
    data = {"generated_by": f"weeyuga {__version__} catalogue --html",
            "columns": [*summary.columns, *QUALITY_INTERVAL_COLUMNS],
            "rows": [[*row, *quality_interval(dict(zip(summary.columns, row)))] for row in summary.rows],
            # run folders relative to the page, so links work wherever the checkout is
            "runs_href": Path(os.path.relpath(root.resolve(), html_dir.resolve())).as_posix()}
    # JSON.parse of a string literal: browsers parse JSON faster than the same data as script
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    write_text_atomic(html_dir / "data.js", f"window.WEEYUGA_LEADERBOARD = JSON.parse({json.dumps(text)});\n")
    return Leaderboard(html_dir / "index.html", len(summary.rows))
