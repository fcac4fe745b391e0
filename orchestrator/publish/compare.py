"""Regression comparison between runs with the methodology's thresholds.

Per (cell, phase): warm TTFT p50 or warm total p50 at least 30% slower, or warm tok/s mean at
least 30% lower, is a regression; success rate under 0.95 is a red flag, and so is a phase
other processes contended in either run (metadata.json `contended_phases`); 30% better on any
of them is a win; an agent task a baseline completed and the candidate did not is a regression.
A pack's quality pass rate (metadata.json `quality`) differs only when the 95% interval on the
difference excludes zero (quality/scoring.difference_interval): a significant drop is a regression,
anything else "no detectable difference".
A baseline of several runs uses each metric's median, and the spread the
baseline runs showed is reported as the noise band.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.core import datafiles
from orchestrator.evaluate.agent.summary import stopped_completing
from orchestrator.core.errors import BadInput
from orchestrator.core.methodology import methodology
from orchestrator.core.runfolder import METADATA_NAME
from orchestrator.evaluate.quality.scoring import difference_interval

# The methodology's thresholds and metric directions (profiles/methodology.yaml)
THRESHOLD = methodology().relative_threshold
SUCCESS_FLOOR = methodology().success_floor
METRICS = methodology().higher_is_better  # metric -> True when a larger value is better


@dataclass
class MetricChange:
    metric: str
    baseline: float | None
    candidate: float | None
    change: float | None  # relative; positive = better
    noise_band: float | None  # (max - min) / median across baseline runs
    verdict: str  # regression | win | same | n/a


@dataclass
class CellComparison:
    key: str
    phase: str
    metrics: list[MetricChange] = field(default_factory=list)
    success_rate: float | None = None
    red_flag: bool = False
    contended: str | None = None  # why the figures are not the machine's own (a run's contended phase)

    @property
    def verdicts(self) -> set[str]:
        return {m.verdict for m in self.metrics}


NO_DIFFERENCE = "no detectable difference"


@dataclass
class PackDifference:
    key: str  # the cell (same machine) or engine:model (across machines)
    pack: str
    baseline: tuple[int, int]  # (passed, total): the median baseline run's
    candidate: tuple[int, int]
    low: float  # 95% interval on the candidate's pass rate minus the baseline's
    high: float
    verdict: str  # better | worse | no detectable difference


@dataclass
class Comparison:
    baseline_runs: list[str]
    candidate_run: str
    cells: list[CellComparison]
    unmatched: list[str]
    quality: tuple = ()  # quality.scoring.ScenarioDelta per scenario, from run folders (quality/rundir.compare_quality)
    quality_note: str | None = None  # why quality was not compared

    tasks_stopped_completing: list[str] = field(default_factory=list)  # agent tasks (agent/summary.py)
    quality_packs: list[PackDifference] = field(default_factory=list)  # pass rate per pack, tested

    @property
    def quality_regressions(self) -> int:
        return sum(d.status == "regression" for d in self.quality)

    @property
    def regressions(self) -> int:
        return (sum("regression" in c.verdicts for c in self.cells) + len(self.tasks_stopped_completing)
                + sum(p.verdict == "worse" for p in self.quality_packs))

    @property
    def red_flags(self) -> int:
        return sum(c.red_flag for c in self.cells)

    @property
    def wins(self) -> int:
        return sum("win" in c.verdicts for c in self.cells)

    def to_dict(self) -> dict[str, Any]:
        return {"baseline_runs": self.baseline_runs, "candidate_run": self.candidate_run,
                "thresholds": {"relative": THRESHOLD, "success_floor": SUCCESS_FLOOR},
                "regressions": self.regressions, "red_flags": self.red_flags, "wins": self.wins,
                "cells": [asdict(c) for c in self.cells], "unmatched": self.unmatched,
                "quality_regressions": self.quality_regressions, "quality": [asdict(d) for d in self.quality],
                "quality_note": self.quality_note,
                "tasks_stopped_completing": self.tasks_stopped_completing,
                "quality_packs": [asdict(p) for p in self.quality_packs]}


def load_metadata(path: Path) -> dict[str, Any]:
    file = path / METADATA_NAME if path.is_dir() else path
    if not file.exists():
        raise BadInput(f"{file}: not found (run `weeyuga report` on the run folder first)")
    return datafiles.load(file, "metadata")


def _rows(doc: dict[str, Any], by_model: bool) -> dict[tuple[str, str], dict[str, Any]]:
    """Rows keyed by cell (same machine) or by engine:model (across machines)."""
    out = {}
    for row in doc["cells"]:
        key = ":".join(row["cell_id"].split(":")[1:]) if by_model else row["cell_id"]
        out[(key, row["phase"])] = row
    return out


def _contended(doc: dict[str, Any], by_model: bool) -> dict[tuple[str, str], str]:
    """(key, phase) -> why, for the phases other processes contended in this run."""
    return {(":".join(f["cell_id"].split(":")[1:]) if by_model else f["cell_id"], f["phase"]): f["reason"]
            for f in doc.get("contended_phases") or []}


def compare(baselines: list[dict[str, Any]], candidate: dict[str, Any]) -> Comparison:
    by_model = not any(set(_rows(b, False)) & set(_rows(candidate, False)) for b in baselines)
    base_rows = [_rows(b, by_model) for b in baselines]
    cand_rows = _rows(candidate, by_model)
    cells, unmatched = [], []
    for key in sorted(cand_rows):
        present = [rows[key] for rows in base_rows if key in rows]
        if not present:
            unmatched.append(f"{key[0]} {key[1]}")
            continue
        row = cand_rows[key]
        cell = CellComparison(key[0], key[1], success_rate=row.get("success_rate"))
        contended = [(run, _contended(doc, by_model).get(key)) for run, doc in
                     [("candidate", candidate)] + [(f"baseline {b['run_id']}", b) for b in baselines]]
        cell.contended = "; ".join(f"{run}: {why}" for run, why in contended if why) or None
        cell.red_flag = (row.get("success_rate") is not None and row["success_rate"] < SUCCESS_FLOOR) or bool(cell.contended)
        for metric, higher_better in METRICS.items():
            values = [r[metric] for r in present if r.get(metric) is not None]
            base = statistics.median(values) if values else None
            value = row.get(metric)
            noise = (max(values) - min(values)) / base if len(values) >= 2 and base else None
            if base is None or value is None or base == 0:
                cell.metrics.append(MetricChange(metric, base, value, None, noise, "n/a"))
                continue
            change = (value - base) / base if higher_better else (base - value) / base
            verdict = "regression" if change <= -THRESHOLD else "win" if change >= THRESHOLD else "same"
            cell.metrics.append(MetricChange(metric, base, value, round(change, 4),
                                             round(noise, 4) if noise is not None else None, verdict))
        cells.append(cell)
    return Comparison([b["run_id"] for b in baselines], candidate["run_id"], cells, unmatched,
                      tasks_stopped_completing=stopped_completing(baselines, candidate, by_model),
                      quality_packs=pack_differences(baselines, candidate, by_model))


def _pack_counts(doc: dict[str, Any], by_model: bool) -> dict[tuple[str, str], tuple[int, int]]:
    """(key, pack) -> (passed, total) from metadata.json's `quality`."""
    out = {}
    for cell in doc.get("quality") or []:
        key = ":".join(cell["cell_id"].split(":")[1:]) if by_model else cell["cell_id"]
        for pack in cell["packs"]:
            out[(key, pack["pack"])] = (pack["passed"], pack["total"])
    return out


