"""profiles/catalogue.yaml: the outlier rule, the roofline tolerance, the export's file sizes and the
bounds on what one contributed folder and one `--query` may cost; read once."""

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
    roofline_tolerance: float
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
    export, limits, query = document["export"], document["limits"], document["query"]
    return CatalogueSettings(OutlierRule(**document["outliers"]), float(document["roofline_tolerance"]),
                             **export, **limits, **{f"query_{key}": value for key, value in query.items()})
