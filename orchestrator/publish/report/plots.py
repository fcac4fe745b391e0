"""The run's plots, from one RunReport, each with the caption run.md prints under it: what to read
from it. PLOTS lists them in run.md's order; each returns None when the run has nothing to show.

Decode rate and TTFT show every successful call as a point (not a bar of means), per cell (band)
and phase (colour), with p50 and p95 marked; layout in report/plotlayout.py. PNG text chunks carry
no software tag or date: nothing to scan, and the same run gives the same bytes.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from orchestrator.publish.report.model import RunReport
from orchestrator.publish.report.capacity import capacity_plot
from orchestrator.publish.report.depth import depth_plot
from orchestrator.publish.report.endurance import endurance_plot
from orchestrator.publish.report.figures import is_process_warm, percentile
from orchestrator.publish.report.outcome_plots import agent_plot, quality_plot
from orchestrator.publish.report.plotlayout import Bands, CellNames, Plot, cell_names, legend_below, save, series_colours
from orchestrator.publish.report.positions import decode_position_plot

__all__ = ["PLOTS", "Plot", "make_plots"]


def _first_call(call: dict[str, Any]) -> bool:
    """A prompt's first call (cold, or first on a runtime already running): drawn apart, it pays the load."""
    return call.get("load_state") == "cold" or is_process_warm(call)


def spread_plot(run_dir: Path, run: RunReport, field: str, file: str, title: str, xlabel: str,
                log: bool = False, warm_percentiles: bool = False) -> tuple[CellNames, dict[tuple[str, str], list[float]]] | None:
    """Every successful call's `field` as a point; p50 (black bar) and p95 (red bar) per cell and phase,
    over every call or, with warm_percentiles, over the calls after each prompt's first (when there are any).
    Returns the cell names (for the caption) and the values the percentiles are of, by (cell_id, phase)."""
    from matplotlib.lines import Line2D

    points: dict[tuple[str, str], list[tuple[float, bool]]] = defaultdict(list)
    for call in run.calls:
        if call.get("error") is None and call.get(field) is not None and (not log or call[field] > 0):
            points[(call["cell_id"], call["phase"])].append((call[field], _first_call(call)))
    if not points:
        return None
    cells = list(dict.fromkeys(cell for cell, _ in points))
    phases = list(dict.fromkeys(phase for _, phase in points))
    order = {p: i for i, p in enumerate(run.meta.get("options", {}).get("phases", []))}
    phases.sort(key=lambda p: order.get(p, len(order)))
    names = cell_names(cells)
    bands = Bands([names.label[c] for c in cells], phases)
    colours = series_colours(phases)
    fig, ax = bands.figure(title, xlabel)
    jitter = bands.sub_height * 0.12
    measured: dict[tuple[str, str], list[float]] = {}
    for (cell, phase), values in points.items():
        y = bands.y(cells.index(cell), phases.index(phase))
        offsets = [y + ((index % 5) - 2) * jitter for index in range(len(values))]
        for first, style in ((False, dict(marker="o", markersize=3.5, color=colours[phase], alpha=0.6, markeredgewidth=0)),
                             (True, dict(marker="D", markersize=4.5, markerfacecolor="none", markeredgecolor=colours[phase]))):
            chosen = [(v, o) for (v, f), o in zip(values, offsets) if f == first]
            if chosen:
                ax.plot([v for v, _ in chosen], [o for _, o in chosen], linestyle="", **style)
        plain = [v for v, first in values if not (warm_percentiles and first)] or [v for v, _ in values]
        measured[(cell, phase)] = plain
        ax.plot(percentile(plain, 0.5), y, "|", color="black", markersize=bands.sub_points, markeredgewidth=2)
        ax.plot(percentile(plain, 0.95), y, "|", color="#cc3311", markersize=bands.sub_points, markeredgewidth=2)
    if log:
        ax.set_xscale("log")
    else:
        ax.set_xlim(left=0)
    handles = [Line2D([], [], marker="o", linestyle="", color=colours[p], label=p) for p in phases]
    handles += [Line2D([], [], marker="|", linestyle="", color="black", markersize=9, markeredgewidth=2, label="p50"),
                Line2D([], [], marker="|", linestyle="", color="#cc3311", markersize=9, markeredgewidth=2, label="p95"),
                Line2D([], [], marker="D", linestyle="", markerfacecolor="none", markeredgecolor="grey",
                       label="first call of a prompt")]
    legend_below(fig, ax, handles)
    save(fig, run_dir / file)
    return names, measured


def _extremes(names: CellNames, values: dict[tuple[str, str], list[float]], unit: str, fmt: str = "{:,.1f}") -> str:
    """'Highest median ...; lowest ...' over the cell and phase groups when there are two or more, then the key."""
    if len(values) < 2:
        return names.caption()
    medians = {k: percentile(v, 0.5) for k, v in values.items()}
    high, low = max(medians, key=medians.get), min(medians, key=medians.get)
    if medians[high] == medians[low]:
        return f" Every median is {fmt.format(medians[high])} {unit}." + names.caption()
    return (f" Highest median {fmt.format(medians[high])} {unit} ({names.label[high[0]]} {high[1]}); "
            f"lowest {fmt.format(medians[low])} {unit} ({names.label[low[0]]} {low[1]})." + names.caption())


def tokens_per_sec_plot(run_dir: Path, run: RunReport) -> Plot | None:
    drawn = spread_plot(run_dir, run, "tokens_per_sec", "tokens_per_sec.png", "Decode rate per call",
                        "tokens/s (client: completion tokens / (total − TTFT))")
    if drawn is None:
        return None
    return Plot("tokens_per_sec.png",
                "Decode rate of every successful call, one point each, per cell (band) and phase (colour); the black "
                "bar is the median (p50), the red bar the 95th percentile. A tight cluster is a steady rate; a wide "
                "spread or two clusters means the rate depended on the prompt (long answers decode slower, see the "
                "position plot) or on what else ran; parallel phases share the machine, so each lane's rate is lower "
                "than a lone call's (their sum is in the lanes table)." + _extremes(*drawn, "tok/s"))


def ttft_plot(run_dir: Path, run: RunReport) -> Plot | None:
    drawn = spread_plot(run_dir, run, "first_delta_ms", "ttft.png", "Time to first token per call",
                        "TTFT (ms, log scale)", log=True, warm_percentiles=True)
    if drawn is None:
        return None
    return Plot("ttft.png",
                "Time to first token of every successful call (log scale), per cell and phase. Hollow diamonds are "
                "each prompt's first call: on a cold start it includes loading the model, so it sits far right of the "
                "others. The p50 (black) and p95 (red) bars are of the other calls, the warm ones: their TTFT is "
                "prompt processing, longer for longer prompts and conversations." + _extremes(*drawn, "ms", "{:,.0f}"))


def make_plots(run_dir: Path, run: RunReport) -> list[Plot]:
    """Write every plot the run has data for; run.md shows them in this order."""
    import matplotlib

    matplotlib.use("Agg")
    return [plot for make in PLOTS if (plot := make(run_dir, run)) is not None]


PLOTS: list[Callable[[Path, RunReport], Plot | None]] = [tokens_per_sec_plot, ttft_plot, decode_position_plot,
                                                          depth_plot, capacity_plot, endurance_plot, quality_plot, agent_plot]
