"""The capacity part of a run's report (phases/capacity.py): metadata.json's `capacity` (the SLO, one row
per level, the headline per cell), run.md's section with the sentence "serves N concurrent users with
TTFT p95 ≤ X s and ≥ Y tok/s each", and capacity.png (throughput against latency, the Pareto front drawn)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from orchestrator.core.canonical import capacity_slo
from orchestrator.measure.phases.capacity import serving_capacity, summarise
from orchestrator.publish.report.model import RunReport
from orchestrator.publish.report.plotlayout import Plot, save


def capacity_metadata(records: list[dict[str, Any]]) -> dict[str, Any]:
    """`{"capacity": {...}}` when the run measured any capacity level, else nothing."""
    if not any(r.get("type") == "capacity" for r in records):
        return {}
    slo = capacity_slo().with_overrides(records[0].get("options", {}).get("capacity", {}))
    levels = summarise(records, slo)
    cells = list(dict.fromkeys(level.cell_id for level in levels))
    return {"capacity": {"slo": asdict(slo), "levels": [asdict(level) for level in levels],
                         "serving": [serving_capacity(levels, cell, slo) for cell in cells]}}


def capacity_sentences(metadata: dict[str, Any]) -> list[str]:
    """One line per cell: what `auto` prints and run.md leads its section with."""
    return [f"{s['cell_id']}: {s['sentence']}" for s in (metadata.get("capacity") or {}).get("serving", [])]


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}{unit}"


def capacity_section(run: RunReport) -> list[str]:
    capacity = run.metadata.get("capacity") or {}
    lines = ["", "## Capacity: how many users, at what latency", ""]
    lines += [f"**{sentence}**  " for sentence in capacity_sentences(run.metadata)]
    lines += ["", "Closed loop: that many users each send their calls back to back. Open loop: requests arrive at fixed "
              "intervals, at a share of the best request rate the closed loop reached. Per user = the median of the "
              "calls' decode rates; queueing = TTFT less the runtime's own prompt time (waiting for a slot). "
              "◆ marks the throughput–latency Pareto front.", "",
              "| cell | level | calls | aggregate tok/s | per-user tok/s | TTFT p50 / p95 | queueing p50 / p95 | req/s | SLO |",
              "|---|---|---|---|---|---|---|---|---|"]
    for lv in capacity.get("levels", []):
        name = f"{lv['users']} user(s)" if lv["loop"] == "closed" else f"{lv['arrival_rate_per_s']:.2f} req/s arriving"
        errors = f" ({lv['errors']} failed)" if lv["errors"] else ""
        slo = "meets" if lv["meets_slo"] else ("–" if lv["loop"] == "open" else "misses")
        lines.append(f"| {lv['cell_id']} | {name}{' ◆' if lv['pareto'] else ''} | {lv['calls']}{errors} | "
                     f"{_fmt(lv['aggregate_tokens_per_sec'])} | {_fmt(lv['user_tokens_per_sec_p50'])} | "
                     f"{_fmt(lv['ttft_ms_p50'], ' ms', 0)} / {_fmt(lv['ttft_ms_p95'], ' ms', 0)} | "
                     f"{_fmt(lv['queue_ms_p50'], ' ms', 0)} / {_fmt(lv['queue_ms_p95'], ' ms', 0)} | "
                     f"{_fmt(lv['requests_per_sec'], '', 2)} | {slo} |")
    return lines


def capacity_plot(run_dir: Path, run: RunReport) -> Plot | None:
    """capacity.png: aggregate tok/s against TTFT p95 per level, the Pareto front as a line."""
    levels = [lv for lv in (run.metadata.get("capacity") or {}).get("levels", [])
              if lv["ttft_ms_p95"] is not None and lv["aggregate_tokens_per_sec"] is not None]
    if not levels:
        return None
    import matplotlib  # deferred: matplotlib costs a second of start-up

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    slo = run.metadata["capacity"]["slo"]
    for cell_id in dict.fromkeys(lv["cell_id"] for lv in levels):
        mine = [lv for lv in levels if lv["cell_id"] == cell_id]
        label = cell_id.rsplit(":", 1)[-1]
        for loop, marker in (("closed", "o"), ("open", "s")):
            points = [lv for lv in mine if lv["loop"] == loop]
            ax.scatter([lv["ttft_ms_p95"] / 1000 for lv in points], [lv["aggregate_tokens_per_sec"] for lv in points],
                       marker=marker, label=f"{label} {loop} loop")
            for lv in points:
                text = f"{lv['users']}u" if loop == "closed" else f"{lv['arrival_rate_per_s']:.2f}/s"
                ax.annotate(text, (lv["ttft_ms_p95"] / 1000, lv["aggregate_tokens_per_sec"]), fontsize=7,
                            xytext=(4, 4), textcoords="offset points")
        front = sorted((lv["ttft_ms_p95"] / 1000, lv["aggregate_tokens_per_sec"]) for lv in mine if lv["pareto"])
        ax.plot([x for x, _ in front], [y for _, y in front], linestyle="--", color="grey", linewidth=1)
    widest = max(lv["ttft_ms_p95"] for lv in levels) / 1000
    if slo["ttft_p95_s"] <= widest * 2:  # drawn where it does not squash the levels into the left edge
        ax.axvline(slo["ttft_p95_s"], color="red", linewidth=0.8, linestyle=":")
    else:
        ax.annotate(f"SLO TTFT p95 {slo['ttft_p95_s']:g} s →", (1, 0.02), xycoords="axes fraction", ha="right",
                    fontsize=7, color="red")
    ax.set_xlabel("TTFT p95 (s)")
    ax.set_ylabel("aggregate decode tok/s")
    ax.set_title("Throughput against latency per load level")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    save(fig, run_dir / "capacity.png")
    return Plot("capacity.png",
                "Each load level's aggregate decode rate (all users together) against its TTFT p95: circles are "
                "closed-loop levels (labelled with their users), squares fixed arrival rates. The dashed line joins "
                "the Pareto front, the levels no other beats on both; the dotted red line is the SLO's TTFT p95 (an arrow "
                "when it lies far to the right). "
                "More users buy throughput until the slots are full; past that only latency grows.")
