"""bfcl: BFCL's verdict on one answer to one BFCL question (rules in quality/bfcl/checker.py).

Irrelevance passes on any answer without a decodable call, an empty one included, as BFCL's own
checker judges it; relevance passes on any decodable call.
"""

from __future__ import annotations

from typing import Any

from orchestrator.evaluate.quality.bfcl.checker import check as match, decode_calls, has_call, well_formed
from orchestrator.evaluate.quality.bfcl.literals import Unsupported
from orchestrator.evaluate.quality.packs import Scenario
from orchestrator.evaluate.quality.verdict import (EXTRA_FIELDS, INVALID_JSON, MISSING_FIELD, NO_ANSWER_FOUND, SCHEMA_VIOLATION,
                                                   VERIFIER_FAIL, WRONG_ANSWER, Verdict, fail, ok)

VERSION = 1

# BFCL's error types (the part before the colon, or the whole) → our failure modes.
MODES = {"missing_required": MISSING_FIELD, "missing_optional": MISSING_FIELD, "unexpected_param": EXTRA_FIELDS,
         "type_error": SCHEMA_VIOLATION}


def check(scenario: Scenario, message: dict[str, Any]) -> Verdict:
    spec = scenario.verifier
    decoded = decode_calls(message)
    names = ", ".join(str(next(iter(call))) for call in decoded or [])
    if spec["check"] == "irrelevance":
        return fail(WRONG_ANSWER, f"irrelevance_error: called {names} where no function fits") if has_call(decoded) \
            else ok("no call, as asked")
    if spec["check"] == "relevance":
        return ok(f"called {names}") if has_call(decoded) else fail(NO_ANSWER_FOUND, "relevance_error: no call")
    if decoded is None:
        if message.get("tool_calls"):
            return fail(INVALID_JSON, "ast_decoder:decoder_failed: call arguments are not JSON")
        return fail(WRONG_ANSWER, "ast_decoder:decoder_failed: answered in prose, no call")
    if not well_formed(decoded):
        return fail(INVALID_JSON, "ast_decoder:decoder_wrong_output_format: call arguments are not a JSON object")
    try:
        miss = match(spec["check"], spec["functions"], decoded, spec["answers"], spec["language"])
    except (Unsupported, KeyError) as exc:  # BFCL's checker raises on these too
        return fail(VERIFIER_FAIL, f"BFCL's rules cannot judge this question: {exc}")
    if miss is None:
        return ok(f"{len(decoded)} call(s): {names}")
    kind = miss.kind.split(":")[-1]
    mode = MODES.get(kind) or MODES.get(miss.kind.split(":")[0], WRONG_ANSWER)
    return fail(mode, f"{miss.kind}: {miss.detail}")
