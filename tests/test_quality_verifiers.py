"""Each verifier kind on hand-written answers: what it forgives and what it refuses."""

import json

import pytest

from orchestrator.evaluate.quality.packs import Scenario
from orchestrator.evaluate.quality.verdict import Verdict, answer_text, reasoning_text, reclassify_truncated
from orchestrator.evaluate.quality.verifiers import verify


def scenario(verifier, expected=None, tools=None):
    return Scenario("XX-01", "test", "easy", ({"role": "user", "content": "question"},), verifier, tools, expected)


def text(content, reasoning=None):
    return {"content": content, "reasoning_content": reasoning, "tool_calls": []}


def calls(*pairs, raw=False):
    return {"content": None, "tool_calls": [{"function": {"name": n, "arguments": a if raw else json.dumps(a)}} for n, a in pairs]}


def test_think_blocks_are_stripped_and_reasoning_is_never_the_answer():
    message = {"content": "<think>ANSWER: 99</think>\nANSWER: 12", "reasoning_content": "ANSWER: 7"}
    assert answer_text(message) == "ANSWER: 12"
    assert "ANSWER: 7" in reasoning_text(message) and "ANSWER: 99" in reasoning_text(message)
    math = scenario({"type": "math", "answer": 7})
    assert verify(math, text("", "ANSWER: 7"), "stop").failure_mode == "no_answer_found"
    assert verify(math, text("<think>unfinished ANSWER: 7"), "stop").failure_mode == "no_answer_found"


def test_token_limit_reclassifies_only_content_failures():
    wrong = Verdict(False, "wrong_answer", "expected 3")
    assert reclassify_truncated(wrong, "length").failure_mode == "token_limit"
    assert "wrong_answer" in reclassify_truncated(wrong, "length").detail
    assert reclassify_truncated(wrong, "stop") is wrong
    assert reclassify_truncated(Verdict(False, "timeout", "slow"), "length").failure_mode == "timeout"
    with pytest.raises(ValueError):
        Verdict(True, "wrong_answer", "contradiction")


TOOLS = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize("message,mode", [
    (calls(("f", {"x": 3})), "passed"),
    (calls(("f", {"x": 3.0})), "passed"),
    (calls(("f", {"x": True})), "wrong_answer"),  # True == 1 in Python, not here
    (calls(("f", {"x": "3"})), "wrong_answer"),
    (calls(("f", {})), "missing_field"),
    (calls(("f", "{x: 3"), raw=True), "invalid_json"),
    (calls(("f", "[3]"), raw=True), "invalid_json"),
    (calls(("g", {"x": 3})), "wrong_answer"),
    (text("I would call f with x=3"), "wrong_answer"),
    (text(""), "no_answer_found"),
])
def test_tool_call_arguments(message, mode):
    checks = [{"check": "first_call", "name": "f"}, {"check": "arg", "name": "x", "equals": 3}]
    assert verify(scenario({"type": "tool_call", "checks": checks}, tools=TOOLS), message, "stop").failure_mode == mode


def test_tool_call_order_dependent_prefix_and_restraint():
    dependent = scenario({"type": "tool_call", "checks": [{"check": "call_order", "names": ["a", "b"], "dependent": True}]}, tools=TOOLS)
    assert verify(dependent, calls(("a", {})), "stop").passed
    assert verify(dependent, calls(("a", {}), ("b", {})), "stop").passed
    assert not verify(dependent, calls(("b", {})), "stop").passed
    independent = scenario({"type": "tool_call", "checks": [{"check": "call_order", "names": ["a", "b"]}]}, tools=TOOLS)
    assert not verify(independent, calls(("a", {})), "stop").passed
    restraint = scenario({"type": "tool_call", "checks": [{"check": "no_call"}, {"check": "content", "regex": r"\bmars\b"}]}, tools=TOOLS)
    assert verify(restraint, text("Mars."), "stop").passed
    assert verify(restraint, text(""), "stop").failure_mode == "no_answer_found"
    assert verify(restraint, {**calls(("f", {})), "content": "Mars"}, "stop").failure_mode == "wrong_answer"


