"""The incremental catalogue, its Parquet export and `catalogue --query`, on synthetic submissions."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from orchestrator.publish.catalogue import build_catalogue, update_catalogue
from orchestrator.publish.catalogue.export import query
from orchestrator.publish.catalogue.rows import COLUMNS
from orchestrator.cli import main
from orchestrator.core.datafiles import validate
from tests.fakes.catalogue import EXAMPLE, SyntheticRuns, quality_record

RUN_COLUMNS = ["run_id", "run_path", "hardware_class", "runtime", "engine_version", "model", "model_digest", "knobs",
               "deviations", "record_kind", "cell_id"]


@pytest.fixture(scope="module")
def runs():
    return SyntheticRuns()


def rows(export_dir: Path) -> list[tuple]:
    return query(export_dir, "SELECT * FROM catalogue ORDER BY ALL").rows


def assert_equals_full_rebuild(root: Path, tmp: Path, out: Path) -> None:
    """What the incremental build wrote is byte for byte (catalogue.json) and row for row (export)
    what a build from nothing writes."""
    fresh = tmp / "fresh"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    full = update_catalogue(root, fresh / "catalogue.json")
    assert full.reread == full.counts["runs"] + full.counts["invalid"]
    assert out.read_bytes() == (fresh / "catalogue.json").read_bytes()
    assert rows(out.with_name("catalogue.parquet")) == rows(full.export_dir)
    assert json.loads(out.read_text()) == build_catalogue(root)


def test_incremental_build_rereads_only_what_changed_and_equals_a_full_rebuild(runs, tmp_path):
    root, out = tmp_path / "subs", tmp_path / "out" / "catalogue.json"
    out.parent.mkdir()
    shutil.copytree(EXAMPLE.parent.parent, root / "EXAMPLE")  # never catalogued
    folders = runs.write_many(root, 12)
    first = update_catalogue(root, out)
    assert (first.reread, first.unchanged, first.counts["runs"], first.shards_written) == (12, 0, 12, 16)
    validate(json.loads(out.read_text()), "catalogue", "catalogue.json")
    assert_equals_full_rebuild(root, tmp_path, out)

    written = out.stat().st_mtime_ns
    again = update_catalogue(root, out)
    assert (again.reread, again.unchanged, again.dropped, again.shards_written) == (0, 12, 0, 0)
    assert out.stat().st_mtime_ns == written  # nothing changed, nothing written
    out.write_text("{}")  # someone else's edit: written again
    update_catalogue(root, out)
    assert_equals_full_rebuild(root, tmp_path, out)

    runs.write(root, 100)  # new
    shutil.rmtree(folders[3])  # removed
    metadata = json.loads((folders[5] / "metadata.json").read_text())
    metadata["cells"][0]["tokens_per_sec_mean"] = 123.0  # changed
    (folders[5] / "metadata.json").write_text(json.dumps(metadata))
    os.utime(folders[7] / "manifest.json")  # touched, same bytes: hashed, not parsed
    (folders[8] / "notes.txt").symlink_to("/etc/os-release")  # now hostile
    step = update_catalogue(root, out)
    assert (step.reread, step.dropped, step.counts["runs"], step.counts["invalid"]) == (3, 1, 11, 1)
    assert step.shards_written <= 4
    assert "notes.txt: a symbolic link" in step.invalid[0]["reason"]
    assert_equals_full_rebuild(root, tmp_path, out)

    (folders[8] / "notes.txt").unlink()  # repaired
    assert update_catalogue(root, out).counts["invalid"] == 0
    assert_equals_full_rebuild(root, tmp_path, out)


def test_the_index_is_a_cache_another_folder_or_a_damaged_file_starts_again(runs, tmp_path):
    out = tmp_path / "catalogue.json"
    runs.write_many(tmp_path / "a", 3)
    runs.write_many(tmp_path / "b", 2)
    assert update_catalogue(tmp_path / "a", out).counts["runs"] == 3
    other = update_catalogue(tmp_path / "b", out)  # same index file, another submissions folder
    assert (other.reread, other.counts["runs"], other.dropped) == (2, 2, 0)
    (tmp_path / "catalogue.index.sqlite").write_bytes(b"not a database" * 100)
    assert update_catalogue(tmp_path / "b", out).reread == 2
    shutil.rmtree(tmp_path / "catalogue.parquet")  # a missing export is written again, though nothing changed
    assert update_catalogue(tmp_path / "b", out).shards_written == 16 and len(rows(tmp_path / "catalogue.parquet")) == 12


def test_every_row_carries_the_run_and_quality_and_agent_lines_flow_in(runs, tmp_path):
    root = tmp_path / "subs"
    runs.write(root, 1, axes=False)
    runs.write(root, 2, axes=True)
    result = update_catalogue(root, tmp_path / "catalogue.json")
    kinds = dict(query(result.export_dir, "SELECT record_kind, count(*) FROM catalogue GROUP BY 1").rows)
    assert kinds == {"phase": 6, "quality": 4, "agent_task": 2}
    missing = " OR ".join(f"{c} IS NULL" for c in RUN_COLUMNS)
    assert query(result.export_dir, f"SELECT count(*) FROM catalogue WHERE {missing}").rows == [(0,)]
    (row,) = query(result.export_dir, "SELECT knobs->>'ngl', quality_passed, quality_score, quality_scenario "
                                      "FROM catalogue WHERE quality_scenario = 'toolcall-00'").rows
    assert row == ("31", True, 1.0, "toolcall-00")
    agent = query(result.export_dir, "SELECT avg(agent_passed::INT), min(agent_workflow) FROM catalogue "
                                     "WHERE record_kind = 'agent_task'").rows
    assert agent == [(0.5, "two-try")]
    described = query(result.export_dir, "DESCRIBE catalogue").rows
    assert [(name, kind) for name, kind, *_ in described] == [(name, kind) for name, kind, _ in COLUMNS]


@pytest.mark.parametrize("ledger_tail, reason", [
    (json.dumps(quality_record("c", 1, True) | {"score": "high"}) + "\n", "run.jsonl line {n}: field for quality_score"),
    ('{"type": "quality", "pack": \n{"type": "end"}\n', "run.jsonl (line {n}): not valid JSON"),
    ('{"type": "agent_run", "task": "t", "passes": 99999999999}\n', "run.jsonl line {n}: field for agent_passes"),
    ('{"record": "agent_run", "task": "\\ud800"}\n', "not Unicode text (a lone surrogate)"),
])
def test_a_hostile_ledger_line_makes_its_run_invalid_with_the_line_named(runs, tmp_path, ledger_tail, reason):
    run = runs.write(tmp_path / "subs", 1, axes=False)
    first_new_line = (run / "run.jsonl").read_text().count("\n") + 1
    with open(run / "run.jsonl", "a") as fh:
        fh.write(ledger_tail)
    catalogue = build_catalogue(tmp_path / "subs")
    assert catalogue["counts"]["invalid"] == 1 and reason.format(n=first_new_line) in catalogue["invalid"][0]["reason"]


def test_a_torn_last_line_is_ignored_as_the_ledger_ignores_it(runs, tmp_path):
    run = runs.write(tmp_path / "subs", 1, axes=True)
    with open(run / "run.jsonl", "a") as fh:
        fh.write('{"type": "quality", "pack": "tool')
    result = update_catalogue(tmp_path / "subs", tmp_path / "catalogue.json")
    assert result.counts == {"runs": 1, "complete": 0, "partial": 1, "invalid": 0, "failed": 0}
    assert query(result.export_dir, "SELECT count(*) FROM catalogue WHERE record_kind = 'quality'").rows == [(4,)]


def test_query_prints_a_table_and_bad_sql_is_one_line_exit_2(runs, tmp_path, capsys):
    runs.write_many(tmp_path / "subs", 9)
    base = ["catalogue", "--submissions-dir", str(tmp_path / "subs"), "--out", str(tmp_path / "catalogue.json")]
    sql = ("SELECT hardware_class, model, median(tokens_per_sec_mean) AS median_tok_s, count(*) AS n FROM catalogue "
           "WHERE record_kind = 'phase' GROUP BY ALL ORDER BY hardware_class, model")
    assert main(base + ["--query", sql]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["hardware_class", "model", "median_tok_s", "n"] and set(out[1]) <= {"-", " "}
    assert out[-1] == "(9 rows)" and "Radeon RX 7900 XTX (24 GB)" in "\n".join(out)
    for bad, says in (("SELEC 1", "Parser Error"), ("SELECT nope FROM catalogue", "Binder Error"),
                      ("SELECT * FROM read_csv('/etc/passwd')", "disabled by configuration")):
        assert main(base + ["--query", bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("weeyuga: error: --query: ") and says in err


def test_worker_processes_build_what_one_process_builds(runs, tmp_path, monkeypatch):
    from orchestrator.publish.catalogue import index as catalogue_index

    root = tmp_path / "subs"
    runs.write_many(root, 8)
    (root / "user1" / "bad" / "run-x").mkdir(parents=True)  # invalid, from a worker too
    one = update_catalogue(root, tmp_path / "one.json")
    monkeypatch.setattr(catalogue_index, "PARALLEL_FROM", 2)
    monkeypatch.setattr(catalogue_index.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    many = update_catalogue(root, tmp_path / "many.json")
    assert many.reread == one.reread == 9 and many.counts["invalid"] == 1
    assert (tmp_path / "one.json").read_bytes() == (tmp_path / "many.json").read_bytes()
    assert rows(one.export_dir) == rows(many.export_dir)
