"""The incremental catalogue, its Parquet export and `catalogue --query`, on synthetic submissions."""

from __future__ import annotations

import dataclasses
import errno
import importlib
import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from orchestrator.publish.catalogue import build_catalogue, update_catalogue
from orchestrator.publish.catalogue.export import query
from orchestrator.publish.catalogue.rows import COLUMNS
from orchestrator.cli import main
from orchestrator.core.datafiles import validate
from orchestrator.core.errors import BadInput
from tests.fakes.catalogue import EXAMPLE, MODELS, SyntheticRuns, quality_record

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
    in_memory = build_catalogue(root)
    assert json.loads(out.read_text())["counts"] == in_memory["counts"]
    assert json.loads(out.read_text())["invalid"] == in_memory["invalid"]


def test_incremental_build_rereads_only_what_changed_and_equals_a_full_rebuild(runs, tmp_path):
    root, out = tmp_path / "subs", tmp_path / "out" / "catalogue.json"
    out.parent.mkdir()
    shutil.copytree(EXAMPLE.parent.parent, root / "EXAMPLE")  # never catalogued
    folders = runs.write_many(root, 12)
    first = update_catalogue(root, out)
    assert (first.reread, first.unchanged, first.counts["runs"], first.files_written) == (12, 0, 12, 1)
    validate(json.loads(out.read_text()), "catalogue", "catalogue.json")
    assert_equals_full_rebuild(root, tmp_path, out)

    written = out.stat().st_mtime_ns
    again = update_catalogue(root, out)
    assert (again.reread, again.unchanged, again.dropped, again.files_written) == (0, 12, 0, 0)
    assert out.stat().st_mtime_ns == written  # nothing changed, nothing written
    out.write_text("{}")  # someone else's edit: written again
    update_catalogue(root, out)
    assert_equals_full_rebuild(root, tmp_path, out)

    runs.write(root, 100)  # new
    shutil.rmtree(folders[3])  # removed
    replaced = folders[4].with_name(folders[4].name + ".new")  # a run folder replaced whole, as a PR's revert does
    shutil.copytree(folders[4], replaced)
    metadata = json.loads((replaced / "metadata.json").read_text())
    metadata["cells"][0]["tokens_per_sec_mean"] = 123.0
    (replaced / "metadata.json").write_text(json.dumps(metadata))
    shutil.rmtree(folders[4])
    os.replace(replaced, folders[4])
    step = update_catalogue(root, out)
    assert (step.reread, step.dropped, step.counts["runs"], step.unchanged) == (2, 1, 12, 10)
    assert step.files_written == 2  # the new runs' file, and the one that held the removed and replaced runs
    assert_equals_full_rebuild(root, tmp_path, out)

    # Inside a run folder of an unchanged device folder (contributed folders are append-only): a file
    # replaced or added, one edited in place, one touched. A default pass stats device folders only ...
    metadata["cells"][0]["tokens_per_sec_mean"] = 99.0
    (folders[5] / "new.tmp").write_text(json.dumps(metadata))
    os.replace(folders[5] / "new.tmp", folders[5] / "metadata.json")  # as git changes a file: a new one in its place
    shutil.copy(folders[7] / "manifest.json", folders[7] / "same.tmp")  # replaced by the same bytes: hashed, not parsed
    os.replace(folders[7] / "same.tmp", folders[7] / "manifest.json")
    (folders[8] / "notes.txt").symlink_to("/etc/os-release")  # now hostile
    metadata["cells"][0]["tokens_per_sec_mean"] = 77.0
    (folders[6] / "metadata.json").write_text(json.dumps(metadata))  # edited in place: the folder does not change
    os.utime(folders[9] / "manifest.json")  # touched, same bytes
    assert update_catalogue(root, out).reread == 0
    rescan = update_catalogue(root, out, rescan=True)  # ... a rescan finds them all, and parses only what differs
    assert (rescan.reread, rescan.unchanged, rescan.counts["invalid"]) == (3, 9, 1)
    assert "notes.txt: a symbolic link" in rescan.invalid[0]["reason"]
    assert_equals_full_rebuild(root, tmp_path, out)

    (folders[8] / "notes.txt").unlink()  # repaired
    assert update_catalogue(root, out, rescan=True).counts["invalid"] == 0
    assert_equals_full_rebuild(root, tmp_path, out)
    assert update_catalogue(root, out).reread == 0  # and a default pass after a rescan has nothing to do


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
    again = update_catalogue(tmp_path / "b", out)
    assert (again.reread, again.files_written) == (2, 1) and len(rows(tmp_path / "catalogue.parquet")) == 12


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
    named = "SELECT count(quality_pack), count(quality_scenario) FROM catalogue WHERE record_kind = 'quality'"
    assert query(result.export_dir, named).rows == [(4, 4)]  # the ledger's `pack` / `scenario` fields
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
    assert result.counts == {"runs": 1, "complete": 0, "partial": 1, "invalid": 0, "failed": 0, "outliers": 0}
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
    summaries = [json.loads((tmp_path / name).read_text()) for name in ("one.json", "many.json")]
    assert [s.pop("export")["folder"] for s in summaries] == ["one.parquet", "many.parquet"]
    assert summaries[0] == summaries[1]
    assert rows(one.export_dir) == rows(many.export_dir)


