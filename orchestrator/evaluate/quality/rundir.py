"""The quality layer on a finished run folder: its effective verdicts, rescoring and inspection.

Rescoring appends `quality_rescore` lines to run.jsonl (the only change to a run's ledger after
it ends; nothing is rewritten); every reader takes the verdict of the newest verifier version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.core.errors import BadInput
from orchestrator.core.ledger import Ledger, read_records
from orchestrator.core.records import QualityRescoreRecord, utc_now
from orchestrator.evaluate.quality.packs import available_pack_ids, load_packs
from orchestrator.evaluate.quality.records import Rescore, effective, rescore
from orchestrator.evaluate.quality.scoring import MIN_BASELINE_RUNS, InspectRow, ScenarioDelta, classify, inspect
from orchestrator.core.runfolder import LEDGER_NAME, RESPONSES_NAME


def _ledger(run_dir: Path) -> Path:
    path = run_dir / LEDGER_NAME
    if not path.is_file():
        raise BadInput(f"{run_dir}: no {LEDGER_NAME}; pass a run folder")
    return path


def _responses(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / RESPONSES_NAME
    return list(read_records(path)) if path.exists() else []


def run_verdicts(run_dir: Path) -> list[dict[str, Any]]:
    """One verdict per scenario call of the run, each the newest verifier version's."""
    return effective(read_records(_ledger(run_dir)))


def rescore_run(run_dir: Path) -> Rescore:
    """Today's verifiers on the run's saved responses; the new verdicts are appended to run.jsonl."""
    path = _ledger(run_dir)
    records = list(read_records(path))
    ids = [p for p in available_pack_ids() if any(r.get("pack") == p for r in records if r.get("type") == "quality")]
    if not ids:
        raise BadInput(f"{path}: no quality records to rescore")
    result = rescore(records, _responses(run_dir), load_packs(ids), utc_now())
    if result.records:
        with Ledger(path, schema="run-record", chained=True) as ledger:
            ledger.write_many([QualityRescoreRecord(r) for r in result.records])
    return result


def inspect_run(run_dir: Path, *, failed: bool = False, scenario: str | None = None, mode: str | None = None,
                diff: Path | None = None) -> tuple[InspectRow, ...]:
    """The run's scenario calls that match the filters, each with its saved answer (scoring.inspect)."""
    other = run_verdicts(diff) if diff is not None else None
    return inspect(run_verdicts(run_dir), _responses(run_dir), failed=failed, scenario=scenario, mode=mode, diff=other)


def compare_quality(baseline_runs: list[Path], candidate_run: Path) -> tuple[tuple[ScenarioDelta, ...], str | None]:
    """Each scenario classified against the baseline runs (scoring.classify, every cell of a run pooled),
    or why it was not: a run given as metadata.json has no verdicts, and fewer than 3 baselines are noise."""
    def verdicts(path: Path) -> list[dict[str, Any]]:
        return run_verdicts(path) if (path / LEDGER_NAME).is_file() else []

    candidate = verdicts(candidate_run)
    baselines = [v for v in (verdicts(p) for p in baseline_runs) if v]
    if not candidate and not baselines:
        return (), None
    if not candidate:
        return (), "the candidate has no quality verdicts (pass its run folder, not metadata.json)"
    if len(baselines) < MIN_BASELINE_RUNS:
        return (), (f"needs at least {MIN_BASELINE_RUNS} baseline run folders with quality verdicts "
                    f"(got {len(baselines)}): one run's noise would read as regressions")
    return classify(baselines, candidate), None
