"""The quality and agent plots: pass rate per pack with its 95% Wilson interval, and each agent
task's outcome per cell and workflow with pass@1 / pass@2, from metadata.json's `quality` and `agent`."""

from __future__ import annotations

import math
from pathlib import Path

from orchestrator.publish.report.model import RunReport
from orchestrator.publish.report.plotlayout import WIDTH_IN, WRAP_CHARS, Bands, Plot, cell_names, legend_below, save, series_colours, wrap

Z_95 = 1.959964
# One colour per agent outcome (orchestrator/agent/loop.py OUTCOMES): green is the only success.
OUTCOME_COLOURS = {"completed": "#228833", "stagnated": "#ccbb44", "budget": "#ee6677", "fault": "#aa3377",
                   "interrupted": "#66ccee", "skipped": "#bbbbbb"}


def wilson_interval(passed: int, total: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a pass rate: honest at 0/n and n/n, where the normal one collapses."""
    if total <= 0:
        return 0.0, 1.0
    rate = passed / total
    centre = (rate + Z_95**2 / (2 * total)) / (1 + Z_95**2 / total)
    half = Z_95 * math.sqrt(rate * (1 - rate) / total + Z_95**2 / (4 * total**2)) / (1 + Z_95**2 / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def quality_plot(run_dir: Path, run: RunReport) -> Plot | None:
    from matplotlib.lines import Line2D

    cells = run.metadata.get("quality") or []
    packs = list(dict.fromkeys(p["pack"] for cell in cells for p in cell["packs"]))
    if not packs:
        return None
    names = cell_names([cell["cell_id"] for cell in cells])
    bands = Bands([names.label[cell["cell_id"]] for cell in cells], packs)
    colours = series_colours(packs)
    fig, ax = bands.figure("Quality: pass rate per pack, 95% interval", "scenarios passed (strict pass@1)")
    for row, cell in enumerate(cells):
        for pack in (p for p in cell["packs"] if p["score"] is not None):  # every call a serving error: nothing to plot
            y = bands.y(row, packs.index(pack["pack"]))
            low, high = wilson_interval(pack["passed"], pack["total"])
            ax.plot([low, high], [y, y], color=colours[pack["pack"]], linewidth=2, alpha=0.5, solid_capstyle="butt")
            ax.plot(pack["score"], y, "o", color=colours[pack["pack"]], markersize=5)
            ax.annotate(f"{pack['passed']}/{pack['total']}", (1.0, y), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=7, annotation_clip=False)
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(lambda value, _: f"{value * 100:.0f}%")
    legend_below(fig, ax, [Line2D([], [], marker="o", color=colours[p], label=p) for p in packs], title="pack")
    save(fig, run_dir / "quality.png")
    return Plot("quality.png",
                "Pass rate per quality pack (dot; passed/total at the right) with its 95% Wilson interval (bar), per "
                "cell. The interval is wide when a pack has few scenarios: two packs or two runs whose bars overlap "
                "are not shown to differ. The failures behind each rate are listed in the Quality section."
                + names.caption())


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _rates_line(language: str, rates: dict) -> str:
    """pass@1 and pass@2 for two-try runs, the completion rate for ralph runs (which have neither)."""
    if rates.get("pass_at_1") is not None:
        return f"{language} pass@1 {_percent(rates['pass_at_1'])}, pass@2 {_percent(rates['pass_at_2'])}"
    return f"{language} completed {_percent(rates.get('completion_rate'))}"


def agent_plot(run_dir: Path, run: RunReport) -> Plot | None:
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = run.metadata.get("agent") or []
    tasks = list(dict.fromkeys(t["task"] for row in rows for t in row["tasks"]))
    if not tasks:
        return None
    names = cell_names([row["cell_id"] for row in rows])
    labels = [f"{names.label[row['cell_id']]} {row['workflow']}\n" + "; ".join(_rates_line(language, rates)
              for language, rates in row["pass_rates"].items()) for row in rows]
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 1.6 + 0.45 * len(rows)))
    for y, row in enumerate(rows):
        for task in row["tasks"]:
            x = tasks.index(task["task"])
            ax.add_patch(plt.Rectangle((x - 0.45, y - 0.4), 0.9, 0.8, color=OUTCOME_COLOURS.get(task["outcome"], "#000000")))
            mark = "@1" if task.get("pass_at_1") else ("@2" if task.get("pass_at_2") else "")
            if mark:
                ax.text(x, y, mark, ha="center", va="center", fontsize=7, color="white")
    ax.set_xlim(-0.5, len(tasks) - 0.5)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xticks(range(len(tasks)), [wrap(t, 14) for t in tasks], fontsize=7, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [wrap(label, WRAP_CHARS + 8) for label in labels], fontsize=7)
    ax.set_title("Agent tasks: outcome per task", fontsize=10)
    present = list(dict.fromkeys(t["outcome"] for row in rows for t in row["tasks"]))
    legend_below(fig, ax, [Patch(color=OUTCOME_COLOURS.get(o, "#000000"), label=o) for o in present], title="outcome")
    save(fig, run_dir / "agent.png")
    return Plot("agent.png",
                "Outcome of each agent task (column) per cell and workflow (row): green is completed, judged by the "
                "task's own tests passing 3 times, never by the model's word; @1 / @2 mark a task solved on the first "
                "or second try (two-try workflow). The row label gives pass@1 and pass@2 (cumulative) per language, "
                "or the completion rate for ralph runs; the unsatisfiable control and skipped tasks stay out of the "
                "rates."
                + names.caption())
