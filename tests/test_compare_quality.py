"""compare's quality verdict per pack: a difference only where the interval on it excludes zero."""

from orchestrator.publish.compare import NO_DIFFERENCE, compare, render_markdown


def metadata(run_id, packs):
    """A metadata.json with no speed cells (so compare keys by engine:model) and one quality cell."""
    return {"run_id": run_id, "cells": [], "quality": [
        {"cell_id": "node:llama.cpp:m", "mode": "full", "summary": "Quality: …", "failures": [],
         "packs": [{"pack": p, "version": 2, "passed": k, "total": n, "score": k / n} for p, (k, n) in packs.items()]}]}


def test_only_a_significant_drop_is_a_regression_and_noise_is_said_to_be_none():
    baselines = [metadata(f"b{i}", {"math": (k, 215), "instruct": (60, 215), "toolcall": (5, 16)})
                 for i, k in enumerate((120, 118, 125))]
    candidate = metadata("c", {"math": (80, 215), "instruct": (66, 215), "toolcall": (8, 16)})
    result = compare(baselines, candidate)
    verdicts = {p.pack: p.verdict for p in result.quality_packs}
    assert verdicts == {"math": "worse", "instruct": NO_DIFFERENCE, "toolcall": NO_DIFFERENCE}
    math = next(p for p in result.quality_packs if p.pack == "math")
    assert math.baseline == (120, 215)  # the median run, not the three pooled
    assert math.high < 0 and result.regressions == 1
    text = render_markdown(result)
    assert "| llama.cpp:m | math | 120/215 | 80/215 | -19% (" in text and "| **worse** |" in text
    assert f"| llama.cpp:m | toolcall | 5/16 | 8/16 | +19% (" in text and NO_DIFFERENCE in text


def test_a_significant_gain_is_better_and_not_a_regression():
    result = compare([metadata("b", {"math": (40, 215)})], metadata("c", {"math": (90, 215)}))
    assert [p.verdict for p in result.quality_packs] == ["better"] and result.regressions == 0
