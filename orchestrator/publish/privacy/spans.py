"""Spans in one text: every rule's matches, made JSON-safe, nested ones dropped, and their redaction."""

from __future__ import annotations

import re

from orchestrator.publish.privacy.rules import Rule

PLACEHOLDER = re.compile(r"\[REDACTED:[a-z0-9_]+\]")


def _escape_start(text: str, i: int) -> int:
    """Where the JSON escape sequence that position i falls inside begins (i itself if none)."""
    for j in range(i - 1, max(i - 6, -1), -1):
        if text[j] != "\\":
            continue
        first = j
        while first > 0 and text[first - 1] == "\\":
            first -= 1
        if (j - first) % 2 == 1:
            return i  # text[j] is itself escaped
        return j if j + (6 if text[j + 1:j + 2] == "u" else 2) > i else i
    return i


def _json_safe(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen a span to whole escape sequences and stop it at the first unescaped quote."""
    start = _escape_start(text, start)
    inner = _escape_start(text, end)
    if inner != end:
        end = inner + (6 if text[inner + 1:inner + 2] == "u" else 2)
    i = start
    while i < end:
        if text[i] == "\\":
            i += 6 if text[i + 1:i + 2] == "u" else 2
        elif text[i] == '"':
            return start, i
        else:
            i += 1
    return start, min(end, len(text))


def find_spans(text: str, rules: list[Rule], in_json: bool = False) -> list[tuple[int, int, str]]:
    """(start, end, kind) of every match, without those inside a longer match or a placeholder."""
    spans = [(*m.span(), "") for m in PLACEHOLDER.finditer(text)]  # kind "": guards what it covers
    for rule in rules:
        for start, end, kind in rule.spans(text):
            if in_json:
                start, end = _json_safe(text, start, end)
            if end > start:
                spans.append((start, end, kind))
    # Sorted by start, longest first: a span lies inside an earlier one iff it ends before the furthest end so far.
    spans.sort(key=lambda s: (s[0], -s[1], s[2] != ""))
    kept: list[tuple[int, int, str]] = []
    furthest = -1
    for start, end, kind in spans:
        if end > furthest and kind:
            kept.append((start, end, kind))
        furthest = max(furthest, end)
    return kept


def redact_text(text: str, spans: list[tuple[int, int, str]]) -> str:
    """Replace the spans (overlapping ones merged) with `[REDACTED:<kind>]`."""
    out, position = [], 0
    for start, end, kind in spans:  # sorted by start
        if start >= position:
            out.append(text[position:start] + f"[REDACTED:{kind}]")
            position = end
        else:  # overlaps the previous span: its placeholder covers both
            position = max(position, end)
    return "".join(out) + text[position:]