def pack_differences(baselines: list[dict[str, Any]], candidate: dict[str, Any], by_model: bool) -> list[PackDifference]:
    """Each pack both sides scored, tested. The baseline is its median run, not the runs pooled: greedy reruns of
    the same scenarios are not new samples, and pooling them would narrow the interval for nothing."""
    base = [_pack_counts(b, by_model) for b in baselines]
    out = []
    for key, (passed, total) in sorted(_pack_counts(candidate, by_model).items()):
        runs = sorted((counts[key] for counts in base if key in counts), key=lambda c: c[0] / c[1])
        if not runs:
            continue
        median = runs[(len(runs) - 1) // 2]
        interval = difference_interval(*median, passed, total)
        verdict = NO_DIFFERENCE if not interval.excludes_zero() else "better" if interval.low > 0 else "worse"
        out.append(PackDifference(key[0], key[1], median, (passed, total), round(interval.low, 4), round(interval.high, 4), verdict))
    return out


def render_markdown(result: Comparison) -> str:
    lines = [f"# Compare {result.candidate_run} against {len(result.baseline_runs)} baseline run(s)", "",
             f"Thresholds: ±{THRESHOLD:.0%} on warm TTFT p50, warm total p50 and warm tok/s mean; success below {SUCCESS_FLOOR}. "
             f"Result: {result.regressions} regression(s), {result.red_flags} red flag(s), {result.wins} win(s).", ""]
    if len(result.baseline_runs) < 3:
        lines += ["Baseline has fewer than 3 runs: no noise band; treat small changes with suspicion.", ""]
    lines += ["| cell | phase | metric | baseline | candidate | change | noise band | verdict |",
              "|---|---|---|---|---|---|---|---|"]
    for cell in result.cells:
        for m in cell.metrics:
            change = "–" if m.change is None else f"{m.change:+.0%}"
            noise = "–" if m.noise_band is None else f"{m.noise_band:.0%}"
            lines.append(f"| {cell.key} | {cell.phase} | {m.metric} | {m.baseline if m.baseline is not None else '–'} | "
                         f"{m.candidate if m.candidate is not None else '–'} | {change} | {noise} | {m.verdict} |")
        if cell.success_rate is not None and cell.success_rate < SUCCESS_FLOOR:
            lines.append(f"| {cell.key} | {cell.phase} | success_rate | | {cell.success_rate} | | | **red flag** |")
        if cell.contended:
            lines.append(f"| {cell.key} | {cell.phase} | contention | | {cell.contended} | | | **red flag** |")
    if result.tasks_stopped_completing:
        lines += ["", "Agent tasks that stopped completing (each counts as a regression):", ""]
        lines += [f"- **{line}**" for line in result.tasks_stopped_completing]
    if result.unmatched:
        lines += ["", "Not in the baseline: " + ", ".join(result.unmatched)]
    if result.quality_packs:
        lines += ["", "Quality pass rate per pack (a difference only where the 95% interval on it excludes 0):", "",
                  "| cell | pack | baseline | candidate | difference (95% CI) | verdict |", "|---|---|---|---|---|---|"]
        lines += [f"| {p.key} | {p.pack} | {p.baseline[0]}/{p.baseline[1]} | {p.candidate[0]}/{p.candidate[1]} | "
                  f"{p.candidate[0] / p.candidate[1] - p.baseline[0] / p.baseline[1]:+.0%} ({p.low:+.0%} to {p.high:+.0%}) | "
                  f"{'**worse**' if p.verdict == 'worse' else p.verdict} |" for p in result.quality_packs]
    if result.quality or result.quality_note:
        lines += ["", f"Quality per scenario (flips, not tests of significance): "
                      f"{result.quality_note or f'{result.quality_regressions} regression(s)'}"]
        lines += ["", "| pack | scenario | baseline pass rate | candidate pass rate | class |", "|---|---|---|---|---|"] if result.quality else []
        lines += [f"| {d.pack} | {d.scenario} | {'–' if d.baseline_rate is None else f'{d.baseline_rate:.0%}'} | "
                  f"{'–' if d.candidate_rate is None else f'{d.candidate_rate:.0%}'} | {d.status} |" for d in result.quality]
    return "\n".join(lines) + "\n"
