"""What tune writes: the tuned profile (profiles/local/<device-tag>.yaml) and the report's json, md and png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from orchestrator.core import datafiles
from orchestrator.core.errors import WeeyugaError
from orchestrator.core.paths import data_dir
from orchestrator.flows.tune.search import Candidate, TuneReport
from orchestrator.core.atomic import write_text_atomic
from orchestrator.plan.knobs import tunable_knobs


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
        label = Candidate(c["ngl"], c["threads"], c["num_parallel"]).label()
        rate = f"{c['tokens_per_sec']:.1f}" if c["tokens_per_sec"] else "–"
        lines.append(f"| {label} | {'yes' if c['ok'] else 'no'} | {rate} | {c['ttft_ms'] or '–'} | "
                     f"{c['peak_rss_mb'] or '–'} | {c['peak_vram_mb'] or '–'} | {c['failure'] or ''} |")
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
    if report.slots:
        lines += ["", "## Slots (tok/s is the aggregate of all concurrent streams)", ""] + _table(sorted(report.slots, key=order))
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
