"""What every verifier returns, and the answer text every verifier reads.

A verdict is passed / failure mode / detail / score. The answer is read content-first (the
reasoning channel separately), with `<think>` blocks and stray think tags removed; a content
failure on a response cut off by the token limit is reported as `token_limit`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

PASSED = "passed"
VERIFIER_FAIL = "verifier_fail"
WRONG_ANSWER = "wrong_answer"
INVALID_JSON = "invalid_json"
NO_ANSWER_FOUND = "no_answer_found"
MISSING_FIELD = "missing_field"
EXTRA_FIELDS = "extra_fields"
SCHEMA_VIOLATION = "schema_violation"
WRONG_STRUCTURE = "wrong_structure"
TOKEN_LIMIT = "token_limit"
TIMEOUT = "timeout"
HTTP_ERROR = "http_error"
SERVER_ERROR = "server_error"

FAILURE_MODES = (PASSED, VERIFIER_FAIL, WRONG_ANSWER, INVALID_JSON, NO_ANSWER_FOUND, MISSING_FIELD, EXTRA_FIELDS,
                 SCHEMA_VIOLATION, WRONG_STRUCTURE, TOKEN_LIMIT, TIMEOUT, HTTP_ERROR, SERVER_ERROR)
# Serving problems, not a statement about the model's behaviour.
INFRA_MODES = frozenset({TIMEOUT, HTTP_ERROR, SERVER_ERROR})

DETAIL_LIMIT = 300


@dataclass(frozen=True)
class Verdict:
    passed: bool
    failure_mode: str
    detail: str
    score: float | None = None  # a partial score in [0, 1] where the kind has one (extract)
    checks: tuple[int, int] | None = None  # (met, asked) where the scenario has several checks: IFEval-style check level

    def __post_init__(self) -> None:
        if self.failure_mode not in FAILURE_MODES:
            raise ValueError(f"unknown failure mode {self.failure_mode!r}")
        if self.passed != (self.failure_mode == PASSED):
            raise ValueError("passed and failure_mode disagree")


def ok(detail: str = "all checks passed", score: float | None = None, checks: tuple[int, int] | None = None) -> Verdict:
    return Verdict(True, PASSED, detail, score, checks)


def fail(mode: str, detail: str, score: float | None = None, checks: tuple[int, int] | None = None) -> Verdict:
    return Verdict(False, mode, clip(detail), score, checks)


def clip(text: str, limit: int = DETAIL_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


_THINK_BLOCK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)
_THINK_TAG = re.compile(r"</?think>", re.I)


def strip_think(text: str) -> str:
    """Remove `<think>…</think>` blocks (an unclosed one runs to the end) and stray tags."""
    return _THINK_TAG.sub("", _THINK_BLOCK.sub("", text)).strip()


def answer_text(message: dict[str, Any]) -> str:
    """The answer channel: `content` without think blocks. Reasoning is never read as the answer."""
    content = message.get("content")
    return strip_think(content) if isinstance(content, str) else ""


def reasoning_text(message: dict[str, Any]) -> str:
    """The reasoning channel (`reasoning_content`, or `reasoning`), plus think blocks found in content."""
    parts = [message.get("reasoning_content"), message.get("reasoning")]
    content = message.get("content")
    if isinstance(content, str):
        parts.extend(block[len("<think>"):] for block in _THINK_BLOCK.findall(content))
    return "\n".join(p for p in parts if isinstance(p, str)).strip()


def reclassify_truncated(verdict: Verdict, finish_reason: str | None) -> Verdict:
    """A content failure on an answer cut off by max_tokens says the budget ran out, not that the
    model was wrong; the original verdict stays in the detail. Passes and serving errors stay."""
    if verdict.passed or verdict.failure_mode in INFRA_MODES or finish_reason != "length":
        return verdict
    return fail(TOKEN_LIMIT, f"cut off at the token limit; would be {verdict.failure_mode}: {verdict.detail}",
                verdict.score, verdict.checks)


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[ \t]*\n(.*?)```", re.S)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each complete ``` fence, in order."""
    return [(lang.lower(), body) for lang, body in _FENCE.findall(text)]


def unfenced(text: str) -> str:
    """The body of the answer's only fenced block (models fence JSON and YAML, some with a line of
    prose around it), else the whole text."""
    blocks = fenced_blocks(text)
    return blocks[0][1].strip() if len(blocks) == 1 else text.strip()


def same_json(value: Any, expected: Any) -> bool:
    """Deep JSON equality where true is not 1 (Python's == says it is) but 3 is 3.0."""
    if isinstance(expected, bool) or isinstance(value, bool):
        return value is expected
    if isinstance(expected, dict):
        return (isinstance(value, dict) and value.keys() == expected.keys()
                and all(same_json(value[k], expected[k]) for k in expected))
    if isinstance(expected, list):
        return isinstance(value, list) and len(value) == len(expected) and all(map(same_json, value, expected))
    if isinstance(expected, (int, float)):
        return isinstance(value, (int, float)) and value == expected
    return type(value) is type(expected) and value == expected


def range_problem(label: str, value: Any, spec: dict[str, Any]) -> str | None:
    """For a check with `min` and/or `max`: what is wrong with `value` (not a number, out of range)."""
    if "min" not in spec and "max" not in spec:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{label} = {value!r} is not a number"
    if not spec.get("min", value) <= value <= spec.get("max", value):
        return f"{label} = {value} outside {spec.get('min', '-∞')}..{spec.get('max', '∞')}"
    return None
