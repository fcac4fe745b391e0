"""The endurance and thermal part of a run's report (phases/endurance.py, resources.py):
metadata.json's `endurance` (one row per time bucket, the decode rate's drift per cell) and `thermal`
(which sensors this machine exposes, calls made while throttling and the tags that said so), run.md's
section, its Caveats line "thermal throttling observed" with the evidence, and endurance.png.

Drift: a least-squares line through every endurance call's decode rate against the minutes since the
phase's first call, as a share of the line's starting rate per minute; and the last bucket's median
against the first's."""

from __future__ import annotations

import datetime as dt
import statistics
from pathlib import Path
from typing import Any

from orchestrator.measure.phases.endurance import NAME
from orchestrator.publish.report.model import RunReport
from orchestrator.publish.report.plotlayout import Plot, save

BUCKET_FIELDS = ("cell_id", "bucket", "started_s", "seconds", "users", "calls", "errors", "aggregate_tokens_per_sec",
                 "decode_tokens_per_sec_p50", "cpu_freq_mhz_mean", "cpu_temp_c_max", "gpu_temp_c_max",
                 "gpu_sm_clock_mhz_min", "throttling")


def _minutes(stamp: str) -> float:
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() / 60


def drift(calls: list[dict[str, Any]], buckets: list[dict[str, Any]], cell_id: str) -> dict[str, Any]:
    points = [(_minutes(c["started_at_utc"]), c["tokens_per_sec"]) for c in calls
              if c["cell_id"] == cell_id and not c.get("error") and c.get("tokens_per_sec")]
    per_minute = None
    if len(points) >= 3 and len({x for x, _ in points}) > 1:
        start = min(x for x, _ in points)
        slope, intercept = statistics.linear_regression([x - start for x, _ in points], [y for _, y in points])
        per_minute = round(slope / intercept, 4) if intercept > 0 else None
    rates = [b["decode_tokens_per_sec_p50"] for b in buckets if b["cell_id"] == cell_id and b["decode_tokens_per_sec_p50"]]
    change = round(rates[-1] / rates[0] - 1, 4) if len(rates) >= 2 else None
    return {"cell_id": cell_id, "calls": len(points), "first_bucket_tokens_per_sec": rates[0] if rates else None,
            "last_bucket_tokens_per_sec": rates[-1] if rates else None, "change_fraction": change,
            "slope_fraction_per_minute": per_minute}


def endurance_metadata(records: list[dict[str, Any]]) -> dict[str, Any]:
    """`endurance` when the phase ran, `thermal` when it ran or any call was tagged throttled; else nothing."""
    buckets = [{k: r[k] for k in BUCKET_FIELDS} for r in records if r.get("type") == "endurance"]
    calls = [r for r in records if r.get("type") == "call"]
    throttled = [c for c in calls if c.get("throttled")]
    out: dict[str, Any] = {}
    if buckets:
        endurance_calls = [c for c in calls if c["phase"] == NAME]
        cells = list(dict.fromkeys(b["cell_id"] for b in buckets))
        out["endurance"] = {"buckets": buckets, "drift": [drift(endurance_calls, buckets, cell) for cell in cells]}
    if buckets or throttled:
        sensors = next((r["sensors"] for r in records if r.get("type") == "endurance" and r["sensors"]), [])
        judged = [b["throttling"] for b in buckets if b["throttling"] is not None]
        phases: dict[tuple[str, str], set[str]] = {}
        for call in throttled:
            phases.setdefault((call["cell_id"], call["phase"]), set()).update(call["throttled"])
        observed = True if throttled or any(judged) else (False if judged else None)
        out["thermal"] = {"sensors": sensors, "observed": observed, "throttled_calls": len(throttled),
                          "throttled_phases": [{"cell_id": cell, "phase": phase, "tags": sorted(tags),
                                                "calls": sum(1 for c in throttled if (c["cell_id"], c["phase"]) == (cell, phase))}
                                               for (cell, phase), tags in phases.items()]}
    return out


