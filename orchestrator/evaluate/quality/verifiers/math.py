"""math: the number on the answer's last `ANSWER:` line, exactly or within a tolerance.

Only that line counts: a number elsewhere in the working is never taken for the answer, and
a missing or number-less `ANSWER:` line is `no_answer_found`.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from orchestrator.evaluate.quality.packs import Scenario
from orchestrator.evaluate.quality.verdict import NO_ANSWER_FOUND, WRONG_ANSWER, Verdict, answer_text, fail, ok

VERSION = 1

_ANSWER_LINE = re.compile(r"^[\s>*_#-]*answer\s*[:：]\s*(.*)$", re.I | re.M)
# A number: optional sign, digits with optional thousands commas, optional decimals, or a fraction a/b.
_NUMBER = re.compile(r"(?<![\w.])[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?(?![\w])")


def final_number(text: str) -> Fraction | None:
    lines = _ANSWER_LINE.findall(text)
    if not lines:
        return None
    found = _NUMBER.search(lines[-1].replace("**", "").replace("$", ""))
    if not found:
        return None
    token = found.group(0).replace(",", "").replace("−", "-").replace(" ", "")
    try:
        return Fraction(token)
    except (ValueError, ZeroDivisionError):
        return None


def check(scenario: Scenario, message: dict[str, Any]) -> Verdict:
    value = final_number(answer_text(message))
    if value is None:
        return fail(NO_ANSWER_FOUND, "no number on an 'ANSWER:' line")
    expected = Fraction(str(scenario.verifier["answer"]))
    tolerance = Fraction(str(scenario.verifier.get("tolerance", 0)))
    shown = f"{float(value):g}"
    if abs(value - expected) <= tolerance:
        return ok(f"answer {shown}")
    return fail(WRONG_ANSWER, f"expected {float(expected):g}{f' ± {float(tolerance):g}' if tolerance else ''}, got {shown}")
