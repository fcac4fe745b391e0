"""The knob table (profiles/knobs.yaml) is the one home of the plan's knobs (issue #24)."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from orchestrator.cli import build_parser
from orchestrator.core.errors import BadInput
from orchestrator.plan.decide import Plan
from orchestrator.plan.knobs import check_override, golden_knobs, knob, knob_names, knob_table, tunable_knobs

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "orchestrator" / "core" / "schemas"


def test_every_knob_is_a_plan_field():
    fields = [f.name for f in dataclasses.fields(Plan)]
    assert [name for name in fields if name in knob_names()] == knob_names()


def test_the_cli_offers_every_knob_with_the_tables_range(capsys):
    parser = build_parser()
    for entry in knob_table():
        if entry.type != "integer":
            continue
        with pytest.raises(SystemExit):
            parser.parse_args(["decide", entry.flag, str(int(entry.high) + 1)])
        assert f"must be from {int(entry.low):,} to {int(entry.high):,}" in capsys.readouterr().err
        args = parser.parse_args(["decide", entry.flag, str(int(entry.low))])
        assert getattr(args, entry.name) == int(entry.low)


@pytest.mark.parametrize("name,value,problem", [
    ("ngl", -1, "must be from 0 to 10,000"),
    ("threads", 0, "must be from 1 to 16,384"),
    ("num_ctx", "4096", "must be an integer"),
    ("temperature", 3, "must be from 0 to 2"),
    ("keep_alive", "soon", "not a duration"),
    ("backend", "tpu", "must be one of"),
    ("colour", 1, "not a plan knob"),
])
def test_overrides_are_checked_against_the_table(name, value, problem):
    with pytest.raises(BadInput, match=problem):
        check_override(name, value)


def test_rule_tables_schema_ranges_agree_with_the_table():
    rules = json.loads((SCHEMAS / "rules.schema.json").read_text())
    pins = rules["$defs"]["pin"]["properties"]["set"]["properties"]
    for name, spec in pins.items():
        entry = knob(name)
        assert (spec["minimum"], spec["maximum"]) == (entry.low, entry.high), name
    runtime = json.loads((SCHEMAS / "runtime.schema.json").read_text())
    assert set(runtime["properties"]["knobs"]["propertyNames"]["enum"]) <= set(knob_names())


def test_golden_and_tunable_sets():
    assert set(tunable_knobs()) <= set(golden_knobs()) <= set(knob_names())


def knob_lists(tree: ast.AST) -> list[int]:
    """Line numbers of literal lists, tuples and sets naming three or more knobs."""
    names = set(knob_names())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            spelled = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in names]
            if len(spelled) >= 3:
                found.append(node.lineno)
    return found


def test_no_other_list_of_knobs_in_the_package():
    """Knob names appear once as data: no module keeps its own list of them."""
    spelled = {str(path.relative_to(REPO)): lines for path in (REPO / "orchestrator").rglob("*.py")
               if (lines := knob_lists(ast.parse(path.read_text(encoding="utf-8"))))}
    assert spelled == {}


def test_the_list_finder_would_find_one():
    assert knob_lists(ast.parse('X = ["ngl", "threads", "num_parallel"]')) == [1]
