"""Decode rate against position in the answer: the `decode_profile` of each call (tokens/s per
32-token window, orchestrator/decode_profile.py) read from responses.jsonl, one thin line per call
and the median over a cell's calls per window in bold."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from orchestrator.measure.decode_profile import window_positions
from orchestrator.core.ledger import read_records
from orchestrator.publish.report.model import RunReport
from orchestrator.publish.report.figures import percentile
from orchestrator.publish.report.plotlayout import WIDTH_IN, Plot, cell_names, legend_below, save, series_colours
from orchestrator.core.runfolder import RESPONSES_NAME

MIN_WINDOWS = 2  # a call with one window has no trend to show
OVERLAY_CELLS = 6  # more cells than this get one small panel each
PANEL_COLUMNS = 5


def decode_profiles(run_dir: Path) -> dict[tuple, dict[str, Any]]:
    """Each call's decode profile by its key (cell, phase, prompt, run, lane, ...), from responses.jsonl."""
    path = run_dir / RESPONSES_NAME
    if not path.exists():
        return {}
    return {tuple(line["key"]): line["decode_profile"] for line in read_records(path)
            if isinstance(line.get("decode_profile"), dict) and isinstance(line.get("key"), list)}


def cell_medians(profiles: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Median rate per window over the calls that reached it, with the window's mean position, for the
    windows at least half the calls reached (past that, one long answer would pass for the median)."""
    rates: dict[int, list[float]] = defaultdict(list)
    positions: dict[int, list[float]] = defaultdict(list)
    for profile in profiles:
        for index, (x, rate) in enumerate(zip(window_positions(profile), profile["tokens_per_sec"])):
            rates[index].append(rate)
            positions[index].append(x)
    indices = [i for i in sorted(rates) if 2 * len(rates[i]) >= len(profiles)]
    return ([sum(positions[i]) / len(positions[i]) for i in indices], [percentile(rates[i], 0.5) for i in indices])


def _draw_cell(ax: Any, profiles: list[dict[str, Any]], colour: Any) -> tuple[list[float], list[float]]:
    from matplotlib.collections import LineCollection

    ax.add_collection(LineCollection([list(zip(window_positions(p), p["tokens_per_sec"])) for p in profiles],
                                     colors=[colour], alpha=0.25, linewidths=0.8))
    xs, medians = cell_medians(profiles)
    ax.plot(xs, medians, color=colour, linewidth=2.2)
    ax.tick_params(labelsize=7)
    ax.grid(color="#eeeeee")
    return xs, medians


def decode_position_plot(run_dir: Path, run: RunReport) -> Plot | None:  # run: unused, PLOTS' signature
    """One panel with every cell up to OVERLAY_CELLS cells; past that, one small panel per cell."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    by_cell: dict[str, list[dict[str, Any]]] = defaultdict(list)  # failed calls have no profile
    for key, profile in decode_profiles(run_dir).items():
        if len(profile.get("tokens_per_sec") or []) >= MIN_WINDOWS:
            by_cell[key[0]].append(profile)
    if not by_cell:
        return None
    cells = list(by_cell)
    names = cell_names(cells)
    colours = series_colours(cells)
    findings = []
    if len(cells) <= OVERLAY_CELLS:
        fig, ax = plt.subplots(figsize=(WIDTH_IN, 4.2))
        axes = [ax] * len(cells)
    else:
        rows = math.ceil(len(cells) / PANEL_COLUMNS)
        fig, grid = plt.subplots(rows, PANEL_COLUMNS, figsize=(WIDTH_IN, 1.5 * rows + 0.8), sharex=True, sharey=True,
                                 squeeze=False)
        axes = list(grid.flat)
        for cell, ax in zip(cells, axes):
            ax.set_title(names.label[cell], fontsize=8, pad=2)
        for ax in axes[len(cells):]:
            ax.set_visible(False)
    for cell, ax in zip(cells, axes):
        xs, medians = _draw_cell(ax, by_cell[cell], colours[cell])
        findings.append(f"{names.label[cell]} ({len(by_cell[cell])} calls): {medians[0]:,.1f} tok/s in the first "
                        f"window, {medians[-1]:,.1f} tok/s around token {xs[-1]:,.0f}")
    for ax in axes:  # after drawing: an earlier limit would freeze the autoscale
        ax.set_ylim(bottom=0)
        ax.set_xlim(left=0)
    fig.suptitle("Decode rate along the answer", fontsize=10)
    fig.supxlabel("position in the answer (tokens)", fontsize=9)
    fig.supylabel("decode rate (tokens/s, 32-token windows)", fontsize=9)
    if len(cells) <= OVERLAY_CELLS:
        handles = [Line2D([], [], color=colours[c], linewidth=2.2, label=names.label[c]) for c in cells]
        handles.append(Line2D([], [], color="grey", alpha=0.4, linewidth=0.8, label="one call"))
        legend_below(fig, axes[0], handles)
    else:
        height = fig.get_size_inches()[1]
        fig.subplots_adjust(hspace=0.45, wspace=0.12, top=1 - 0.5 / height, bottom=0.55 / height, left=0.1)
    save(fig, run_dir / "decode_by_position.png")
    return Plot("decode_by_position.png",
                "Decode rate in 32-token windows against the position in the answer: one thin line per call (answers "
                "of at least 48 tokens), the median over a cell's calls in bold (where at least half its calls "
                "reached). A falling line is the cost of attending to a growing context, so a long answer decodes "
                "slower on average than a short one; a jagged line is interference (other processes, thermal "
                "limits). " + "; ".join(findings) + "." + names.caption())
