"""run.md's headline and metadata.json's `headline` field (orchestrator/report/headline.py)."""

import json

import jsonschema

from orchestrator.core.paths import REPO_ROOT
from orchestrator.publish.report import RunReport
from orchestrator.publish.report.headline import headline_metadata, headline_section

CELL = "box:llamacpp:m"
SCHEMA = json.loads((REPO_ROOT / "orchestrator" / "core" / "schemas" / "metadata.schema.json").read_text())


def row(phase, tps, warm_tps, ttft, warm_ttft, calls=4):
    return {"cell_id": CELL, "phase": phase, "n_calls": calls, "n_errors": 0, "tokens_per_sec_mean": tps,
            "warm_tokens_per_sec_mean": warm_tps, "first_delta_ms_p50": ttft, "warm_first_delta_ms_p50": warm_ttft}


def agent_run(task, outcome, first, second, kind="implement", language="python"):
    return {"type": "agent_run", "cell_id": CELL, "phase": "agent", "task": task, "language": language, "kind": kind,
            "workflow": "two-try", "outcome": outcome, "pass_at_1": first, "pass_at_2": second}


RECORDS = [{"type": "meta", "cells_planned": [CELL]},
           agent_run("a", "completed", True, True), agent_run("b", "completed", False, True),
           agent_run("c", "budget", False, False), agent_run("ctrl", "budget", False, False, kind="unsatisfiable"),
           agent_run("js", "skipped", None, None, language="javascript")]
METADATA = {"cells": [row("hello", 50.0, 60.0, 100.0, 80.0), row("5q", 40.0, None, 90.0, None),
                      row("quality", 5.0, None, 900.0, None, calls=16)],
            "quality": [{"cell_id": CELL, "mode": "quick", "summary": "Quality: …", "failures": [],
                         "packs": [{"pack": "toolcall", "version": 1, "passed": 3, "total": 4, "score": 0.75},
                                   {"pack": "instruct", "version": 1, "passed": 1, "total": 4, "score": 0.25}]}]}


def test_the_headline_holds_all_three_axes_per_cell_and_validates():
    (entry,) = headline_metadata(RECORDS, METADATA, {"hello", "5q"})["headline"]
    assert entry["speed"] == {"decode_tokens_per_sec": 50.0, "ttft_ms": 85.0, "phases": ["hello", "5q"], "calls": 8, "errors": 0}
    assert entry["quality"] == {"mode": "quick", "pass_rate": 0.5, "scenarios": 8, "packs": {"toolcall": 0.75, "instruct": 0.25}}
    # the unsatisfiable control and the skipped task stay out of the rates
    assert entry["agent"] == {"workflow": "two-try", "tasks": 3, "completed": 2, "completion_rate": 0.6667,
                              "pass_at_1": 0.3333, "pass_at_2": 0.6667, "skipped": 1}
    jsonschema.validate([entry], SCHEMA["properties"]["headline"])


def report_of(records, metadata, manifest=None):
    return RunReport(records, manifest or {}, None, metadata | headline_metadata(records, metadata, {"hello", "5q"}))


def test_run_md_opens_with_one_block_and_says_why_an_axis_did_not_run():
    text = "\n".join(headline_section(report_of(RECORDS, METADATA)))
    assert text.startswith("## Headline")
    assert f"| {CELL} | 50.0 | 85.0 ms | 50% of 8 (toolcall 75%, instruct 25%) | 33% / 67% of 3 task(s) (two-try) |" in text
    assert "not run" not in text
    manifest = {"budget_plan": {"axes": [{"axis": "agent", "skipped": {"agent": "not selected: too slow here"}}]}}
    speed_only = report_of(RECORDS[:1], {"cells": METADATA["cells"][:2]}, manifest)
    text = "\n".join(headline_section(speed_only))
    assert f"| {CELL} | 50.0 | 85.0 ms | – | – |" in text
    assert f"- {CELL} agent: not run: not selected: too slow here." in text and f"- {CELL} quality: not run." in text
    cut = {**METADATA, "skipped": [{"cell_id": CELL, "phase": "quality", "reason": "time budget: stopped after 5 of 16 units"}]}
    assert f"- {CELL} quality: time budget: stopped after 5 of 16 units." in "\n".join(headline_section(report_of(RECORDS, cut)))


def test_a_ralph_run_shows_its_completion_rate():
    ralph = [RECORDS[0], {**agent_run("a", "completed", None, None), "workflow": "ralph"}]
    text = "\n".join(headline_section(report_of(ralph, {"cells": []})))
    assert "completed 100% of 1 task(s) (ralph)" in text
