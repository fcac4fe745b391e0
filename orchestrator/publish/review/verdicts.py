"""Verdicts agree with the evidence: quality verdicts re-scored from responses.jsonl (the verifiers
of `weeyuga quality rescore`, nothing appended) equal the ledger's, and agent records agree with
one another and with the calls (passes vs run outcome, gate results vs test counts)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from orchestrator.core.records import utc_now
from orchestrator.evaluate.quality.packs import PACK_ORDER, load_packs
from orchestrator.evaluate.quality.records import arm_key, effective, rescore
from orchestrator.publish.review.model import Finding, RunUnderReview, grouped

CHECK = "verdicts"
VERDICT_FIELDS = ("passed", "failure_mode", "score")


def check(run: RunUnderReview) -> list[Finding]:
    return quality(run) + agent(run)


def quality(run: RunUnderReview) -> list[Finding]:
    records = run.of_type("quality", "quality_rescore")
    if not records:
        return []
    ids = [p for p in PACK_ORDER if any(r.get("pack") == p for r in records)]
    result = rescore(run.records, run.responses or (), load_packs(ids), utc_now())
    recorded = {arm_key(r): r for r in effective(run.records)}
    differ = []
    for again in result.records:
        before = recorded[arm_key(again)]
        if any(again.get(f) != before.get(f) for f in VERDICT_FIELDS):
            differ.append(f"{again['pack']}/{again['scenario']}#{again['repeat_idx']}: recorded "
                          f"{before.get('failure_mode') or 'passed'}, re-scored {again.get('failure_mode') or 'passed'}")
    absent = [why for why in result.skipped if why.endswith("no saved response")]
    other = [why for why in result.skipped if not why.endswith("no saved response")]
    return (grouped(CHECK, "a quality verdict differs from its saved response re-scored", differ)
            + grouped(CHECK, "a quality verdict has no saved response to check it against (removed evidence)", absent)
            + grouped(CHECK, "quality verdicts not re-scored", other, severity="warn"))


def agent(run: RunUnderReview) -> list[Finding]:
    passes: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for record in run.of_type("agent_pass"):
        passes[_attempt(record)].append(record)
    calls: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for call in run.calls:
        if call.get("attempt") is not None:
            calls[(call["cell_id"], call["phase"], call["prompt_id"], call["attempt"])].append(call)
    bad: list[str] = []
    for record in run.of_type("agent_pass"):
        where = f"{record.get('task')} attempt {record.get('attempt')} pass {record.get('pass_index')}"
        if record.get("gate_passed") and (not record.get("gate_ran") or (record.get("tests_failed") or 0) > 0):
            bad.append(f"{where}: gate passed with gate_ran {record.get('gate_ran')}, {record.get('tests_failed')} tests failed")
        if not record.get("gate_ran") and (record.get("tests_passed"), record.get("tests_failed")) != (None, None):
            bad.append(f"{where}: test counts without a gate run")
    for run_line in run.of_type("agent_run"):
        key, where = _attempt(run_line), f"{run_line.get('task')} attempt {run_line.get('attempt')}"
        mine = sorted(passes.get(key, []), key=lambda p: p.get("pass_index") or 0)
        gated = [p.get("pass_index") for p in mine if p.get("gate_passed")]
        outcome, completed_at = run_line.get("outcome"), run_line.get("completed_at")
        if outcome == "skipped":
            continue
        if run_line.get("passes") != len(mine):
            bad.append(f"{where}: {run_line.get('passes')} passes recorded, {len(mine)} agent_pass lines")
        if (outcome == "completed") != bool(gated) or (outcome == "completed" and completed_at != gated[0]):
            bad.append(f"{where}: outcome {outcome} (completed at {completed_at}) but the gate passed on passes {gated or 'none'}")
        if run_line.get("workflow") == "two-try" and outcome != "interrupted" and (
                run_line.get("pass_at_1") != (completed_at == 1) or run_line.get("pass_at_2") != (completed_at is not None)):
            bad.append(f"{where}: pass@1 {run_line.get('pass_at_1')}, pass@2 {run_line.get('pass_at_2')} "
                       f"but completed at {completed_at}")
        made = calls.get(key, [])
        errors = sum(c.get("error") is not None for c in made)
        if (run_line.get("model_calls"), run_line.get("model_call_errors")) != (len(made), errors):
            bad.append(f"{where}: {run_line.get('model_calls')} model calls ({run_line.get('model_call_errors')} failed) "
                       f"recorded, {len(made)} call lines ({errors} failed)")
        tokens = sum(p.get("completion_tokens") or 0 for p in mine)
        if mine and run_line.get("completion_tokens") != tokens:
            bad.append(f"{where}: {run_line.get('completion_tokens')} completion tokens, its passes' add up to {tokens}")
    return grouped(CHECK, "agent records disagree with one another or with the calls", bad)


def _attempt(record: dict[str, Any]) -> tuple:
    return record.get("cell_id"), record.get("phase"), record.get("task"), record.get("attempt")
