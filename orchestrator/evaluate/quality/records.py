"""The records the quality layer writes, and rescoring from saved responses.

`quality` (one per scenario call) and `quality_rescore` (a later verdict on the same saved
response) are plain dicts with a fixed key order, checked by quality-record.schema.json:

    type            "quality" | "quality_rescore"
    cell_id         the cell the call ran in
    pack            pack id;  pack_version, pack_sha256: which pack file judged it
    scenario        scenario id; repeat_idx: 0-based arm of --repeat
    verifier        verifier kind; verifier_version: that module's VERSION
    passed          bool; failure_mode: one of verdict.FAILURE_MODES; detail: one short line
    score           partial score in [0, 1] or null
    timeout_s       the per-case timeout used (quality only)
    latency_s       wall seconds of the call, null when it never returned (quality only)
    finish_reason   as the server sent it (quality only)
    net_isolated    codeexec: whether the sandbox had no network namespace; else null (quality only)
    response_ref    the `key` of the response's line in responses.jsonl:
                    ["quality", cell_id, pack, scenario, repeat_idx]
    previous_failure_mode, rescored_at   (quality_rescore only)
    level           the scenario's tier: easy | medium | hard (added with the generated packs)
    checks_met, checks_asked   the scenario's checks met and asked, where it has several (instruct,
                    struct, tool_call; extract: atomic fields), else null: check-level accuracy

A responses.jsonl line is {"key": response_ref, "message": {...}, "finish_reason": ...}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from orchestrator.evaluate.quality.packs import Pack
from orchestrator.evaluate.quality.verdict import Verdict
from orchestrator.evaluate.quality.verifiers import VERSIONS, verify
from orchestrator.evaluate.sandbox.code import CodeRunner


def response_ref(cell_id: str, pack: str, scenario: str, repeat_idx: int) -> list:
    return ["quality", cell_id, pack, scenario, repeat_idx]


def arm_key(record: dict[str, Any]) -> tuple:
    """What makes a scenario call unique in a run: resume runs only arms not yet recorded."""
    return record["cell_id"], record["pack"], record["scenario"], record["repeat_idx"]


@dataclass(frozen=True)
class Judged:
    """One verdict on one scenario call, before it becomes a record."""
    cell_id: str
    pack: Pack
    scenario: str
    repeat_idx: int
    verdict: Verdict


def _common(judged: Judged, record_type: str) -> dict[str, Any]:
    kind = judged.pack.scenario(judged.scenario).kind
    verdict = judged.verdict
    return {"type": record_type, "cell_id": judged.cell_id, "pack": judged.pack.id, "pack_version": judged.pack.version,
            "pack_sha256": judged.pack.sha256, "scenario": judged.scenario, "repeat_idx": judged.repeat_idx,
            "verifier": kind, "verifier_version": VERSIONS[kind], "passed": verdict.passed,
            "failure_mode": verdict.failure_mode, "detail": verdict.detail, "score": verdict.score}


def quality_record(judged: Judged, timeout_s: float, latency_s: float | None, finish_reason: str | None,
                   net_isolated: bool | None) -> dict[str, Any]:
    return {**_common(judged, "quality"), "timeout_s": round(timeout_s, 3),
            "latency_s": None if latency_s is None else round(latency_s, 3), "finish_reason": finish_reason,
            "net_isolated": net_isolated,
            "response_ref": response_ref(judged.cell_id, judged.pack.id, judged.scenario, judged.repeat_idx),
            **_tail(judged)}


def _tail(judged: Judged) -> dict[str, Any]:
    """The fields added since the first record layout: at the end, as the ledger's rule asks."""
    checks = judged.verdict.checks
    return {"level": judged.pack.scenario(judged.scenario).level, "checks_met": checks[0] if checks else None,
            "checks_asked": checks[1] if checks else None}


def response_line(ref: list, message: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {"key": ref, "message": message, "finish_reason": finish_reason}


@dataclass(frozen=True)
class Rescore:
    records: tuple[dict[str, Any], ...]  # new quality_rescore records, to append
    changed: int  # how many verdicts differ from the one they follow
    skipped: tuple[str, ...]  # why some calls could not be rescored, one line each


def rescore(records: Iterable[dict[str, Any]], responses: Iterable[dict[str, Any]], packs: Iterable[Pack],
            at: str, code_runner: CodeRunner | None = None) -> Rescore:
    """Re-run today's verifiers on each `quality` record's saved response. A call whose pack file
    changed since (another sha256) or whose response is missing is skipped with a reason, since
    judging it against a different scenario would say nothing."""
    by_ref = {tuple(line["key"]): line for line in responses if isinstance(line.get("key"), list)}
    by_pack = {pack.id: pack for pack in packs}
    latest = {arm_key(r): r for r in effective(records)}
    out, skipped, changed = [], [], 0
    for record in latest.values():
        where = f"{record['pack']}/{record['scenario']}#{record['repeat_idx']}"
        pack = by_pack.get(record["pack"])
        saved = by_ref.get(tuple(response_ref(*arm_key(record))))
        if pack is None or pack.sha256 != record["pack_sha256"]:
            skipped.append(f"{where}: pack {record['pack']} v{record['pack_version']} is not the one loaded")
            continue
        if saved is None:
            skipped.append(f"{where}: no saved response")
            continue
        if record["failure_mode"] in ("timeout", "http_error", "server_error"):
            skipped.append(f"{where}: {record['failure_mode']}, nothing to judge")
            continue
        scenario = pack.scenario(record["scenario"])
        verdict = verify(scenario, saved["message"], saved.get("finish_reason"), code_runner)
        judged = Judged(record["cell_id"], pack, scenario.id, record["repeat_idx"], verdict)
        rescored = {**_common(judged, "quality_rescore"),
                    "previous_failure_mode": record["failure_mode"], "rescored_at": at,
                    "response_ref": response_ref(*arm_key(record)), **_tail(judged)}
        changed += rescored["failure_mode"] != record["failure_mode"]
        out.append(rescored)
    return Rescore(tuple(out), changed, tuple(skipped))


def effective(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One verdict per scenario call: the one from the newest verifier version, the later record
    on a tie (a rescore follows the call it rescores). Order follows the first appearance."""
    chosen: dict[tuple, dict[str, Any]] = {}
    for record in records:
        if record.get("type") not in ("quality", "quality_rescore"):
            continue
        key = arm_key(record)
        current = chosen.get(key)
        if current is None or record["verifier_version"] >= current["verifier_version"]:
            merged = dict(record)
            if current is not None:  # keep the call's own facts (latency, timeout) on a rescore
                for field in ("timeout_s", "latency_s", "finish_reason", "net_isolated"):
                    merged.setdefault(field, current.get(field))
            chosen[key] = merged
    return list(chosen.values())
