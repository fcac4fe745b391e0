"""instruct: format and content constraints on a prose answer, every one checked by rule.

An empty answer fails before any check (`no_answer_found`), so no constraint can be met by
saying nothing; each check then states what it counts and what it found.
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator.evaluate.quality.packs import Scenario
from orchestrator.evaluate.quality.verdict import NO_ANSWER_FOUND, VERIFIER_FAIL, WRONG_STRUCTURE, Verdict, answer_text, fail, ok

VERSION = 2  # 2: every check is judged and counted (check-level accuracy); the verdict is the first failure's, as before

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_SENTENCE_END = re.compile(r"[.!?]+(?=[\s\"')\]]|$)")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+\S")
# Common short words of each language, less those two languages share ("la", "de", "en", "es"):
# a French sentence full of "de la" must not read as Spanish.
_COMMON_WORDS = {
    "en": "the and is are of to in it that for with on this was be as not you we they have".split(),
    "fr": "le la les de en et est sont des un une du au aux que qui pour dans pas avec ce sur nous vous il elle".split(),
    "es": "el la los las y es son de un una que en por para con no se del al como muy".split(),
    "de": "der die das und ist sind ein eine nicht mit auf den dem zu es in ich sie wir für von".split(),
}
_STOPWORDS = {lang: {w for w in words if all(w not in other for o, other in _COMMON_WORDS.items() if o != lang)}
              for lang, words in _COMMON_WORDS.items()}


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def check(scenario: Scenario, message: dict[str, Any]) -> Verdict:
    text = answer_text(message)
    specs = scenario.verifier["checks"]
    if not words(text):
        return fail(NO_ANSWER_FOUND, "no answer text", checks=(0, len(specs)))
    problems = [(spec, problem) for spec in specs if (problem := _problem(spec, text))]
    met = (len(specs) - len(problems), len(specs))
    if problems:
        spec, problem = problems[0]
        return fail(WRONG_STRUCTURE if spec["check"] in ("bullets", "headers", "lines") else VERIFIER_FAIL, problem, checks=met)
    return ok(checks=met)


def _bounded(what: str, count: int, spec: dict[str, Any]) -> str | None:
    low, high = spec.get("min", 0), spec.get("max")
    if count < low or (high is not None and count > high):
        return f"{count} {what}, expected {low}..{high if high is not None else '∞'}"
    return None


def _problem(spec: dict[str, Any], text: str) -> str | None:
    kind = spec["check"]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if kind == "words":
        return _bounded("words", len(words(text)), spec)
    if kind == "sentences":
        return _bounded("sentences", len(_SENTENCE_END.findall(text)), spec)
    if kind == "bullets":
        return _bounded("bullet lines", sum(_is_item(line, spec.get("marker")) for line in lines), spec)
    if kind == "lines":
        return _bounded("non-empty lines", len(lines), spec)
    if kind == "case":
        letters = [c for c in text if c.isalpha()]
        wrong = [c for c in letters if (c.isupper() if spec["is"] == "lower" else c.islower())]
        return f"{len(wrong)} letter(s) not {spec['is']}case" if wrong else None
    if kind in ("contains", "contains_any", "absent"):
        sensitive = spec.get("case_sensitive", False)
        haystack = text if sensitive else text.casefold()
        found = [p for p in spec["phrases"] if (p if sensitive else p.casefold()) in haystack]
        if kind == "contains":
            missing = [p for p in spec["phrases"] if p not in found]
            return f"missing {missing}" if missing else None
        if kind == "contains_any":
            return None if found else f"none of {spec['phrases']}"
        return f"contains forbidden {found}" if found else None
    if kind == "count":
        count = len(re.findall(rf"(?<!\w){re.escape(spec['phrase'])}(?!\w)", text, re.I))
        return _bounded(f"× {spec['phrase']!r}", count, spec)
    if kind == "headers":
        return _headers_problem(spec["lines"], lines)
    if kind == "language":
        return _language_problem(spec["is"], text)
    if kind == "starts_with":
        return None if text.lower().startswith(spec["text"].lower()) else f"starts {text[:30]!r}, expected {spec['text']!r}"
    if kind == "ends_with":
        return None if text.lower().endswith(spec["text"].lower()) else f"ends {text[-30:]!r}, expected {spec['text']!r}"
    if kind == "no_chars":
        found = sorted({c for c in text if c in spec["chars"]})
        return f"contains forbidden character(s) {''.join(found)!r}" if found else None
    raise ValueError(f"unknown instruct check {kind!r}")  # the schema allows none other


def _is_item(line: str, marker: str | None) -> bool:
    """A list line: any bullet or number, or only the `marker` asked for ("-", "*" or "numbered")."""
    if marker == "numbered":
        return bool(_NUMBERED.match(line))
    if marker:
        return line.startswith(marker + " ") and bool(line[len(marker):].strip())
    return bool(_BULLET.match(line))


def _headers_problem(expected: list[str], lines: list[str]) -> str | None:
    """Each header is a whole line of its own (markdown `#` and bold markers forgiven), in order,
    and each has some text after it before the next header."""
    def bare(line: str) -> str:
        return line.lstrip("#").strip().strip("*").strip().rstrip(":").strip().casefold()

    positions = []
    for header in expected:
        start = positions[-1] + 1 if positions else 0
        index = next((i for i in range(start, len(lines)) if bare(lines[i]) == bare(header)), None)
        if index is None:
            return f"header {header!r} missing or out of order"
        positions.append(index)
    bounds = positions[1:] + [len(lines)]
    empty = [expected[i] for i, (at, end) in enumerate(zip(positions, bounds)) if end - at < 2]
    return f"nothing under header(s) {empty}" if empty else None


def _language_problem(language: str, text: str) -> str | None:
    tokens = [w.casefold() for w in words(text)]
    counts = {lang: sum(t in stop for t in tokens) for lang, stop in _STOPWORDS.items()}
    rival = max((lang for lang in counts if lang != language), key=lambda lang: counts[lang])
    if counts[language] <= counts[rival]:
        return f"reads as {rival if counts[rival] else 'none of them'!r} ({counts}), expected {language!r}"
    return None
