"""Property tests for the readers of files a stranger may have written: the ledger (run.jsonl, as
`report` reads it) and hardware.json (as `decide --hardware` reads it). Whatever the bytes, the
answer is a clean result or one BadInput line naming the file (and, for the ledger, the line)."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from orchestrator.core import datafiles
from orchestrator.plan.decide import decide
from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.core.ledger import read_state
from orchestrator.core.paths import REPO_ROOT
from orchestrator.plan.probe import Hardware
from orchestrator.plan.profiles import load_profiles
from orchestrator.publish.report import report

EXAMPLE_RUN = next((REPO_ROOT / "submissions" / "EXAMPLE").glob("*/run-*"))
EXAMPLE_RECORDS = [json.loads(line) for line in (EXAMPLE_RUN / "run.jsonl").read_text().splitlines()]
HARDWARE_DOC = json.loads((REPO_ROOT / "tests" / "fixtures" / "hardware" / "linux-rtx3060-12gb.json").read_text())
PROFILES = load_profiles()
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


def dumps(value) -> str:
    return json.dumps(value)  # NaN and Infinity come out bare, as a hand-edited or hostile file would have them


def one_line_naming(exc: Exception, path: Path, with_line: bool) -> None:
    message = str(exc)
    assert "\n" not in message
    pattern = re.escape(str(path)) + (r":\d+: " if with_line else r"[: ]")
    assert re.match(pattern, message), message


def same_kind(value):
    """Values of the original's JSON type, edge cases included: what slips past a type check."""
    if isinstance(value, bool) or value is None:
        return scalars
    if isinstance(value, (int, float)):
        return (st.integers(min_value=-(10**31), max_value=10**31) | st.sampled_from([0, -1, 1, 2**63])
                | st.floats(allow_nan=False, allow_infinity=False))
    if isinstance(value, str):
        return st.text(max_size=12) | st.just(value + "\n") | st.just("")
    if isinstance(value, list):
        return st.lists(same_kind(value[0]) if value else json_values, max_size=4)
    return json_values


def mutate(doc, data, depth: int = 0):
    """Replace or drop one value somewhere in `doc` (a copy), by one of its own type or any JSON."""
    if isinstance(doc, (dict, list)) and doc and depth < 3:
        key = data.draw(st.sampled_from(sorted(doc) if isinstance(doc, dict) else range(len(doc))))
        action = data.draw(st.sampled_from(["same kind", "any", "drop", "descend"]))
        out = dict(doc) if isinstance(doc, dict) else list(doc)
        if action == "drop" and isinstance(out, dict):
            del out[key]
        elif action == "descend":
            out[key] = mutate(doc[key], data, depth + 1)
        else:
            out[key] = data.draw(same_kind(doc[key]) if action == "same kind" else json_values)
        return out
    return data.draw(same_kind(doc) if data.draw(st.booleans()) else json_values)


# ---------------------------------------------------------------------------------------
# The ledger


def read_ledger_state(path: Path) -> None:
    try:
        read_state(path)
    except BadInput as exc:
        one_line_naming(exc, path, with_line=True)


@SETTINGS
@given(st.lists(json_values, max_size=4))
def test_ledger_reader_on_random_json_lines(values):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.jsonl"
        path.write_text("".join(dumps(v) + "\n" for v in values))
        read_ledger_state(path)


@SETTINGS
@given(st.data())
def test_report_on_a_ledger_with_one_hostile_record(data):
    """A real ledger with one record changed: report succeeds with valid metadata, or names the line."""
    index = data.draw(st.integers(0, len(EXAMPLE_RECORDS) - 1))
    records = list(EXAMPLE_RECORDS)
    records[index] = mutate(records[index], data)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        for name in ("manifest.json", "hardware.json"):
            (run_dir / name).write_bytes((EXAMPLE_RUN / name).read_bytes())
        (run_dir / "run.jsonl").write_text("".join(dumps(r) + "\n" for r in records))
        try:
            report(run_dir, plots=False)
        except BadInput as exc:
            one_line_naming(exc, run_dir / "run.jsonl", with_line=not str(exc).endswith("not a meta record"))
            event("refused")
            return
        event("reported")
        metadata = datafiles.read_json(run_dir / "metadata.json")  # refuses NaN: report never writes one
        datafiles.validate(metadata, "metadata", "metadata.json")


