"""Duplicates: a run whose calls are already in the catalogue under another run id. Call lines
carry no run id, so a copy keeps them; each is compared by its bytes without its chain link (which
a re-chained copy changes). The run folders come from the catalogue's own walk (run_folders)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput
from orchestrator.core.ledger import CHAIN_SUFFIX
from orchestrator.core.runfolder import LEDGER_NAME
from orchestrator.publish.catalogue import run_folders
from orchestrator.publish.review.model import Finding, RunUnderReview, reject, tolerances

CHECK = "duplicates"
CALL_LINE = b'{"type": "call"'


def call_digests(ledger: bytes) -> set[bytes]:
    """The digest of each call line, its chain link left out."""
    digests = set()
    for line in ledger.split(b"\n"):
        if line.startswith(CALL_LINE):
            link = CHAIN_SUFFIX.search(line)
            digests.add(hashlib.sha256(line[:link.start()] + b"}" if link else line).digest())
    return digests


def check(run: RunUnderReview, submissions_dir: Path) -> list[Finding]:
    mine = call_digests(run.ledger_bytes)
    own = run.path.resolve()
    findings = []
    for path, folder in run_folders(submissions_dir).items():
        folder = Path(folder)
        if folder.resolve() == own:
            continue
        if folder.name == run.path.name:
            findings.append(reject(CHECK, f"run id {run.path.name[4:]} is already catalogued at {path}"))
            continue
        if not mine:
            continue
        try:
            theirs = call_digests(datafiles.read_bytes(folder / LEDGER_NAME, datafiles.LEDGER_LIMIT_BYTES))
        except BadInput:
            continue  # the catalogue lists that folder as invalid; it holds nothing to compare
        shared = len(mine & theirs)
        if shared and shared >= tolerances().duplicate_call_share * len(mine):
            findings.append(reject(CHECK, f"{shared} of its {len(mine)} calls are those of {path}: the same run "
                                          "submitted again"))
    return findings
