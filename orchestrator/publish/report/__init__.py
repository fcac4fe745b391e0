"""Stage 6a, report: one RunReport computed from a run folder, rendered to metadata.json
(metadata-1.0), run.md and plots.

Deterministic and idempotent: the same ledger and manifest give byte-identical metadata.json.
The figures are in report/figures.py; run.md's sections are contributed per phase kind present
(report/markdown.py, SECTIONS), so a new kind of work adds its section there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput
from orchestrator.core.ledger import read_ledger
from orchestrator.measure.phases import NAMED_PHASES, PHASE_MODES
from orchestrator.core.atomic import write_json_atomic, write_text_atomic
from orchestrator.core.runfolder import HARDWARE_NAME, HTML_NAME, LEDGER_NAME, MANIFEST_NAME, METADATA_NAME, REPORT_NAME, check_regular_files
from orchestrator.publish.report.figures import METADATA_SCHEMA, build_metadata, finite, percentile
from orchestrator.publish.report.headline import headline_metadata
from orchestrator.publish.report.html import render_html
from orchestrator.publish.report.markdown import render_markdown
from orchestrator.publish.report.model import RunReport

__all__ = ["METADATA_SCHEMA", "REQUIRED_FILES", "Report", "RunReport", "compute_report", "percentile", "report"]

REQUIRED_FILES = [LEDGER_NAME, MANIFEST_NAME, HARDWARE_NAME, METADATA_NAME, REPORT_NAME]


@dataclass(frozen=True)
class Report:
    metadata: dict[str, Any]
    markdown: str
    plots: list[str]
    page: Path | None = None  # run.html, with --html


def load_run(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any] | None]:
    check_regular_files(run_dir)
    ledger = run_dir / LEDGER_NAME
    if not ledger.exists():
        raise BadInput(f"{run_dir}: no {LEDGER_NAME}; is this a run folder?")
    records = read_ledger(ledger)
    if not records or records[0].get("type") != "meta":
        raise BadInput(f"{ledger}: the first line is not a meta record")
    manifest_path = run_dir / MANIFEST_NAME
    manifest = datafiles.load(manifest_path, "manifest") if manifest_path.exists() else {}
    hw_path = run_dir / HARDWARE_NAME
    hardware = datafiles.load(hw_path, "hardware") if hw_path.exists() else None
    return records, manifest, hardware


def compute_report(run_dir: Path) -> RunReport:
    records, manifest, hardware = load_run(run_dir)
    modes = [suite.get("mode") for suite in records[0].get("suites", {}).values()]
    kinds = frozenset(PHASE_MODES[mode].kind for mode in modes if mode in PHASE_MODES)
    kinds |= {NAMED_PHASES[name].kind for name in records[0].get("suites", {}) if name in NAMED_PHASES}
    speed = {name for name, suite in records[0].get("suites", {}).items()
             if suite.get("mode") in PHASE_MODES and PHASE_MODES[suite["mode"]].kind == "speed"}
    metadata = build_metadata(records, manifest, hardware)
    return RunReport(records, manifest, hardware, finite(metadata | headline_metadata(records, metadata, speed)), kinds)


def report(run_dir: Path, plots: bool = True, html: bool = False) -> Report:
    """Write metadata.json, run.md and the plots into the run folder (and run.html, run.md as one page)."""
    from orchestrator.publish.report.plots import make_plots  # deferred: matplotlib costs a second of start-up

    run = compute_report(run_dir)
    write_json_atomic(run_dir / METADATA_NAME, run.metadata)
    drawn = make_plots(run_dir, run) if plots else []
    markdown = render_markdown(run, drawn)
    write_text_atomic(run_dir / REPORT_NAME, markdown)
    names = [plot.file for plot in drawn]
    page = None
    if html:

        page = run_dir / HTML_NAME
        write_text_atomic(page, render_html(run_dir, markdown, names))
    return Report(run.metadata, markdown, names, page)
