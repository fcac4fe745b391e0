"""The headline: one block for all three axes at the top of run.md, and metadata.json's additive
`headline` field (one entry per cell): decode tok/s and TTFT over the speed phases, the quality
pass rate per pack, and the agent's pass@1 / pass@2 (two-try) or completion rate (ralph).

Speed figures are the median over the cell's speed phases of the warm decode rate and warm TTFT
(the whole phase's where it has no warm calls), as the leaderboard summarises them. An axis a run
did not measure is null, and run.md says why when auto's budget plan skipped it.
"""

from __future__ import annotations

import statistics
from typing import Any

from orchestrator.evaluate.agent.summary import pass_rates

from orchestrator.publish.report.model import RunReport


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def speed_headline(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not rows:
        return None
    rates = [r.get("warm_tokens_per_sec_mean") or r["tokens_per_sec_mean"] for r in rows
             if (r.get("warm_tokens_per_sec_mean") or r["tokens_per_sec_mean"]) is not None]
    ttfts = [r.get("warm_first_delta_ms_p50") or r.get("first_delta_ms_p50") for r in rows
             if (r.get("warm_first_delta_ms_p50") or r.get("first_delta_ms_p50")) is not None]
    return {"decode_tokens_per_sec": _median(rates), "ttft_ms": _median(ttfts), "phases": [r["phase"] for r in rows],
            "calls": sum(r["n_calls"] for r in rows), "errors": sum(r["n_errors"] for r in rows)}


def quality_headline(cell: dict[str, Any] | None) -> dict[str, Any] | None:
    if not cell:
        return None
    passed, total = sum(p["passed"] for p in cell["packs"]), sum(p["total"] for p in cell["packs"])
    return {"mode": cell["mode"], "pass_rate": round(passed / total, 4) if total else None, "scenarios": total,
            "packs": {p["pack"]: p["score"] for p in cell["packs"] if p["score"] is not None}}


def agent_headline(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Over every language at once; the unsatisfiable control and skipped tasks stay out, as per language."""
    if not runs:
        return None
    overall = pass_rates([{"record": "agent_run", **r, "language": "all"} for r in runs])["all"]
    return {"workflow": "/".join(sorted({r["workflow"] for r in runs})), "tasks": overall["tasks"],
            "completed": overall["completed"], "completion_rate": overall["completion_rate"],
            "pass_at_1": overall["pass_at_1"], "pass_at_2": overall["pass_at_2"], "skipped": overall["skipped"]}


def headline_metadata(records: list[dict[str, Any]], metadata: dict[str, Any], speed_phases: set[str]) -> dict[str, Any]:
    """{"headline": [...]} one entry per cell the run planned, in its order."""
    cells = list(dict.fromkeys([*records[0].get("cells_planned", []), *(r["cell_id"] for r in metadata["cells"])]))
    quality = {c["cell_id"]: c for c in metadata.get("quality", [])}
    agent_runs = [r for r in records if r.get("type") == "agent_run"]
    return {"headline": [{
        "cell_id": cell_id,
        "speed": speed_headline([r for r in metadata["cells"] if r["cell_id"] == cell_id and r["phase"] in speed_phases]),
        "quality": quality_headline(quality.get(cell_id)),
        "agent": agent_headline([r for r in agent_runs if r["cell_id"] == cell_id]),
    } for cell_id in cells]}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _num(value: float | None, unit: str = "") -> str:
    return "–" if value is None else f"{value:,.1f}{unit}"


def why_not_run(manifest: dict[str, Any], axis: str) -> str:
    """Auto's reason for skipping an axis, or the plain fact."""
    for planned in (manifest.get("budget_plan") or {}).get("axes", []):
        if planned["axis"] == axis and axis in planned["skipped"]:
            return f"not run: {planned['skipped'][axis]}"
    return "not run"


def headline_section(run: "RunReport") -> list[str]:
    lines = ["## Headline", "",
             "| cell | decode tok/s | TTFT | quality pass rate (per pack) | agent pass@1 / pass@2 |", "|---|---|---|---|---|"]
    notes = []
    for entry in run.metadata.get("headline", []):
        speed, quality, agent = entry["speed"], entry["quality"], entry["agent"]
        quality_text = agent_text = "–"
        if quality:
            packs = ", ".join(f"{pack} {_pct(score)}" for pack, score in quality["packs"].items())
            quality_text = f"{_pct(quality['pass_rate'])} of {quality['scenarios']} ({packs})"
        if agent and agent["pass_at_1"] is None:  # ralph: no tries to count, only completion
            agent_text = f"completed {_pct(agent['completion_rate'])} of {agent['tasks']} task(s) ({agent['workflow']})"
        elif agent:
            agent_text = f"{_pct(agent['pass_at_1'])} / {_pct(agent['pass_at_2'])} of {agent['tasks']} task(s) ({agent['workflow']})"
        lines.append(f"| {entry['cell_id']} | {_num(speed['decode_tokens_per_sec']) if speed else '–'} | "
                     f"{_num(speed['ttft_ms'], ' ms') if speed else '–'} | {quality_text} | {agent_text} |")
        for axis, value in (("speed", speed), ("quality", quality), ("agent", agent)):
            if value is None:
                notes.append(f"{entry['cell_id']} {axis}: {why_not_run(run.manifest, axis)}.")
        notes += [f"{entry['cell_id']} {skip['phase']}: {skip['reason']}." for skip in run.metadata.get("skipped", [])
                  if skip["cell_id"] == entry["cell_id"] and skip["reason"].startswith("time budget")]
    lines += [""] + [f"- {note}" for note in dict.fromkeys(notes)] + ([""] if notes else [])
    lines += ["Decode tok/s and TTFT: medians over the speed phases (warm calls where there are any). Quality: "
              "scenarios passed, strict pass@1. Agent: the gate's verdict after try 1 / after try 1 or 2.", ""]
    return lines
