"""The figures of a run, computed from its ledger: metadata-1.0 rows, cold/warm batches, lanes,
client-server agreement, resource peaks and decode's fraction of the bandwidth roofline (report/roofline.py).

Percentiles interpolate linearly between the closest ranks (p50 of [a, b] is their mean).
Aggregates use successful calls only; errors count in n_errors and the success rate.
Cold figures come only from true cold calls (restart, unload): the first call to a runtime that was
already running and could not be made cold (`process_warm`) is reported in its own fields, never as cold.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any, Iterable

from orchestrator import __version__
from orchestrator.publish.report.agent import agent_metadata
from orchestrator.publish.report.measurement import measurement_metadata
from orchestrator.publish.report.capacity import capacity_metadata
from orchestrator.publish.report.depth import depth_metadata
from orchestrator.publish.report.endurance import endurance_metadata
from orchestrator.publish.report.quality import quality_metadata
from orchestrator.publish.report.roofline import decode_roofline

METADATA_SCHEMA = "metadata-1.0"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _ok(calls: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in calls if c.get("error") is None]


def _values(calls: Iterable[dict[str, Any]], name: str) -> list[float]:
    return [c[name] for c in calls if c.get(name) is not None]


def cell_row(cell_id: str, phase: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """One metadata-1.0 row, then the additive warm figures the regression thresholds use."""
    good = _ok(calls)
    durations, rates = _values(good, "total_duration_ms"), _values(good, "tokens_per_sec")
    formats = [c["format_ok"] for c in good if c.get("format_ok") is not None]
    markers = _values(good, "marker_hit")
    warm = [c for c in calls if c.get("load_state") == "warm"]
    warm_good = _ok(warm)
    return {
        "cell_id": cell_id, "phase": phase,
        "n_calls": len(calls), "n_errors": len(calls) - len(good),
        "duration_ms_p50": _r(percentile(durations, 0.5)), "duration_ms_p95": _r(percentile(durations, 0.95)),
        "duration_ms_mean": _r(_mean(durations)),
        "tokens_per_sec_p50": _r(percentile(rates, 0.5), 2), "tokens_per_sec_p95": _r(percentile(rates, 0.95), 2),
        "tokens_per_sec_mean": _r(_mean(rates), 2), "tokens_per_sec_max": _r(max(rates) if rates else None, 2),
        "completion_tokens_total": sum(c.get("completion_tokens") or 0 for c in good),
        "format_ok_rate": _r(sum(formats) / len(formats), 4) if formats else None,
        "marker_hit_rate_mean": _r(_mean(markers), 4),
        # additive
        "first_delta_ms_p50": _r(percentile(_values(good, "first_delta_ms"), 0.5)),
        "warm_first_delta_ms_p50": _r(percentile(_values(warm_good, "first_delta_ms"), 0.5)),
        "warm_total_duration_ms_p50": _r(percentile(_values(warm_good, "total_duration_ms"), 0.5)),
        "warm_tokens_per_sec_mean": _r(_mean(_values(warm_good, "tokens_per_sec")), 2),
        "success_rate": _r(len(good) / len(calls), 4) if calls else None,
        "tokens_estimated": any(c.get("tokens_estimated") for c in good),
    }


def is_process_warm(call: dict[str, Any]) -> bool:
    """Older ledgers recorded these calls as load_state cold; their cold_kind tells them apart."""
    return call.get("load_state") == "process_warm" or call.get("cold_kind") == "process_warm"


def batch_row(cell_id: str, phase: str, prompt_id: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The methodology's per-batch figures for one (cell, prompt): 1 cold (or process_warm) + N warm."""
    cold = [c for c in calls if c.get("load_state") == "cold" and not is_process_warm(c)]
    process_warm = [c for c in calls if is_process_warm(c)]
    warm = [c for c in calls if c.get("load_state") == "warm"]
    warm_good = _ok(warm)
    first_cold = cold[0] if cold else {}
    first_process_warm = process_warm[0] if process_warm else {}
    return {
        "cell_id": cell_id, "phase": phase, "prompt_id": prompt_id,
        "cold_kind": (first_cold or first_process_warm).get("cold_kind"),
        "cold_first_delta_ms": first_cold.get("first_delta_ms"),
        "cold_total_duration_ms": first_cold.get("total_duration_ms"),
        "warm_n": len(warm),
        "warm_first_delta_ms_p50": _r(percentile(_values(warm_good, "first_delta_ms"), 0.5)),
        "warm_first_delta_ms_p95": _r(percentile(_values(warm_good, "first_delta_ms"), 0.95)),
        "warm_total_duration_ms_p50": _r(percentile(_values(warm_good, "total_duration_ms"), 0.5)),
        "warm_total_duration_ms_p95": _r(percentile(_values(warm_good, "total_duration_ms"), 0.95)),
        "warm_tokens_per_sec_mean": _r(_mean(_values(warm_good, "tokens_per_sec")), 2),
        "warm_success_rate": _r(len(warm_good) / len(warm), 4) if warm else None,
        # additive: the first call to a runtime that was already running, which is not a cold start
        "process_warm_first_delta_ms": first_process_warm.get("first_delta_ms"),
        "process_warm_total_duration_ms": first_process_warm.get("total_duration_ms"),
    }