@SETTINGS
@given(st.data())
def test_report_on_a_hostile_manifest_and_hardware_json(data):
    """The files beside the ledger: report succeeds or names the file; it never trips over a field."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        (run_dir / "run.jsonl").write_bytes((EXAMPLE_RUN / "run.jsonl").read_bytes())
        for name in ("manifest.json", "hardware.json"):
            doc = json.loads((EXAMPLE_RUN / name).read_text())
            (run_dir / name).write_text(dumps(mutate(doc, data) if data.draw(st.booleans()) else doc))
        try:
            report(run_dir, plots=False)
            event("reported")
        except BadInput as exc:
            assert "\n" not in str(exc) and re.match(re.escape(str(run_dir)) + r"/(manifest|hardware)\.json[: ]", str(exc))
            event("refused")


# ---------------------------------------------------------------------------------------
# hardware.json


def load_and_plan(path: Path) -> None:
    """Hardware.load, then a plan from it: a clean Hardware (and plan, or 'nothing fits'), or one line."""
    try:
        hardware = Hardware.load(path)
    except BadInput as exc:
        one_line_naming(exc, path, with_line=False)
        event("refused")
        return
    try:
        decide(hardware, PROFILES, {})
        event("planned")
    except WeeyugaError as exc:  # nothing fits a tiny (but valid) machine: exit 3 with its reason
        assert "\n" not in str(exc)
        event("nothing fits")


@SETTINGS
@given(json_values)
def test_hardware_reader_on_random_json(value):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hardware.json"
        path.write_text(dumps(value))
        load_and_plan(path)


@SETTINGS
@given(st.data())
def test_hardware_reader_on_a_real_file_with_one_hostile_value(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hardware.json"
        path.write_text(dumps(mutate(HARDWARE_DOC, data)))
        load_and_plan(path)


@pytest.mark.parametrize("name, check", [("run.jsonl", read_ledger_state), ("hardware.json", load_and_plan)])
@SETTINGS
@given(data=st.binary(max_size=600))
def test_readers_on_random_bytes(name, check, data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        check(path)


def quality_folder(run_dir: Path, records: list, responses: list) -> None:
    (run_dir / "run.jsonl").write_text("".join(dumps(r) + "\n" for r in records))
    (run_dir / "responses.jsonl").write_text("".join(dumps(r) + "\n" for r in responses))


def quality_lines() -> tuple[list, list]:
    """Two scenario verdicts of the toolcall pack with their saved answers, as the quality phase writes them."""
    from orchestrator.evaluate.quality.packs import load_packs
    from orchestrator.evaluate.quality.records import Judged, quality_record, response_line, response_ref
    from orchestrator.evaluate.quality.verdict import fail, ok

    (pack,) = load_packs(("toolcall",))
    records, responses = [], []
    for scenario, verdict in zip(pack.scenarios[:2], (ok(), fail("wrong_answer", "no call"))):
        records.append(quality_record(Judged("n:llamacpp:m", pack, scenario.id, 0, verdict), 30.0, 1.0, "stop", None))
        responses.append(response_line(response_ref("n:llamacpp:m", pack.id, scenario.id, 0),
                                       {"content": "x", "reasoning_content": None, "tool_calls": []}, "stop"))
    return records, responses


QUALITY_RECORDS, QUALITY_RESPONSES = quality_lines()


@SETTINGS
@given(st.data())
def test_quality_readers_on_a_ledger_with_one_hostile_verdict(data):
    """inspect, compare and rescore on verdicts with one field changed: a result, or one line naming the line."""
    from orchestrator.evaluate.quality.rundir import compare_quality, inspect_run, rescore_run

    records, responses = list(QUALITY_RECORDS), list(QUALITY_RESPONSES)
    index = data.draw(st.integers(0, len(records) + len(responses) - 1))
    if index < len(records):
        records[index] = mutate(records[index], data)
    else:
        responses[index - len(records)] = mutate(responses[index - len(records)], data)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        quality_folder(run_dir, records, responses)
        for read in (lambda: inspect_run(run_dir), lambda: compare_quality([run_dir] * 3, run_dir),
                     lambda: rescore_run(run_dir)):
            try:
                read()
                event("read")
            except BadInput as exc:
                message = str(exc)
                assert "\n" not in message and str(run_dir) in message, message
                event("refused")
