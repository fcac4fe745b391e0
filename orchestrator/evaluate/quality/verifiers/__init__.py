"""One deterministic verifier per kind; `verify` picks it and applies the token-limit rule.

Each module has `VERSION` (bumped when its judgement changes, so rescoring can tell old
verdicts from new) and `check(scenario, message) -> Verdict`. None passes an empty answer.
"""

from __future__ import annotations

from typing import Any

from orchestrator.evaluate.quality.packs import Scenario
from orchestrator.evaluate.sandbox.code import CodeRunner
from orchestrator.evaluate.quality.verdict import Verdict, reclassify_truncated
from orchestrator.evaluate.quality.verifiers import bfcl, codeexec, extract, instruct, math, struct, tool_call

MODULES = {"tool_call": tool_call, "instruct": instruct, "struct": struct, "extract": extract, "math": math,
           "codeexec": codeexec, "bfcl": bfcl}
VERSIONS = {kind: module.VERSION for kind, module in MODULES.items()}


def verify(scenario: Scenario, message: dict[str, Any], finish_reason: str | None,
           code_runner: CodeRunner | None = None) -> Verdict:
    """The scenario's verdict on one assistant message; `code_runner` replaces codeexec's sandbox."""
    if scenario.kind == "codeexec":
        verdict = codeexec.check(scenario, message, code_runner)
    else:
        verdict = MODULES[scenario.kind].check(scenario, message)
    return reclassify_truncated(verdict, finish_reason)
