"""Frozen prompts, suite files and their machine checks."""

import hashlib
import json
import shutil

import pytest

from orchestrator.core.errors import BadInput
from orchestrator.core.paths import data_dir
from orchestrator.measure.suites import PHASES, format_ok, load_prompts, load_suite, marker_hit, parse_phases

# The methodology's prompts, byte for byte. If one of these fails, a frozen prompt was edited: revert it.
FROZEN_SHA256 = {
    "P-EASY": "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4",
    "P-MEDIUM": hashlib.sha256(b"Explain in 4 sentences why the sky appears blue at noon.").hexdigest(),
    "P-HARD": hashlib.sha256(b"Write a 200-word story about a fisherman who discovers a coin from a sunken empire.").hexdigest(),
}


def test_frozen_prompts_are_byte_identical():
    prompts = load_prompts()
    assert {p: hashlib.sha256(prompts[p].text.encode()).hexdigest() for p in FROZEN_SHA256} == FROZEN_SHA256
    assert [prompts[p].max_tokens for p in ("P-EASY", "P-MEDIUM", "P-HARD")] == [64, 512, 1024]


@pytest.mark.parametrize("name", PHASES)
def test_every_suite_loads_and_every_item_has_checks(name):
    suite = load_suite(name)
    assert suite.version >= 1 and suite.items
    assert len({i.id for i in suite.items}) == len(suite.items)
    for item in suite.items:
        assert item.format["kind"] and isinstance(item.markers, list)


def test_suite_sizes_match_their_names():
    assert len(load_suite("5q").items) == 5 and len(load_suite("20q").items) == 20
    assert [i.prompt for i in load_suite("hello").items] == [p.text for p in load_prompts().values()]
    assert load_suite("parallel_mixed").lane_models == "mixed"
    assert "class Inventory" in load_suite("edge_suite").items[0].prompt


def test_bad_suite_names_file_and_field(tmp_path):
    shutil.copy(data_dir("suites") / "prompts.json", tmp_path)
    doc = json.loads((data_dir("suites") / "5q.json").read_text())
    doc["items"][2]["checks"]["format"] = {"kind": "sentences"}
    (tmp_path / "5q.json").write_text(json.dumps(doc))
    with pytest.raises(BadInput, match=r"5q.json: field items\[2\]"):
        load_suite("5q", tmp_path)
    with pytest.raises(BadInput, match="unknown phase 'nope'"):
        load_suite("nope", tmp_path)


def test_parse_phases():
    assert parse_phases("5q,hello") == ["hello", "5q"]
    assert parse_phases("all") == PHASES
    with pytest.raises(BadInput, match="unknown phase"):
        parse_phases("hello,bogus")


@pytest.mark.parametrize("rule,text,ok", [
    ({"kind": "regex", "pattern": r"^\d+$"}, " 8\n", True),
    ({"kind": "regex", "pattern": r"^\d+$"}, "The answer is 8", False),
    ({"kind": "sentences", "min": 1, "max": 1}, "A hash table maps keys to values.", True),
    ({"kind": "sentences", "min": 1, "max": 1}, "It maps keys. It is fast.", False),
    ({"kind": "json", "keys": ["language", "year"]}, '```json\n{"language": "Python", "year": 1991}\n```', True),
    ({"kind": "json", "keys": ["language", "year"]}, '{"language": "Python"}', False),
    ({"kind": "code_block", "language": "python"}, "Here:\n```python\nprint(1)\n```", True),
    ({"kind": "code_block", "language": "python"}, "```python\nprint(1)", False),
    ({"kind": "words", "min": 2, "max": 3}, "one two three four", False),
    ({"kind": "max_words", "n": 3}, "hi there", True),
])
def test_format_rules(rule, text, ok):
    assert format_ok(rule, text) is ok


def test_marker_hit_is_a_case_insensitive_share():
    assert marker_hit(["red", "green", "blue"], "Red and BLUE") == pytest.approx(2 / 3)
    assert marker_hit([], "anything") is None