# ---------------------------------------------------------------------------------------
# Outliers (#26 §2) and the roofline


def comparable(runs: SyntheticRuns, root: Path, n: int) -> list[Path]:
    """n runs of one group: same machine, model, quant, runtime and knobs."""
    step = len(runs.machines) * len(MODELS)
    return [runs.write(root, i) for i in range(0, n * step, step)]


def scale_rates(run: Path, factor: float) -> None:
    metadata = json.loads((run / "metadata.json").read_text())
    for row in metadata["cells"]:
        for key in ("tokens_per_sec_mean", "tokens_per_sec_p50", "warm_tokens_per_sec_mean"):
            row[key] = round(row[key] * factor, 2)
    (run / "metadata.json.tmp").write_text(json.dumps(metadata))
    os.replace(run / "metadata.json.tmp", run / "metadata.json")  # as git changes a file: a new one in its place


def marked(export_dir: Path) -> dict[str, tuple[bool, str | None]]:
    return {path.rsplit("/", 1)[-1]: (outlier, reason) for path, outlier, reason in query(
        export_dir, "SELECT DISTINCT run_path, outlier, outlier_reason FROM catalogue").rows}


def test_an_outlier_is_marked_with_its_reason_and_the_mark_follows_its_group(runs, tmp_path):
    root, out = tmp_path / "subs", tmp_path / "catalogue.json"
    group = comparable(runs, root, 5)
    runs.write(root, 1)  # another group
    scale_rates(group[2], 3.0)
    result = update_catalogue(root, out)
    marks = marked(result.export_dir)
    assert sum(outlier for outlier, _ in marks.values()) == 1 and result.counts["outliers"] == 1
    outlier, reason = marks[group[2].name]
    assert outlier and "above the median" in reason and "of 5 comparable runs" in reason and "mark 3.5" in reason
    assert query(result.export_dir, "SELECT count(*) FROM catalogue WHERE outlier IS NULL").rows == [(0,)]
    entry = next(r for r in build_catalogue(root)["runs"] if r["path"].endswith(group[2].name))
    assert entry["outliers"] and entry["outliers"][0]["reason"] == reason

    shutil.rmtree(group[0])  # n = 4: still a group; the mark is recomputed
    scale_rates(group[2], 1 / 3.0)  # repaired by a maintainer, inside the folder: the mark goes, its file is rewritten
    step = update_catalogue(root, out, rescan=True)
    assert step.counts["outliers"] == 0 and not any(o for o, _ in marked(step.export_dir).values())
    assert_equals_full_rebuild(root, tmp_path, out)

    shutil.rmtree(group[1]), shutil.rmtree(group[3])  # n = 2: too few to judge
    scale_rates(group[4], 5.0)
    assert update_catalogue(root, out, rescan=True).counts["outliers"] == 0


