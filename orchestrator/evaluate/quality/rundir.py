"""The quality layer on a finished run folder: its effective verdicts, rescoring and inspection.

Rescoring appends `quality_rescore` lines to run.jsonl (the only change to a run's ledger after
it ends; nothing is rewritten); every reader takes the verdict of the newest verifier version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.core.errors import BadInput
from orchestrator.core import datafiles
from orchestrator.core.ledger import Ledger, iter_ledger, read_records
from orchestrator.core.records import QualityRescoreRecord, utc_now
from orchestrator.evaluate.quality.packs import available_pack_ids, load_packs
from orchestrator.evaluate.quality.records import Rescore, effective, rescore
from orchestrator.evaluate.quality.scoring import MIN_BASELINE_RUNS, InspectRow, ScenarioDelta, classify, inspect
from orchestrator.core.runfolder import LEDGER_NAME, RESPONSES_NAME


QUALITY_TYPES = ("quality", "quality_rescore")


def _ledger(run_dir: Path) -> Path:
    path = run_dir / LEDGER_NAME
    if not path.is_file():
        raise BadInput(f"{run_dir}: no {LEDGER_NAME}; pass a run folder")
    return path


def _verdict_records(path: Path) -> list[dict[str, Any]]:
    """The ledger's quality lines only, each validated (ledger.iter_ledger), read as a stream."""
    return list(iter_ledger(path, QUALITY_TYPES))


def _responses(run_dir: Path) -> list[dict[str, Any]]:
    """responses.jsonl's quality lines, each checked against quality-response.schema.json."""
    path = run_dir / RESPONSES_NAME
    if not path.exists():
        return []
    lines = []
    for number, line in enumerate(read_records(path), 1):
        key = line.get("key")
        if isinstance(key, list) and key[:1] == ["quality"]:
            datafiles.validate(line, "quality-response", f"{path}:{number}")
            lines.append(line)
    return lines


def run_verdicts(run_dir: Path) -> list[dict[str, Any]]:
    """One verdict per scenario call of the run, each the newest verifier version's."""
    return effective(_verdict_records(_ledger(run_dir)))


def rescore_run(run_dir: Path) -> Rescore:
    """Today's verifiers on the run's saved responses; the new verdicts are appended to run.jsonl
    (in place: never through a link, see Ledger)."""
    path = _ledger(run_dir)
    records = _verdict_records(path)
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
    or why it was not: a run given as metadata.json has no verdicts, and fewer than 3 baselines are noise.
    A baseline folder whose ledger is unreadable is named in the note and left out; a bad candidate is BadInput."""
    def verdicts(path: Path) -> list[dict[str, Any]]:
        return run_verdicts(path) if (path / LEDGER_NAME).is_file() else []

    candidate = verdicts(candidate_run)
    baselines, skipped = [], []
    for path in baseline_runs:
        try:
            baselines.append(verdicts(path))
        except BadInput as exc:
            skipped.append(f"skipped {exc}")
    baselines = [v for v in baselines if v]
    left_out = "; ".join(skipped) or None
    if not candidate and not baselines:
        return (), left_out
    if not candidate:
        return (), "the candidate has no quality verdicts (pass its run folder, not metadata.json)"
    if len(baselines) < MIN_BASELINE_RUNS:
        return (), "; ".join(filter(None, [f"needs at least {MIN_BASELINE_RUNS} baseline run folders with quality verdicts "
                                           f"(got {len(baselines)}): one run's noise would read as regressions", left_out]))
    return classify(baselines, candidate), left_out
