"""profiles/catalogue.yaml: the outlier rule, the export's file sizes and the bounds on what one
contributed folder and one `--query` may cost; and the roofline bound `weeyuga review` rejects at
(profiles/review.yaml), so that the catalogue refuses exactly what review rejects. Read once."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from orchestrator.core import datafiles
from orchestrator.core.paths import data_dir


@dataclass(frozen=True)
class OutlierRule:
    min_group: int  # runs a group needs before any is marked
    modified_z: float  # the mark: 0.6745 * |rate - median| / MAD above this
    mad_floor: float  # the MAD used is at least this fraction of the median


@dataclass(frozen=True)
class CatalogueSettings:
    outliers: OutlierRule
    roofline_tolerance: float  # decode / roofline above this is refused (review.yaml roofline_reject_fraction)
    batch_runs: int
    compact_below: int
    compact_after: int
    ledger_rows_per_run: int
    ledger_line_bytes: int
    ledger_record_bytes: int
    invalid_listed: int
    lock_wait_s: float
    query_timeout_s: float
    query_memory_limit_mb: int
    query_threads: int


@functools.cache
def settings() -> CatalogueSettings:
    document = datafiles.load(data_dir("profiles") / "catalogue.yaml", "catalogue-settings")
    review = datafiles.load(data_dir("profiles") / "review.yaml", "review")
    export, limits, query = document["export"], document["limits"], document["query"]
    return CatalogueSettings(OutlierRule(**document["outliers"]), float(review["roofline_reject_fraction"]),
                             **export, **limits, **{f"query_{key}": value for key, value in query.items()})
