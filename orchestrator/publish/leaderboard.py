"""The leaderboard page: a static folder (index.html, its script and style, and data.js) that a
browser opens from disk, with no server.

The data is one row per run × cell, pre-aggregated in the catalogue's index when the run was read
(rows.page_row), so writing the page reads no Parquet; data.js sets it as a global (a `fetch` of
JSON is refused on file:// pages). The page is vanilla JavaScript and inline SVG, no framework or
chart library: a table with filters and sorting, each row linking to its run.md, and a chart of
decode tok/s by hardware class. Outliers (outliers.py) are left out of the default view and of the
chart's medians. Everything a contributor wrote is inserted as text, never as HTML.
"""

from __future__ import annotations

import json
import os
from typing import Any
from dataclasses import dataclass
from pathlib import Path

from orchestrator import __version__
from orchestrator.core.errors import os_failure
from orchestrator.core.atomic import check_replaceable, write_text_atomic
from orchestrator.evaluate.quality.scoring import wilson
from orchestrator.publish.catalogue.index import CatalogueIndex
from orchestrator.publish.catalogue.rows import PAGE_COLUMNS

ASSETS = Path(__file__).resolve().parent / "leaderboard_page"
# The quality pass rate and its 95% Wilson interval are appended here, from the row's counts (one Wilson
# function, evaluate/quality/scoring.py); `outlier` is the mark's reason, null when not marked.
QUALITY_INTERVAL_COLUMNS = ("quality_pass_rate", "quality_ci_low", "quality_ci_high")
COLUMNS = [*PAGE_COLUMNS, "outlier", *QUALITY_INTERVAL_COLUMNS]
DECODE, RUN_PATH, MODEL, CALLS, PASSES = (COLUMNS.index(name) for name in
                                          ("decode_tps", "run_path", "model", "quality_calls", "quality_passes"))


def quality_interval(calls: int, passes: int) -> tuple[float | None, float | None, float | None]:
    """The row's quality pass rate and its 95% Wilson interval, None without quality calls."""
    if not calls:
        return None, None, None
    interval = wilson(passes, calls)
    return round(passes / calls, 3), round(interval.low, 3), round(interval.high, 3)


def hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def dictionary_encoded(rows: list[list[Any]]) -> tuple[list[list[Any]], dict[str, list[Any]]]:
    """Each column whose values repeat (fewer distinct values than half the rows: hardware class,
    model, quant, runtime ...) as an index into a list of its values. At 100,000 rows the page's data
    is then a third of the size, the browser parses it in a third of the time, and the filters' choices
    are those lists, not a scan of every row."""
    dictionaries: dict[str, list[Any]] = {}
    for i, name in enumerate(COLUMNS):
        codes: dict[Any, int] = {}  # a column holds one type (or null): its values are the keys, a list as a tuple
        for row in rows:
            codes.setdefault(hashable(row[i]), len(codes))
            if len(codes) * 2 > len(rows):
                break
        else:
            if rows:
                dictionaries[name] = [list(key) if isinstance(key, tuple) else key for key in codes]
                for row in rows:
                    row[i] = codes[hashable(row[i])]
    return rows, dictionaries


@dataclass(frozen=True)
class Leaderboard:
    index: Path
    rows: int


def write_leaderboard(index_file: Path, root: Path, html_dir: Path, exclude_contended: bool = False) -> Leaderboard:
    """The page for the catalogue whose index is `index_file` (update_catalogue's), best decode rate first."""
    with CatalogueIndex.open(index_file, root) as index:
        rows = sorted((row + list(quality_interval(row[CALLS], row[PASSES])) for row in index.page_rows(exclude_contended)),
                      key=lambda row: (row[DECODE] is None, -(row[DECODE] or 0), row[RUN_PATH], row[MODEL] or ""))
    try:
        html_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_failure(html_dir, exc) from None
    rows, dictionaries = dictionary_encoded(rows)
    data = {"generated_by": f"weeyuga {__version__} catalogue --html", "columns": COLUMNS, "rows": rows,
            "dictionaries": dictionaries,
            # run folders relative to the page, so links work wherever the checkout is
            "runs_href": Path(os.path.relpath(root.resolve(), html_dir.resolve())).as_posix()}
    # JSON.parse of a string literal: browsers parse JSON faster than the same data as script
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    outputs = {asset.name: asset.read_text(encoding="utf-8") for asset in sorted(ASSETS.iterdir())}
    outputs["data.js"] = f"window.WEEYUGA_LEADERBOARD = JSON.parse({json.dumps(text)});\n"
    for name in outputs:  # all checked before any is written: never through a link planted in the folder
        check_replaceable(html_dir / name)
    for name, content in outputs.items():
        write_text_atomic(html_dir / name, content)
    return Leaderboard(html_dir / "index.html", len(rows))
