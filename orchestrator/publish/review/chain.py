"""Tamper evidence: recompute the ledger's hash chain (core/ledger.py) from its bytes. A ledger
written before the chain existed is only warned about; a chain that breaks is a rejection."""

from __future__ import annotations

from orchestrator.core.ledger import verify_chain
from orchestrator.publish.review.model import Finding, RunUnderReview, reject, warn

CHECK = "chain"


def check(run: RunUnderReview) -> list[Finding]:
    chain = verify_chain(run.ledger_bytes)
    if chain.broken_at is not None:
        return [reject(CHECK, f"run.jsonl line {chain.broken_at}: the hash chain breaks there (a line edited, "
                              "deleted, inserted or moved after it was written)")]
    if not chain.chained_lines:
        return [warn(CHECK, "run.jsonl has no hash chain (written by a weeyuga before the chain): edits cannot be "
                            "detected from it")]
    if chain.unchained_prefix:
        return [warn(CHECK, f"the first {chain.unchained_prefix} lines of run.jsonl precede the chain (an older "
                            "run resumed): the chain covers them only as a whole")]
    return []