def _relative_gaps(calls: list[dict[str, Any]], client_field: str) -> list[float]:
    return [abs(c[client_field] - c["server_tokens_per_sec"]) / c["server_tokens_per_sec"] for c in _ok(calls)
            if c.get(client_field) and c.get("server_tokens_per_sec")]


def agreement(calls: list[dict[str, Any]]) -> dict[str, Any]:
    gaps = _relative_gaps(calls, "tokens_per_sec")
    # additive: the client's rate over the runtime's own interval (n - 1 tokens after the first)
    after_first = _relative_gaps(calls, "tokens_per_sec_after_first")
    return {"n_compared": len(gaps), "median_relative_gap": _r(percentile(gaps, 0.5), 4),
            "n_flagged_over_5pct": sum(bool(c.get("rate_disagreement")) for c in calls),
            "n_compared_after_first": len(after_first),
            "median_relative_gap_after_first": _r(percentile(after_first, 0.5), 4),
            "p90_relative_gap_after_first": _r(percentile(after_first, 0.9), 4)}


def resource_peaks(calls: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for name in ("peak_rss_mb", "peak_cpu_percent", "peak_gpu_mem_used_mb", "peak_gpu_util_percent"):
        values = _values(calls, name)
        out[name] = max(values) if values else None
    return out


def finite(document: Any) -> Any:
    """NaN and infinities (an overflowing mean, say) become null: metadata.json stays valid JSON."""
    if isinstance(document, float):
        return document if math.isfinite(document) else None
    if isinstance(document, dict):
        return {k: finite(v) for k, v in document.items()}
    if isinstance(document, list):
        return [finite(v) for v in document]
    return document


def build_metadata(records: list[dict[str, Any]], manifest: dict[str, Any], hardware: dict[str, Any] | None) -> dict[str, Any]:
    meta = records[0]
    calls = [r for r in records if r.get("type") == "call"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    batches: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for call in calls:
        groups[(call["cell_id"], call["phase"])].append(call)
        if meta.get("suites", {}).get(call["phase"], {}).get("mode") == "cold_warm":
            batches[(call["cell_id"], call["phase"], call["prompt_id"])].append(call)
    phase_order = {p: i for i, p in enumerate(meta.get("options", {}).get("phases", []))}
    key = lambda k: (k[0], phase_order.get(k[1], 99), k[1:])  # noqa: E731
    rows = [cell_row(c, p, groups[(c, p)]) for c, p in sorted(groups, key=key)]
    return {
        "schema_version": METADATA_SCHEMA,
        "run_id": meta["benchmark_run_id"],
        "submitter_handle": meta.get("submitter_handle"),
        "device_tag": meta.get("device_tag"),
        "harness_version": meta.get("harness_version"),
        "status": manifest.get("status"),
        "cells": rows,
        "batches": [batch_row(*k, batches[k]) for k in sorted(batches, key=key)],
        "lanes": [{k: r[k] for k in ("phase", "cells", "lanes", "calls", "errors", "wall_ms", "completion_tokens_total",
                                    "aggregate_tokens_per_sec")} for r in records if r.get("type") == "lanes"],
        "skipped": [{"cell_id": r["cell_id"], "phase": r.get("phase"), "reason": r["reason"]}
                    for r in records if r.get("type") == "skipped"],
        "client_server_agreement": agreement(calls),
        "resource_peaks": resource_peaks(calls),
        "memory_bandwidth_utilisation": decode_roofline(rows, calls, manifest, hardware),
        **quality_metadata(records),
        "generated_by": f"weeyuga {__version__} report",
        **agent_metadata(records),
        **measurement_metadata(records),
        **depth_metadata(records, manifest, hardware),
        **capacity_metadata(records),
        **endurance_metadata(records),
    }
