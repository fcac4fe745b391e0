"""Pure helpers that turn agent_run records into the report's agent table and pass rates.

pass@1 = passed after try 1; pass@2 = passed after try 1 or try 2 (cumulative, as aider counts
it). Ralph runs have neither; their rate is the share of tasks that completed. Unsatisfiable
control tasks and skipped tasks are listed in the table but left out of the rates.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

TABLE_COLUMNS = ("task", "language", "outcome", "pass@1", "pass@2", "passes", "tool calls", "duration_s")


def latest_runs(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The last agent_run per (task, workflow), in task order: a resumed task's later attempt wins."""
    latest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for record in records:
        if record.get("record") == "agent_run":
            latest[(record["task"], record["workflow"])] = record
    return [latest[key] for key in sorted(latest)]


def agent_table(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"task": r["task"], "language": r["language"], "outcome": r["outcome"], "pass@1": r["pass_at_1"],
             "pass@2": r["pass_at_2"], "passes": r["passes"], "tool calls": r["tool_calls"],
             "duration_s": r["duration_s"]} for r in latest_runs(records)]


def pass_rates(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per language: tasks counted, completed, skipped, completion rate, and pass@1/pass@2 rates
    for two-try runs (None where no two-try run counted)."""
    rates: dict[str, dict[str, Any]] = {}
    for record in latest_runs(records):
        row = rates.setdefault(record["language"], {"tasks": 0, "completed": 0, "skipped": 0, "controls": 0,
                                                    "two_try": 0, "pass_at_1": 0, "pass_at_2": 0})
        if record["outcome"] == "skipped":
            row["skipped"] += 1
        elif record["kind"] == "unsatisfiable":
            row["controls"] += 1
        else:
            row["tasks"] += 1
            row["completed"] += record["outcome"] == "completed"
            if record["pass_at_1"] is not None:
                row["two_try"] += 1
                row["pass_at_1"] += bool(record["pass_at_1"])
                row["pass_at_2"] += bool(record["pass_at_2"])
    for row in rates.values():
        row["completion_rate"] = round(row["completed"] / row["tasks"], 4) if row["tasks"] else None
        two_try = row.pop("two_try")
        row["pass_at_1"] = round(row["pass_at_1"] / two_try, 4) if two_try else None
        row["pass_at_2"] = round(row["pass_at_2"] / two_try, 4) if two_try else None
    return dict(sorted(rates.items()))


def stopped_completing(baselines: list[Mapping[str, Any]], candidate: Mapping[str, Any], by_model: bool) -> list[str]:
    """Tasks a baseline run completed that the candidate ran and did not complete, from metadata.json's
    `agent` field, matched by cell (same machine) or engine:model (across machines) and workflow."""
    def outcomes(doc: Mapping[str, Any]) -> dict[tuple[str, str, str], str]:
        out = {}
        for cell in doc.get("agent") or []:
            key = ":".join(cell["cell_id"].split(":")[1:]) if by_model else cell["cell_id"]
            for task in cell["tasks"]:
                out[(key, cell["workflow"], task["task"])] = task["outcome"]
        return out

    completed_before: dict[tuple[str, str, str], list[str]] = {}
    for baseline in baselines:
        for key, outcome in outcomes(baseline).items():
            if outcome == "completed":
                completed_before.setdefault(key, []).append(baseline["run_id"])
    return [f"{key[2]} ({key[0]}, {key[1]}): completed in {', '.join(completed_before[key])}, now {outcome}"
            for key, outcome in sorted(outcomes(candidate).items()) if key in completed_before and outcome != "completed"]
