"""The quality part of a run's report: metadata.json's `quality` (one entry per cell) and run.md's
quality section (pack table, failure breakdown, the one-line summary), from the effective verdicts
(the newest verifier version's, so a rescore shows here)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from orchestrator.evaluate.quality.records import effective
from orchestrator.evaluate.quality.scoring import failure_breakdown, markdown_table, one_liner, pack_scores

from orchestrator.publish.report.model import RunReport


def quality_metadata(records: list[dict[str, Any]]) -> dict[str, Any]:
    """`{"quality": [...]}` when the run judged any scenario, else nothing (metadata stays as it was)."""
    verdicts = effective(records)
    if not verdicts:
        return {}
    meta = records[0]
    mode = (meta.get("options", {}).get("quality") or {}).get("mode") or "quick"
    date = (meta.get("started_at_utc") or "")[:10]
    cells = []
    for cell_id in dict.fromkeys(v["cell_id"] for v in verdicts):
        mine = [v for v in verdicts if v["cell_id"] == cell_id]
        scores = pack_scores(mine)
        cells.append({"cell_id": cell_id, "mode": mode, "summary": one_liner(scores, mode, date),
                      "packs": [dataclasses.asdict(s) for s in scores],
                      "failures": [{k: v[k] for k in ("pack", "scenario", "repeat_idx", "failure_mode", "detail")}
                                   for v in mine if not v["passed"]]})
    return {"quality": cells}


def quality_section(run: "RunReport") -> list[str]:
    verdicts = effective(run.records)
    no_tools = {c["cell_id"] for c in run.meta.get("cells", []) if c.get("chat_template_tools") is False}
    lines = ["", "## Quality", ""]
    for cell in run.metadata.get("quality", []):
        mine = [v for v in verdicts if v["cell_id"] == cell["cell_id"]]
        scores = pack_scores(mine)
        lines += [f"**{cell['cell_id']}** — {cell['summary']}", "", markdown_table(scores), ""]
        if cell["cell_id"] in no_tools and any(v["verifier"] in ("tool_call", "bfcl") for v in mine):
            lines += ["The model's chat template does not render tools (llama-server's chat_template_caps): the "
                      "model never saw the tool declarations, so its toolcall and bfcl scores measure restraint only.", ""]
        failures = failure_breakdown([v for v in mine if v["verifier"] != "bfcl"]) + bfcl_failure_counts(mine)
        if failures:
            lines += ["Failures (pack, scenario, failure mode, detail):", "", *failures, ""]
    return lines


def bfcl_failure_counts(verdicts: list[dict]) -> list[str]:
    """BFCL packs run to thousands of questions: their failures are counted by mode, one line a pack
    (`weeyuga quality inspect RUN_DIR --failed` lists them one by one)."""
    counts: dict[str, Counter] = {}
    for v in verdicts:
        if v["verifier"] == "bfcl" and not v["passed"]:
            counts.setdefault(v["pack"], Counter())[v["failure_mode"]] += 1
    return [f"- {pack}: {sum(modes.values())} failed ({', '.join(f'{mode} {n}' for mode, n in modes.most_common())})"
            for pack, modes in counts.items()]