def test_a_run_above_its_roofline_is_never_catalogued(runs, tmp_path):
    root = tmp_path / "subs"
    fast, fine = runs.write(root, 1), runs.write(root, 2)
    for run, utilisation in ((fast, 2.0), (fine, 1.3)):  # the bound is review's: 1.5 (profiles/review.yaml)
        metadata = json.loads((run / "metadata.json").read_text())
        metadata["memory_bandwidth_utilisation"] = [{"cell_id": metadata["cells"][0]["cell_id"], "phase": "5q",
                                                     "utilisation": utilisation, "bandwidth_gbps": 50.0,
                                                     "bandwidth_kind": "measured (host read test)"}]
        (run / "metadata.json").write_text(json.dumps(metadata))
    result = update_catalogue(root, tmp_path / "catalogue.json")
    assert result.counts["runs"] == 1 and result.invalid[0]["path"].endswith(fast.name)
    assert "faster than the memory bandwidth allows" in result.invalid[0]["reason"] and "200% of the roofline" in result.invalid[0]["reason"]
    assert {p.rsplit("/", 1)[-1] for p in marked(result.export_dir)} == {fine.name}


# ---------------------------------------------------------------------------------------
# Hostile folders and hostile use (#25 §3)


@pytest.fixture
def limits(monkeypatch):
    """Replace some of profiles/catalogue.yaml's settings for one test."""
    from orchestrator.publish import catalogue as package
    from orchestrator.publish.catalogue import export, index, runs as run_module

    settings_module = importlib.import_module("orchestrator.publish.catalogue.settings")  # the package exports its function

    def change(**values):
        changed = dataclasses.replace(settings_module.settings(), **values)
        for module in (package, export, index, run_module):
            monkeypatch.setattr(module, "settings", lambda: changed)
    return change


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def ours(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_outputs_are_never_written_through_a_link_or_onto_a_device(runs, tmp_path, capsys):
    from orchestrator.core.atomic import check_replaceable as refuse_unsafe_target

    root = tmp_path / "subs"
    runs.write(root, 1)
    with pytest.raises(BadInput, match="a device, FIFO or socket"):
        refuse_unsafe_target(Path("/dev/null"))  # as root, a rename onto it would replace the device
    os.mkfifo(tmp_path / "fifo.json")
    code, _, err = cli(["catalogue", "--submissions-dir", str(root), "--out", str(tmp_path / "fifo.json")], capsys)
    assert code == 2 and err.count("\n") == 1 and "a device, FIFO or socket" in err
    (tmp_path / "victim").write_text("untouched")
    (tmp_path / "linked.json").symlink_to(tmp_path / "victim")
    code, _, err = cli(["catalogue", "--submissions-dir", str(root), "--out", str(tmp_path / "linked.json")], capsys)
    assert code == 2 and "symbolic link" in err and (tmp_path / "victim").read_text() == "untouched"
    page = tmp_path / "page"
    page.mkdir()
    (page / "index.html").symlink_to(tmp_path / "victim")
    code, _, err = cli(["catalogue", "--submissions-dir", str(root), "--out", str(tmp_path / "c.json"),
                        "--html", str(page)], capsys)
    assert code == 2 and "index.html: is a symbolic link" in err and (tmp_path / "victim").read_text() == "untouched"


@pytest.mark.parametrize("file", ["manifest.json", "metadata.json", "hardware.json", "run.jsonl"])
def test_a_document_nested_3000_deep_makes_one_run_invalid_not_the_catalogue(runs, tmp_path, file):
    root = tmp_path / "subs"
    hostile = runs.write(root, 1)
    runs.write(root, 2)
    deep = '{"type": "quality", "x": ' + "[" * 3000 + "]" * 3000 + "}\n"
    if file == "run.jsonl":
        with open(hostile / file, "a") as fh:
            fh.write(deep)
    else:
        (hostile / file).write_text("[" * 3000 + "]" * 3000)
    result = update_catalogue(root, tmp_path / "catalogue.json")
    assert result.counts["runs"] == 1 and result.invalid[0]["path"].endswith(hostile.name)
    assert "nested too deeply" in result.invalid[0]["reason"] or "not valid" in result.invalid[0]["reason"]
    assert build_catalogue(root)["counts"]["invalid"] == 1


def test_the_ledger_is_streamed_and_bounded(runs, tmp_path, limits):
    limits(ledger_rows_per_run=5, ledger_line_bytes=2048)
    root = tmp_path / "subs"
    many, long, calls = runs.write(root, 1, axes=False), runs.write(root, 2, axes=False), runs.write(root, 3, axes=False)
    with open(many / "run.jsonl", "a") as fh:
        fh.writelines(json.dumps(quality_record("c", s, True)) + "\n" for s in range(6))
    with open(long / "run.jsonl", "a") as fh:
        fh.write(json.dumps(quality_record("c", 1, True) | {"failure_mode": "x" * 5000}) + "\n")
    with open(calls / "run.jsonl", "a") as fh:  # long lines that are not quality or agent lines are only hashed
        fh.writelines(json.dumps({"type": "call", "text": "y" * 5000}) + "\n" for _ in range(50))
    result = update_catalogue(root, tmp_path / "catalogue.json")
    reasons = {bad["path"].rsplit("/", 1)[-1]: bad["reason"] for bad in result.invalid}
    assert "more than 5 quality and agent lines" in reasons[many.name]
    assert "longer than 2048 bytes" in reasons[long.name] and calls.name not in reasons


def test_two_builds_at_once_wait_for_each_other_and_a_locked_index_is_not_a_damaged_one(runs, tmp_path, limits):
    import sqlite3

    from orchestrator.publish.catalogue.index import exclusive

    root, out = tmp_path / "subs", tmp_path / "catalogue.json"
    runs.write_many(root, 3)
    assert update_catalogue(root, out).reread == 3
    limits(lock_wait_s=0.3)
    with exclusive(tmp_path / "catalogue.index.sqlite.lock", 0):  # another build holds it
        with pytest.raises(BadInput, match="another catalogue build has held this index"):
            update_catalogue(root, out)
    other = sqlite3.connect(tmp_path / "catalogue.index.sqlite")
    other.execute("BEGIN EXCLUSIVE")  # another program (not a weeyuga build) holds SQLite's own lock
    try:
        with pytest.raises(BadInput, match="locked by another program"):
            update_catalogue(root, out)
    finally:
        other.rollback()
        other.close()
    again = update_catalogue(root, out)  # the index survived: nothing to read
    assert (again.reread, again.unchanged) == (0, 3)


def test_a_full_disk_is_one_line_and_leaves_nothing_behind(runs, tmp_path, capsys, monkeypatch):
    from orchestrator.publish.catalogue import export

    root, out = tmp_path / "subs", tmp_path / "catalogue.json"
    runs.write_many(root, 3)
    update_catalogue(root, out)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    exported = ours(tmp_path / "catalogue.parquet")
    runs.write_many(root, 2, start=10)
    real_replace = os.replace

    def full(source, target):  # DuckDB wrote the file beside its name; renaming it into place finds the disk full
        if str(target).endswith(".parquet"):
            assert Path(source).is_file()
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(source, target)
    monkeypatch.setattr(export.os, "replace", full)
    code, out_text, err = cli(["catalogue", "--submissions-dir", str(root), "--out", str(out)], capsys)
    assert code == 1 and err.count("\n") == 1 and "the disk is full" in err and not out_text
    assert ours(tmp_path / "catalogue.parquet") == exported  # no staging file, no half-written export file
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before  # index and summary as they were
    monkeypatch.setattr(export.os, "replace", real_replace)
    assert update_catalogue(root, out).reread == 2


def test_sigterm_mid_build_is_one_line_and_leaves_no_staging_file(runs, tmp_path, capsys, monkeypatch):
    from orchestrator.publish.catalogue import index

    root, out = tmp_path / "subs", tmp_path / "catalogue.json"
    runs.write_many(root, 6)
    real_read, seen = index.read_stored, []

    def killed_midway(job):
        seen.append(job)
        if len(seen) == 4:  # three runs staged: the signal arrives mid-build
            os.kill(os.getpid(), signal.SIGTERM)
        return real_read(job)
    monkeypatch.setattr(index, "read_stored", killed_midway)
    handler = signal.getsignal(signal.SIGTERM)
    try:
        code, _, err = cli(["catalogue", "--submissions-dir", str(root), "--out", str(out)], capsys)
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert code == 130 and err == "weeyuga: interrupted\n"
    assert ours(tmp_path / "catalogue.parquet") == [] and not out.exists()
    monkeypatch.setattr(index, "read_stored", real_read)
    assert update_catalogue(root, out).reread == 6


@pytest.mark.parametrize("sql, says", [
    ("", "no SQL statement"), ("  -- only a comment", "no SQL statement"), ("/* nothing */ ;", "no SQL statement"),
    ("COPY catalogue TO '/tmp/weeyuga-stolen.csv'", "disabled by configuration"),
    ("SELECT * FROM read_parquet('{export}/*.parquet')", "disabled by configuration"),
    ("ATTACH '/tmp/weeyuga-attached.db'", "disabled by configuration"),
    ("SET enable_external_access = true", "locked"),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r", "stopped after 1 s"),
])
def test_a_query_is_one_line_bounded_in_time_and_memory_and_reads_no_files(runs, tmp_path, capsys, limits, sql, says):
    limits(query_timeout_s=1)
    runs.write_many(tmp_path / "subs", 2)
    base = ["catalogue", "--submissions-dir", str(tmp_path / "subs"), "--out", str(tmp_path / "catalogue.json")]
    code, out, err = cli(base + ["--query", sql.format(export=tmp_path / "catalogue.parquet")], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("weeyuga: error: --query: ") and says in err, err
    assert not Path("/tmp/weeyuga-stolen.csv").exists() and not Path("/tmp/weeyuga-attached.db").exists()
    assert cli(base + ["--query", "SELECT current_setting('memory_limit') AS m"], capsys)[1].splitlines()[2].strip() \
        == "1.0 GiB"  # profiles/catalogue.yaml query.memory_limit_mb


def test_the_export_is_plain_parquet_that_pyarrow_reads(runs, tmp_path):
    import pyarrow.dataset

    runs.write_many(tmp_path / "subs", 4)
    result = update_catalogue(tmp_path / "subs", tmp_path / "catalogue.json")
    table = pyarrow.dataset.dataset(str(result.export_dir), format="parquet").to_table()
    assert table.column_names == [name for name, _, _ in COLUMNS]
    assert table.num_rows == query(result.export_dir, "SELECT count(*) FROM catalogue").rows[0][0] == 18


def test_the_export_appends_a_file_per_build_and_merges_small_ones(runs, tmp_path, limits):
    limits(batch_runs=3, compact_below=3, compact_after=2)
    root, out = tmp_path / "subs", tmp_path / "catalogue.json"
    runs.write_many(root, 7)
    first = update_catalogue(root, out)
    files = lambda: sorted(p.name for p in (tmp_path / "catalogue.parquet").iterdir())  # noqa: E731
    assert first.files_written == 3 and files() == ["batch-000001.parquet", "batch-000002.parquet", "batch-000003.parquet"]
    runs.write(root, 100)  # a small file each: the last batch (1 run) and this one make two, not yet too many
    assert update_catalogue(root, out).files_written == 1 and len(files()) == 4
    runs.write(root, 101)  # a third small file: the three are merged into one
    merged = update_catalogue(root, out)
    assert merged.files_written == 2 and files() == ["batch-000001.parquet", "batch-000002.parquet", "batch-000006.parquet"]
    assert update_catalogue(root, out).files_written == 0
    assert_equals_full_rebuild(root, tmp_path, out)
    assert not list((tmp_path / "catalogue.parquet").glob(".*"))  # no staging file left
