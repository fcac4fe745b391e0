"""Typed ledger lines and the phase context: one declaration per line, keys with step and attempt."""

import dataclasses
import json

import pytest

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput
from orchestrator.core.ledger import Ledger, call_key, read_records, read_state
from orchestrator.measure.phases import PHASE_MODES, PhaseContext, load_phase
from orchestrator.core.progress import quiet
from orchestrator.core.records import RECORD_TYPES, CallKey, EndRecord, SkippedRecord
from orchestrator.core.runspec import Cell, RunOptions, RunTally, Target
from orchestrator.measure.suites import PHASES, load_suite
from tests.fakes.openai_server import start_in_thread


def test_every_record_type_has_a_schema_branch_and_back():
    schema = datafiles.schema("run-record")
    branches = {branch["if"]["properties"]["type"]["const"] for branch in schema["allOf"]}
    assert set(RECORD_TYPES) == set(schema["properties"]["type"]["enum"]) == branches


def test_a_key_without_step_or_attempt_is_the_ledger_1_key():
    old_line = {"cell_id": "n:e:m", "phase": "5q", "prompt_id": "5Q-01", "lane": None, "run_idx": 0}
    assert call_key(old_line) == ("n:e:m", "5q", "5Q-01", None, 0)
    assert call_key({**old_line, "step": 2, "attempt": 0}) == ("n:e:m", "5q", "5Q-01", None, 0, 2, 0)
    assert CallKey.of(old_line) == CallKey("n:e:m", "5q", "5Q-01")


def test_lines_keep_their_field_order_and_leave_unset_optional_fields_out():
    end = EndRecord("2026-01-01T00:00:00.00Z", None, 3, 1, "complete", None).to_json()
    assert list(end) == ["type", "finished_at_utc", "load_avg_end", "calls", "errors", "status", "status_reason"]
    skipped = SkippedRecord("n:e:m", None, "unreachable", "2026-01-01T00:00:00.00Z")
    assert skipped.key == ("n:e:m", None) and skipped.to_json()["type"] == "skipped"


def test_a_ledger_with_a_schema_refuses_a_line_that_does_not_fit_and_writes_nothing(tmp_path):
    with Ledger(tmp_path / "run.jsonl", schema="run-record") as ledger:
        with pytest.raises(BadInput, match="field load_avg_end"):
            ledger.write(dataclasses.replace(EndRecord("t", None, 0, 0, "failed", None), load_avg_end="high"))
        ledger.write(EndRecord("t", None, 0, 0, "complete", None))
    assert [r["type"] for r in read_records(tmp_path / "run.jsonl")] == ["end"]


@pytest.mark.parametrize("name", PHASES)
def test_units_give_the_calls_a_phase_makes_and_match_the_suite(name):
    phase = load_phase(name)
    assert isinstance(phase, PHASE_MODES[load_suite(name).mode]) and phase.kind == "speed"
    units = phase.units(["n:e:a", "n:e:b"], RunOptions(phases=[name], runs=2))
    keys = [key for unit in units for key in unit.keys]
    assert len(keys) == len(set(keys)) and {k.phase for k in keys} == {name}
    assert units == phase.units(["n:e:a", "n:e:b"], RunOptions(phases=[name], runs=2)), "deterministic"
    assert phase.estimate_seconds(100.0, 256, 2) > phase.estimate_seconds(200.0, 256, 2) > 0


def test_context_chat_records_a_multi_turn_tool_call_with_step_and_attempt(tmp_path):
    server, state, url = start_in_thread()
    target = Target(Cell("n:llamacpp:fake-tools", "llamacpp", "fake-tools", url))
    options = RunOptions(phases=["agent"])
    ledger = Ledger(tmp_path / "run.jsonl", schema="run-record")
    ctx = PhaseContext([target], options, tmp_path, "run-1", read_state(tmp_path / "run.jsonl"), ledger,
                       RunTally("run-1", tmp_path), lambda: 0.0, quiet)
    tools = [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]
    try:
        key = CallKey(target.cell.cell_id, "agent", "task-1", step=0, attempt=1)
        assert not ctx.is_done(key)
        result = ctx.chat(ctx.request(key, [{"role": "user", "content": "read it"}], 16, tools=tools), key_fields=key)
    finally:
        ctx.close()
        ledger.close()
        server.shutdown()
    assert ctx.is_done(key) and not ctx.is_done(CallKey(target.cell.cell_id, "agent", "task-1", step=1, attempt=1))
    assert result.message["tool_calls"][0]["function"]["name"] == "read_file" and state.requests[-1]["tools"] == tools
    line = next(read_records(tmp_path / "run.jsonl"))
    assert (line["type"], line["step"], line["attempt"], line["finish_reason"]) == ("call", 0, 1, "tool_calls")
    names = list(line)  # step and attempt follow the preview (no sampler: no peaks); issue #16's fields come after them
    assert names[names.index("response_preview") + 1:][:3] == ["step", "attempt", "cache_prompt"]
    assert line["format_ok"] is None
    assert state.requests[-1]["cache_prompt"] is True and line["cache_prompt"] is True  # agent steps keep reuse (canonical.yaml reused_by)
    saved = json.loads((tmp_path / "responses.jsonl").read_text())
    assert saved["key"] == list(key.as_tuple())


def test_run_md_sections_come_from_the_phase_kinds_present(monkeypatch):
    from orchestrator.core.paths import REPO_ROOT
    from orchestrator.publish.report import compute_report, markdown

    run = compute_report(next((REPO_ROOT / "submissions" / "EXAMPLE").glob("*/run-*")))
    assert run.kinds == {"speed"} and run.meta["type"] == "meta" and len(run.calls) == run.metadata["cells"][0]["n_calls"] + \
        sum(row["n_calls"] for row in run.metadata["cells"][1:])
    monkeypatch.setitem(markdown.SECTIONS, "quality", lambda report: ["", "## Quality packs"])
    assert "## Quality packs" not in markdown.render_markdown(run, [])
    text = markdown.render_markdown(dataclasses.replace(run, kinds=run.kinds | {"quality"}), [])
    assert text.index("## Speed per cell and phase") < text.index("## Quality packs") < text.index("## Methodology")


def test_completeness_is_judged_against_the_phase_list_the_manifest_recorded():
    from orchestrator.publish.catalogue import catalogue_entry
    from orchestrator.core.methodology import methodology
    from orchestrator.core.paths import REPO_ROOT

    run_dir = next((REPO_ROOT / "submissions" / "EXAMPLE").glob("*/run-*"))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert manifest["canonical_phases"] == PHASES == list(methodology().phases)
    then = {**manifest, "canonical_phases": manifest["phases_selected"]}  # a run from when these were all the phases
    assert catalogue_entry(run_dir, then, metadata)["completeness"] == "complete"
    older = {k: v for k, v in manifest.items() if k != "canonical_phases"}
    entry = catalogue_entry(run_dir, older, metadata)
    assert entry["completeness"] == "partial" and "20q" in entry["partial_reason"]
