"""extract: field-level extraction compared with the scenario's `expected` object.

Every atomic field of `expected` is one point: strings compared case- and space-insensitively,
numbers within 0.01, booleans and null exactly, a list of scalars as a multiset (one point,
all or nothing), a list of objects matched by its anchor key (else by position). The score is
the share of points; the scenario passes at the threshold (0.85 by default). An answer with no
points, `{}` included, scores 0.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from orchestrator.core import datafiles
from orchestrator.evaluate.quality.packs import Scenario
from orchestrator.evaluate.quality.verdict import EXTRA_FIELDS, INVALID_JSON, NO_ANSWER_FOUND, VERIFIER_FAIL, Verdict, answer_text, fail, ok, unfenced

VERSION = 2  # 2: the verdict carries (fields right, fields asked) as its check counts
THRESHOLD = 0.85
NUMBER_TOLERANCE = 0.01


def check(scenario: Scenario, message: dict[str, Any]) -> Verdict:
    text = answer_text(message)
    none_right = (0, _compare(scenario.expected, {}, "$", scenario.verifier.get("anchors", {}), [])[1])
    if not text:
        return fail(NO_ANSWER_FOUND, "no answer text", checks=none_right)
    try:
        answer = datafiles.parse_json(unfenced(text))
    except ValueError as exc:
        return fail(INVALID_JSON, f"not JSON: {exc}", checks=none_right)
    if not isinstance(answer, dict):
        return fail(INVALID_JSON, f"a JSON {type(answer).__name__}, not an object", checks=none_right)
    config = scenario.verifier
    misses: list[str] = []
    got, total = _compare(scenario.expected, answer, "$", config.get("anchors", {}), misses)
    if not total:
        return fail(VERIFIER_FAIL, "the scenario's expected object has no atomic fields")  # a pack error, never a pass
    score = got / total
    detail = f"{got}/{total} atomic fields correct ({score:.0%})" + (f"; {'; '.join(misses[:4])}" if misses else "")
    if config.get("no_extra_fields"):
        extra = sorted(set(answer) - set(scenario.expected))
        if extra:
            return fail(EXTRA_FIELDS, f"extra field(s) {extra}; {detail}", score, (got, total))
    if score >= config.get("threshold", THRESHOLD):
        return ok(detail, score, (got, total))
    return fail(VERIFIER_FAIL, detail, score, (got, total))


def _compare(expected: Any, got: Any, where: str, anchors: dict[str, str], misses: list[str]) -> tuple[int, int]:
    """(points earned, points available) for `got` against `expected`."""
    if isinstance(expected, dict):
        earned = available = 0
        for key, value in expected.items():
            sub = got.get(key, _Absent) if isinstance(got, dict) else _Absent
            e, a = _compare(value, sub, f"{where}.{key}", anchors, misses)
            earned, available = earned + e, available + a
        return earned, available
    if isinstance(expected, list) and expected and all(isinstance(x, dict) for x in expected):
        return _compare_objects(expected, got, where, anchors, misses)
    if isinstance(expected, list):
        right = isinstance(got, list) and Counter(map(_normal, got)) == Counter(map(_normal, expected))
        return _point(right, where, got, misses)
    return _point(_scalar_equal(expected, got), where, got, misses)


def _compare_objects(expected: list[dict], got: Any, where: str, anchors: dict[str, str],
                     misses: list[str]) -> tuple[int, int]:
    anchor = anchors.get(where.rsplit(".", 1)[-1])
    items = [g for g in got if isinstance(g, dict)] if isinstance(got, list) else []
    earned = available = 0
    for index, item in enumerate(expected):
        if anchor:
            match = next((g for g in items if _scalar_equal(item.get(anchor), g.get(anchor, _Absent))), _Absent)
        else:
            match = items[index] if index < len(items) else _Absent
        e, a = _compare(item, match, f"{where}[{index}]", anchors, misses)
        earned, available = earned + e, available + a
    return earned, available


class _Absent:
    """A field the answer does not have (distinct from an explicit null)."""


def _point(right: bool, where: str, got: Any, misses: list[str]) -> tuple[int, int]:
    if not right:
        misses.append(f"{where}: {'missing' if got is _Absent else 'got ' + repr(got)[:40]}")
    return int(right), 1


def _normal(value: Any) -> Any:
    return " ".join(value.split()).casefold() if isinstance(value, str) else value


def _scalar_equal(expected: Any, got: Any) -> bool:
    if got is _Absent:
        return False
    if isinstance(expected, bool) or expected is None or isinstance(got, bool):
        return got is expected
    if isinstance(expected, (int, float)):
        return isinstance(got, (int, float)) and abs(got - expected) <= NUMBER_TOLERANCE
    return isinstance(got, str) and _normal(got) == _normal(expected)