def thermal_caveats(metadata: dict[str, Any]) -> list[str]:
    thermal = metadata.get("thermal") or {}
    if not thermal.get("observed"):
        return []
    where = "; ".join(f"{p['cell_id']} {p['phase']}: {p['calls']} call(s), {', '.join(p['tags'])}"
                      for p in thermal["throttled_phases"]) or "between calls"
    evidence = [f"bucket {b['bucket']} ({b['started_s']:.0f} s in): {', '.join(b['throttling'])}"
                + (f", CPU {b['cpu_temp_c_max']:.0f} °C" if b["cpu_temp_c_max"] is not None else "")
                + (f", GPU {b['gpu_temp_c_max']:.0f} °C at {b['gpu_sm_clock_mhz_min']:.0f} MHz" if b["gpu_temp_c_max"] is not None
                   and b["gpu_sm_clock_mhz_min"] is not None else "")
                for b in (metadata.get("endurance") or {}).get("buckets", []) if b["throttling"]]
    return [f"Thermal throttling observed: {where}. Those calls are tagged `throttled` in run.jsonl"
            + (f"; endurance evidence: {'; '.join(evidence[:3])}" if evidence else "") + "."]


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}{unit}"


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value * 100:+.{digits}f}%"


def endurance_section(run: RunReport) -> list[str]:
    endurance, thermal = run.metadata.get("endurance") or {}, run.metadata.get("thermal") or {}
    sensors = ", ".join(thermal.get("sensors") or []) or "none"
    verdict = {True: "thermal throttling observed (see Caveats)", False: "no throttling observed",
               None: "no sensor here can tell whether the machine throttled"}[thermal.get("observed")]
    lines = ["", "## Endurance: sustained load and thermal evidence", "",
             f"Every user sends calls back to back for the whole phase; the table has each time bucket. Sensors this "
             f"machine exposes: {sensors}. Verdict: {verdict}.", ""]
    for d in endurance.get("drift", []):
        lines.append(f"- {d['cell_id']}: decode rate drift {_pct(d['slope_fraction_per_minute'], 2)} per minute "
                     f"(least squares over {d['calls']} calls); last bucket {_fmt(d['last_bucket_tokens_per_sec'])} tok/s "
                     f"against the first's {_fmt(d['first_bucket_tokens_per_sec'])} ({_pct(d['change_fraction'])}).")
    lines += ["", "| cell | bucket | from | calls | aggregate tok/s | decode tok/s p50 | CPU MHz (mean per core) | CPU °C max | GPU °C max | GPU SM MHz min | throttling |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for b in endurance.get("buckets", []):
        freqs = "–" if not b["cpu_freq_mhz_mean"] else " / ".join(f"{f:,.0f}" for f in b["cpu_freq_mhz_mean"][:8])
        throttling = "–" if b["throttling"] is None else (", ".join(b["throttling"]) or "no")
        errors = f" ({b['errors']} failed)" if b["errors"] else ""
        lines.append(f"| {b['cell_id']} | {b['bucket']} | {b['started_s']:.0f} s | {b['calls']}{errors} | "
                     f"{_fmt(b['aggregate_tokens_per_sec'])} | {_fmt(b['decode_tokens_per_sec_p50'])} | {freqs} | "
                     f"{_fmt(b['cpu_temp_c_max'])} | {_fmt(b['gpu_temp_c_max'])} | {_fmt(b['gpu_sm_clock_mhz_min'], '', 0)} | "
                     f"{throttling} |")
    return lines


def endurance_plot(run_dir: Path, run: RunReport) -> Plot | None:
    """endurance.png: each endurance call's decode rate against the minutes since the phase began."""
    calls = [c for c in run.calls if c["phase"] == NAME and not c.get("error") and c.get("tokens_per_sec")]
    if len(calls) < 2:
        return None
    import matplotlib  # deferred: matplotlib costs a second of start-up

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = min(_minutes(c["started_at_utc"]) for c in calls)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for cell_id in dict.fromkeys(c["cell_id"] for c in calls):
        mine = [c for c in calls if c["cell_id"] == cell_id]
        for tagged, marker in ((False, "o"), (True, "x")):
            points = [c for c in mine if bool(c.get("throttled")) == tagged]
            if points:
                ax.scatter([_minutes(c["started_at_utc"]) - start for c in points], [c["tokens_per_sec"] for c in points],
                           s=12, marker=marker, label=f"{cell_id.rsplit(':', 1)[-1]}{' (throttled)' if tagged else ''}")
    ax.set_xlabel("minutes since the endurance phase began")
    ax.set_ylabel("decode tok/s per call")
    ax.set_title("Decode rate under sustained load")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    save(fig, run_dir / "endurance.png")
    return Plot("endurance.png",
                "The decode rate of every call in the endurance phase against when it started; crosses are calls made "
                "while a sensor said the machine was throttling. A line that sinks over the minutes is a machine "
                "heating up (or something else starting to share it: see the contention caveats).")
