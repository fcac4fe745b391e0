"""The agent phase in the report: metadata.json's additive `agent` field and run.md's section.

Per cell, the latest attempt at each task (a resumed task's later attempt wins) and pass rates per
language (orchestrator/agent/summary.py). pass@2 is cumulative: passed after try 1 or try 2.
"""

from __future__ import annotations

from typing import Any

from orchestrator.evaluate.agent.summary import TABLE_COLUMNS, agent_table, pass_rates

from orchestrator.publish.report.model import RunReport

CUMULATIVE_NOTE = ("pass@1 = the gate passed after try 1; pass@2 = it passed after try 1 or try 2 (cumulative, "
                   "two-try only; ralph runs show –). Completion is the gate's verdict (3 runs of the task's own "
                   "tests), never the model's word; the unsatisfiable control and skipped tasks stay out of the rates.")


def agent_metadata(records: list[dict[str, Any]]) -> dict[str, Any]:
    """{"agent": [...]} per cell and workflow, or {} for a run without agent tasks (metadata stays as it was)."""
    runs = [r for r in records if r.get("type") == "agent_run"]
    if not runs:
        return {}
    out = []
    for cell_id, workflow in sorted({(r["cell_id"], r["workflow"]) for r in runs}):
        mine = [{"record": "agent_run", **r} for r in runs if (r["cell_id"], r["workflow"]) == (cell_id, workflow)]
        tasks = [{"task": row["task"], "language": row["language"], "outcome": row["outcome"], "pass_at_1": row["pass@1"],
                  "pass_at_2": row["pass@2"], "passes": row["passes"], "tool_calls": row["tool calls"],
                  "duration_s": row["duration_s"]} for row in agent_table(mine)]
        out.append({"cell_id": cell_id, "workflow": workflow, "tasks": tasks, "pass_rates": pass_rates(mine)})
    return {"agent": out}


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def agent_section(run: "RunReport") -> list[str]:
    lines = ["", "## Agent tasks", "", CUMULATIVE_NOTE]
    for cell in run.metadata.get("agent", []):
        lines += ["", f"**{cell['cell_id']}**, workflow {cell['workflow']}", "",
                  "| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
        for t in cell["tasks"]:
            lines.append(f"| {t['task']} | {t['language']} | {t['outcome']} | {_cell(t['pass_at_1'])} | "
                         f"{_cell(t['pass_at_2'])} | {t['passes']} | {t['tool_calls']} | {_cell(t['duration_s'])} |")
        lines += ["", "| language | tasks | completed | completion | pass@1 | pass@2 (cumulative) | skipped | controls |",
                  "|---|---|---|---|---|---|---|---|"]
        for language, r in cell["pass_rates"].items():
            lines.append(f"| {language} | {r['tasks']} | {r['completed']} | {_rate(r['completion_rate'])} | "
                         f"{_rate(r['pass_at_1'])} | {_rate(r['pass_at_2'])} | {r['skipped']} | {r['controls']} |")
    return lines