@pytest.mark.parametrize("check,answer,ok", [
    ({"check": "words", "min": 3, "max": 4}, "one two three", True),
    ({"check": "words", "min": 3, "max": 4}, "one two three four five", False),
    ({"check": "case", "is": "lower"}, "all lower, 42!", True),
    ({"check": "case", "is": "lower"}, "Not lower", False),
    ({"check": "bullets", "min": 2, "max": 2}, "- a\n* b", True),
    ({"check": "bullets", "min": 2, "max": 2}, "-a\n-b", False),
    ({"check": "headers", "lines": ["Intro", "End"]}, "## Intro\ntext\n**End:**\nmore", True),
    ({"check": "headers", "lines": ["Intro", "End"]}, "End\ntext\nIntro\nmore", False),
    ({"check": "headers", "lines": ["Intro", "End"]}, "Intro\nEnd\nmore", False),  # nothing under Intro
    ({"check": "language", "is": "fr"}, "Le chat est sur la table et il dort.", True),
    ({"check": "language", "is": "fr"}, "The cat is on the table and it sleeps.", False),
    ({"check": "language", "is": "fr"}, "La capitale de la région est la ville de Milan.", True),  # "de la" is not Spanish
    ({"check": "language", "is": "es"}, "La capital de la región es la ciudad de Milán y no otra.", True),
    ({"check": "bullets", "min": 2, "max": 2, "marker": "-"}, "1. a\n2. b", False),
    ({"check": "bullets", "min": 2, "max": 2, "marker": "-"}, "- a\n- b", True),
    ({"check": "bullets", "min": 2, "max": 2, "marker": "numbered"}, "1) a\n2. b", True),
    ({"check": "count", "phrase": "delta", "min": 2, "max": 2}, "Delta, deltas and a delta.", True),
    ({"check": "contains", "phrases": ["YES"], "case_sensitive": True}, "yes", False),
    ({"check": "sentences", "min": 2, "max": 2}, "It rains. It pours!", True),
    ({"check": "no_chars", "chars": ","}, "a, b", False),
])
def test_instruct_checks(check, answer, ok):
    assert verify(scenario({"type": "instruct", "checks": [check]}), text(answer), "stop").passed is ok


def test_instruct_refuses_an_answer_without_words_whatever_the_checks():
    loose = scenario({"type": "instruct", "checks": [{"check": "absent", "phrases": ["x"]}]})
    for junk in ("", "   ", "{}", "…", "<think>words in here</think>"):
        assert verify(loose, text(junk), "stop").failure_mode == "no_answer_found"


def test_struct_json_fences_prose_and_strictness():
    exact = scenario({"type": "struct", "format": "json", "checks": [{"check": "equals", "value": {"ok": True}}]})
    assert verify(exact, text('```json\n{"ok": true}\n```'), "stop").passed
    assert verify(exact, text('Here you go:\n```\n{"ok": true}\n```'), "stop").passed
    assert verify(exact, text('{"ok": true, "ok": true}'), "stop").failure_mode == "invalid_json"
    assert verify(exact, text('{"ok": 1}'), "stop").failure_mode == "wrong_answer"
    paths = scenario({"type": "struct", "format": "json", "checks": [{"check": "path", "path": "$.a[1].b", "equals": 2}]})
    assert verify(paths, text('{"a": [{}, {"b": 2}]}'), "stop").passed
    assert verify(paths, text('{"a": [{}, {"b": "2"}]}'), "stop").failure_mode == "wrong_answer"
    assert verify(paths, text('{"a": [{}]}'), "stop").failure_mode == "missing_field"
    keys = scenario({"type": "struct", "format": "json", "checks": [{"check": "keys", "exactly": ["a"]}]})
    assert verify(keys, text('{"a": 1, "b": 2}'), "stop").failure_mode == "extra_fields"


