"""What tune writes: the tuned profile (profiles/local/<device-tag>.yaml) and the report's json, md and png."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from orchestrator.core import datafiles
from orchestrator.core.errors import WeeyugaError
from orchestrator.core.paths import data_dir
from orchestrator.flows.tune.search import Candidate, TuneReport
from orchestrator.core.atomic import write_text_atomic
from orchestrator.plan.knobs import launch_knobs, tunable_knobs


def write_tuned_profile(report: TuneReport, directory: Path | None = None) -> Path:
    """profiles/local/<device-tag>.yaml: decide and auto apply it as 'tuned' deviations."""
    if not report.recommended:
        raise WeeyugaError(f"nothing to write: no configuration of {report.model} ran on this machine")
    directory = directory or data_dir("profiles") / "local"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{report.device_tag}.yaml"
    doc = datafiles.read_document(path) if path.exists() else None
    doc = doc or {"schema_version": "tuned-1", "device_tag": report.device_tag, "models": {}}
    entry = doc["models"].setdefault(report.model, {})
    if report.axes is not None:  # a new launch-knob search replaces what an earlier one kept
        for knob in (*launch_knobs(), "evidence", "objective"):
            entry.pop(knob, None)
        entry["objective"] = report.objective
        search = {k: report.axes[k] for k in ("start", "noise", "start_scores", "max_kld", "launches", "skipped")}
        evidence = {"search": search, **report.axes["axes"]}
        entry["evidence"] = json.loads(json.dumps(evidence))  # plain copies: weeyuga's YAML refuses aliases
    for knob in tunable_knobs():
        if knob in report.recommended:
            entry[knob] = report.recommended[knob]
    entry["tokens_per_sec"] = report.recommended["tokens_per_sec"]
    write_text_atomic(path, "# Written by `weeyuga tune`; measured on this machine. Delete to go back to the rules.\n"
                      + yaml.safe_dump(doc, sort_keys=True))
    return path


def _table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| candidate | ok | tok/s | TTFT ms | RSS MB | VRAM MB | failure |", "|---|---|---|---|---|---|---|"]
    for c in rows:
        label = Candidate(**{f.name: c.get(f.name) for f in dataclasses.fields(Candidate)}).label()
        rate = f"{c['tokens_per_sec']:.1f}" if c["tokens_per_sec"] else "–"
        lines.append(f"| {label} | {'yes' if c['ok'] else 'no'} | {rate} | {c['ttft_ms'] or '–'} | "
                     f"{c['peak_rss_mb'] or '–'} | {c['peak_vram_mb'] or '–'} | {c['failure'] or ''} |")
    return lines


def _knobs_text(knobs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in knobs.items() if v is not None) or "the runtime's default"


def _axes_section(axes: dict[str, Any]) -> list[str]:
    """The launch-knob search: each value measured, with its rates, spread and KLD, and what was kept."""
    lines = [f"## Launch knobs ({'grid' if axes['exhaustive'] else 'coordinate descent'}, objective {axes['objective']})", "",
             f"Start: {_knobs_text(axes['start'])}, launched {len(axes['start_scores'])}×: {axes['start_scores']} "
             f"(noise {axes['noise']:.1%}: a change is kept only when it scores above the incumbent by more). "
             f"Chosen: {_knobs_text(axes['chosen'])} at {axes['chosen_score']}. Launches: {axes['launches']}."
             + (f" KLD budget {axes['max_kld']:g}." if axes["max_kld"] is not None else "")]
    header = ["| value | score | decode tok/s (spread) | prefill tok/s | repetitive tok/s | drafts accepted | load s | KLD | note |",
              "|---|---|---|---|---|---|---|---|---|"]

    def row(r: dict[str, Any]) -> str:
        def cell(key: str) -> str:
            return "–" if r.get(key) is None else f"{r[key]}"
        spread = f" (±{r['decode_spread'] / 2:.0%})" if r.get("decode_spread") is not None else ""
        kld = "–" if r["kld"] is None else f"{r['kld']:.4g}" + (f" ± {r['kld_plus_minus']:.2g}" if r.get("kld_plus_minus") else "")
        note = r["refused"] or r.get("failure") or ""
        return (f"| {_knobs_text(r['value'])} | {cell('score')} | {cell('decode')}{spread} | {cell('prefill')} | "
                f"{cell('repetitive')} | {cell('draft_acceptance')} | {cell('load_s')} | {kld} | {note} |")

    for name, axis in axes["axes"].items():
        lines += ["", f"### {name}: {axis['why']}" + (" (gated by KLD)" if axis["gate"] else ""), "",
                  f"Kept: {_knobs_text(axis['kept']) if axis['kept'] else 'no change (nothing beat the incumbent beyond the noise)'}", "",
                  *header, *[row(r) for r in axis["values"]]]
    if axes["grid"]:
        lines += ["", "### Grid", "", *header, *[row(r) for r in axes["grid"]]]
    if axes["skipped"]:
        lines += ["", "Axes not searched: " + "; ".join(f"{k} ({v})" for k, v in axes["skipped"].items())]
    return lines


def render_markdown(report: TuneReport) -> str:
    order = lambda c: (c.get("ngl") or 0, c.get("threads") or 0, c.get("num_parallel") or 0)  # noqa: E731
    lines = [f"# tune {report.model} on {report.device_tag} ({report.knob})", "",
             f"Launches: {report.launches}{' (exhaustive sweep)' if report.exhaustive else ''}."]
    if report.start:
        lines.append(f"NGL search started at {report.start['start']} of {report.start['top']} ({report.start['source']}).")
    lines += ["", f"Recommended: {report.recommended or 'nothing ran'}", f"Runtime defaults: {report.defaults}", "",
              "## Search", ""] + _table(sorted(report.candidates, key=order))
    if report.confirmations:
        lines += ["", "## Re-measured against the defaults", ""] + _table(report.confirmations)
    if report.axes:
        lines += ["", *_axes_section(report.axes)]
    if report.slots:
        lines += ["", "## Slots (tok/s is the aggregate of all concurrent streams)", ""] + _table(sorted(report.slots, key=order))
    if report.capacity:
        columns = ("users", "aggregate_tokens_per_sec", "user_tokens_per_sec_p50", "ttft_ms_p50", "ttft_ms_p95",
                   "queue_ms_p50", "meets_slo", "pareto")
        lines += ["", "## Capacity (k users on k slots, closed loop)", "", f"This configuration {report.capacity['sentence']}.", ""]
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join("–" if level[k] is None else str(level[k]) for k in columns) + " |"
                  for level in report.capacity["levels"]]
    return "\n".join(lines) + "\n"


def plot(report: TuneReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted((c[report.knob], c["tokens_per_sec"] or 0, c["peak_vram_mb"] or 0)
                    for c in report.candidates if c[report.knob] is not None)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color="#4477aa")
    ax.set_xlabel(report.knob)
    ax.set_ylabel("tokens/s")
    if any(p[2] for p in points):
        twin = ax.twinx()
        twin.plot([p[0] for p in points], [p[2] for p in points], "s--", color="#cc6677")
        twin.set_ylabel("VRAM peak (MB)")
    ax.set_title(f"{report.model}: tok/s vs {report.knob}")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def report_json(report: TuneReport) -> str:
    return json.dumps(report.to_dict(), indent=2)


def write_report_files(report: TuneReport, out_dir: Path) -> Path:
    """tune-<device>-<model>.json, .md and .png in out_dir; returns their common stem."""
    stem = out_dir / f"tune-{report.device_tag}-{report.model}"
    write_text_atomic(Path(f"{stem}.json"), report_json(report) + "\n")
    write_text_atomic(Path(f"{stem}.md"), render_markdown(report))
    plot(report, Path(f"{stem}.png"))
    return stem