def test_struct_yaml_csv_and_markdown():
    yaml_s = scenario({"type": "struct", "format": "yaml", "checks": [{"check": "path", "path": "$.port", "equals": 80}]})
    assert verify(yaml_s, text("port: 80"), "stop").passed
    assert verify(yaml_s, text("just words"), "stop").failure_mode == "wrong_structure"
    assert verify(yaml_s, text("a: &x 1\nb: *x"), "stop").failure_mode == "wrong_structure"  # strict loader: no aliases
    table = [{"check": "columns", "names": ["a", "b"]}, {"check": "rows", "min": 1, "max": 1}, {"check": "cell", "row": 0, "column": "b", "equals": "2"}]
    csv_s = scenario({"type": "struct", "format": "csv", "checks": table})
    assert verify(csv_s, text("a,b\n1,2"), "stop").passed
    assert verify(csv_s, text("a;b\n1;2"), "stop").failure_mode == "wrong_structure"
    md = scenario({"type": "struct", "format": "markdown_table", "checks": table})
    assert verify(md, text("| a | b |\n|---|:---:|\n| 1 | 2 |"), "stop").passed
    assert verify(md, text("| a | b |\n| 1 | 2 |"), "stop").failure_mode == "wrong_structure"  # no separator row


EXPECTED = {"name": "Ann", "age": 30, "tags": ["x", "y"], "lines": [{"sku": "A", "n": 1}, {"sku": "B", "n": 2}],
            "note": None, "ok": True}  # 9 atomic fields


@pytest.mark.parametrize("answer,passed,score", [
    (EXPECTED, True, 1.0),
    ({**EXPECTED, "lines": list(reversed(EXPECTED["lines"]))}, True, 1.0),  # matched by the anchor, not position
    ({**EXPECTED, "name": " ann "}, True, 1.0),
    ({**EXPECTED, "age": 30.004}, True, 1.0),
    ({**EXPECTED, "age": "30"}, True, 8 / 9),  # 8/9 = 89% ≥ 85%
    ({**EXPECTED, "age": "30", "ok": 1}, False, 7 / 9),
    ({**EXPECTED, "tags": ["x"]}, True, 8 / 9),
    ({k: v for k, v in EXPECTED.items() if k != "note"}, True, 8 / 9),  # absent is not null
    ({}, False, 0.0),
])
def test_extract_scores_atomic_fields(answer, passed, score):
    s = scenario({"type": "extract", "anchors": {"lines": "sku"}}, expected=EXPECTED)
    verdict = verify(s, text(json.dumps(answer)), "stop")
    assert (verdict.passed, verdict.score) == (passed, pytest.approx(score))


def test_extract_refuses_non_objects_and_extra_fields():
    assert not verify(scenario({"type": "extract"}, expected={"a": {}}), text('{"a": {}}'), "stop").passed
    s = scenario({"type": "extract", "no_extra_fields": True}, expected={"a": 1})
    assert verify(s, text("[1]"), "stop").failure_mode == "invalid_json"
    assert verify(s, text('{"a": 1, "b": 2}'), "stop").failure_mode == "extra_fields"


@pytest.mark.parametrize("answer,mode", [
    ("7 + 5 = 12\nANSWER: 12", "passed"),
    ("**ANSWER:** 12", "passed"),
    ("ANSWER: 12.0", "passed"),
    ("ANSWER: 24/2", "passed"),
    ("answer: $12", "passed"),
    ("ANSWER: 11\nwait, no\nANSWER: 12", "passed"),  # the last ANSWER line counts
    ("The answer is 12.", "no_answer_found"),  # a number outside the ANSWER line never counts
    ("ANSWER: twelve", "no_answer_found"),
    ("ANSWER: 13", "wrong_answer"),
    ("ANSWER: 12\nANSWER: 13", "wrong_answer"),
])
def test_math_reads_the_last_answer_line(answer, mode):
    assert verify(scenario({"type": "math", "answer": 12}), text(answer), "stop").failure_mode == mode


def test_math_thousands_and_negative():
    assert verify(scenario({"type": "math", "answer": 1275}), text("ANSWER: 1,275"), "stop").passed
    assert verify(scenario({"type": "math", "answer": -3}), text("ANSWER: -3"), "stop").passed


def test_math_tolerance():
    s = scenario({"type": "math", "answer": 153.94, "tolerance": 0.01})
    assert verify(s, text("ANSWER: 153.938"), "stop").passed
    assert not verify(s, text("ANSWER: 153.9"), "stop").passed
