"""Contention (issue #16 §3): other processes' share of the CPU from an injected process table,
others on NVML GPUs, per-call fields, contended phases in the report, the --for-publication
refusal, the live-run registry, and compare's and the catalogue's marks."""

import json
import os

import pytest

from orchestrator.measure import contention, liveruns
from orchestrator.publish.compare import compare, render_markdown
from orchestrator.measure.contention import Reading, contended_phases, others_share, read, window
from orchestrator.core.errors import WeeyugaError
from orchestrator.core.ledger import read_records
from orchestrator.core.canonical import ContentionMarks
from orchestrator.flows.pipeline import byo_targets
from orchestrator.publish.manifest import RunContext, record
from orchestrator.publish.report import report
from orchestrator.measure.resources import ResourceSampler
from orchestrator.measure.run import RunOptions, run_suites
from tests.fakes.nvml import FakeBoard, FakeNVML
from tests.fakes.processes import FakeProcess, FakeProcessTable
from tests.fakes.openai_server import start_in_thread

GB = 2**30
MARKS = ContentionMarks(cpu_share=0.25, gpu_util_percent=20)


@pytest.fixture
def table(monkeypatch):
    """This process (weeyuga) with a runtime child, on a 2-CPU machine nobody else uses yet."""
    fake = FakeProcessTable(cpus=2)
    fake.add(FakeProcess(os.getpid()))
    fake.add(FakeProcess(4001), parent=os.getpid())
    monkeypatch.setattr(contention, "process_table", fake)
    return fake


@pytest.fixture(scope="module")
def fake_url():
    srv, _, url = start_in_thread()
    yield url
    srv.shutdown()


def test_others_share_is_the_machine_minus_weeyuga_and_its_runtime(table):
    start = read(10.0, os.getpid(), 4001)
    table.spend(1.5, 4001)  # the runtime
    table.spend(0.5, os.getpid())  # weeyuga itself
    table.spend(1.0)  # someone else
    end = read(12.0, os.getpid(), 4001)
    assert others_share(start, end) == 0.25  # 1 CPU-second of 2 s x 2 CPUs


def test_a_runtime_that_exits_stays_ours_through_the_reaped_children_counters(table):
    start = read(0.0, os.getpid(), 4001)
    table.spend(2.0, 4001)
    runtime = table.processes.pop(4001)  # restarted for a cold call: gone, and reaped by weeyuga
    table.processes[os.getpid()].kids.clear()
    table.processes[os.getpid()].children_user += runtime.user
    assert others_share(start, read(1.0, os.getpid(), None)) == 0.0


def test_a_busy_machine_clamps_at_one_and_missing_counters_say_nothing(table):
    start = read(0.0, os.getpid(), 4001)
    table.spend(50.0)
    assert others_share(start, read(1.0, os.getpid(), 4001)) == 1.0
    assert others_share(Reading(0.0, None, None, 2), Reading(1.0, 5.0, 0.0, 2)) is None


def test_a_call_window_takes_the_readings_around_it():
    readings = [Reading(t, busy, 0.0, 1, gpu_util, gpu_util) for t, busy, gpu_util in
                [(0.0, 0.0, None), (1.0, 0.0, 10.0), (2.0, 0.5, 40.0), (3.0, 1.5, None), (4.0, 1.5, 90.0)]]
    assert window(readings, 1.2, 2.9) == {"contention_cpu": 0.75, "contention_gpu_util_percent": 40.0,
                                          "contention_gpu_mem_mb": 40.0}
    assert window(readings[:1], 0.0, 1.0)["contention_cpu"] is None


def test_others_on_the_gpu_leave_our_processes_out(table):
    nvml = FakeNVML([FakeBoard("RTX", 16 * GB, 8 * GB, processes=[(os.getpid(), 3 * GB, 70), (4001, GB, 20),
                                                                   (9999, 2 * GB, 35)])])
    reading = read(0.0, os.getpid(), 4001, nvml, [nvml.nvmlDeviceGetHandleByIndex(0)])
    assert (reading.others_gpu_mem_mb, reading.others_gpu_util_percent) == (2048.0, 35.0)
    unsupported = FakeNVML([FakeBoard("old", 8 * GB, 4 * GB)])
    reading = read(0.0, os.getpid(), 4001, unsupported, [unsupported.nvmlDeviceGetHandleByIndex(0)])
    assert (reading.others_gpu_mem_mb, reading.others_gpu_util_percent) == (None, None)  # unknown, not zero


def test_the_sampler_reads_contention_with_each_sample(table, tmp_path):
    with ResourceSampler(lambda: 4001, None, tmp_path / "samples.jsonl", interval_s=3600, contention=True) as sampler:
        table.spend(1e6)  # whatever the wall time between the readings, others used all of it
        sampler.sample_once()
    assert sampler.contention_during(sampler.readings[0].t, sampler.readings[-1].t)["contention_cpu"] == 1.0
    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert rows[0]["others_cpu_share"] is None and rows[-1]["others_cpu_share"] == 1.0


def call(phase, share, ms=100.0, gpu=None, cell="n:llamacpp:m"):
    return {"cell_id": cell, "phase": phase, "contention_cpu": share, "total_duration_ms": ms,
            "contention_gpu_util_percent": gpu}


def test_a_phase_is_contended_by_its_time_weighted_share_or_others_gpu_use():
    calls = [call("hello", 0.9, ms=100), call("hello", 0.1, ms=900),  # 0.18: quiet enough
             call("5q", 0.3), call("5q", 0.3),
             call("20q", 0.0, gpu=50), call("20q", 0.0, gpu=10),
             {"cell_id": "n:llamacpp:m", "phase": "edge_suite", "total_duration_ms": 5.0}]  # a ledger from before
    flagged = contended_phases(calls, MARKS)
    assert [(f["phase"], f["cpu_share"], f["gpu_util_percent"]) for f in flagged] == [("20q", 0.0, 30.0), ("5q", 0.3, None)]
    assert "30% busy" in flagged[0]["reason"] and "30% of the CPU" in flagged[1]["reason"]


class BusyTable(FakeProcessTable):
    """A machine where someone else is always busy: every reading finds far more CPU time used."""

    def cpu_times(self):
        self.busy_s += 1e6
        return super().cpu_times()


def test_a_contended_run_is_flagged_in_the_report_and_refused_for_publication(fake_url, tmp_path, monkeypatch):
    monkeypatch.setattr(contention, "process_table", BusyTable())
    options = RunOptions(phases=["5q"], runs=1, for_publication=True, allow_dirty=True)
    result = run_suites(byo_targets(fake_url, ["fake"], "llamacpp", "node:llamacpp", "node"), options, tmp_path / "run", "run-1")
    assert result.status == "failed" and result.failure.startswith("--for-publication refuses contended phases: ")
    assert "node:llamacpp:fake 5q: other processes used 100% of the CPU" in result.failure
    records = list(read_records(tmp_path / "run" / "run.jsonl"))
    assert {r["contention_cpu"] for r in records if r["type"] == "call"} == {1.0}
    assert records[-1]["status"] == "failed" and "contended" in records[-1]["status_reason"]
    record(tmp_path / "run", RunContext(), result.status)
    done = report(tmp_path / "run", plots=False)
    assert [f["phase"] for f in done.metadata["contended_phases"]] == ["5q"]
    assert "- Contended (other processes were busy" in done.markdown


def test_a_quiet_run_is_not_flagged(fake_url, tmp_path):
    options = RunOptions(phases=["5q"], runs=1, for_publication=True, allow_dirty=True)
    result = run_suites(byo_targets(fake_url, ["fake"], "llamacpp", "node:llamacpp", "node"), options, tmp_path, "run-1")
    assert result.status == "complete"
    assert {r["contention_cpu"] for r in read_records(tmp_path / "run.jsonl") if r["type"] == "call"} == {0.0}


def live_entry(pid, started, run_id="other-run"):
    liveruns.runs_dir().mkdir(parents=True, exist_ok=True)
    (liveruns.runs_dir() / f"{pid}.json").write_text(json.dumps({"pid": pid, "started": started, "run_id": run_id}))


def test_a_second_live_run_is_refused_without_force_load(fake_url, table, tmp_path):
    table.add(FakeProcess(5151, create_time_s=777.0))
    live_entry(5151, 777.0)
    live_entry(6262, 100.0)  # that process is gone: stale
    table.add(FakeProcess(7373, create_time_s=999.0))
    live_entry(7373, 555.0)  # the pid now belongs to a later process: stale
    targets = byo_targets(fake_url, ["fake"], "llamacpp", "node:llamacpp", "node")
    with pytest.raises(WeeyugaError, match=r"another weeyuga run is measuring on this machine \(pid 5151 \(run other-run\)\).*--force-load"):
        run_suites(targets, RunOptions(phases=["5q"], runs=1, smoke=True), tmp_path / "a", "run-a")
    assert sorted(p.name for p in liveruns.runs_dir().iterdir()) == ["5151.json"]
    run_suites(targets, RunOptions(phases=["5q"], runs=1, smoke=True, force_load=True), tmp_path / "b", "run-b")
    meta = next(read_records(tmp_path / "b" / "run.jsonl"))
    assert meta["gates"]["other_live_runs"] == ["other-run"]
    assert sorted(p.name for p in liveruns.runs_dir().iterdir()) == ["5151.json"]  # ours is gone with the run


def test_a_run_registers_itself_while_it_runs(table, tmp_path):
    entry = liveruns.register("run-x")
    try:
        assert json.loads(entry.read_text()) == {"pid": os.getpid(), "started": 1000.0, "run_id": "run-x"}
        assert liveruns.live_runs() == []  # our own entry is not "another run"
    finally:
        liveruns.unregister(entry)
    assert not entry.exists()


def metadata(run_id, contended=()):
    rows = [{"cell_id": "n:llamacpp:m", "phase": phase, "success_rate": 1.0, "warm_first_delta_ms_p50": 100.0,
             "warm_total_duration_ms_p50": 1000.0, "warm_tokens_per_sec_mean": 40.0} for phase in ("hello", "5q")]
    return {"run_id": run_id, "cells": rows,
            "contended_phases": [{"cell_id": "n:llamacpp:m", "phase": p, "cpu_share": 0.6, "gpu_util_percent": None,
                                  "reason": "other processes used 60% of the CPU (mark 25%)"} for p in contended]}


def test_compare_raises_a_red_flag_on_a_contended_phase_in_either_run():
    result = compare([metadata("base", contended=["hello"])], metadata("cand", contended=["5q"]))
    flags = {c.phase: c.contended for c in result.cells}
    assert flags == {"5q": "candidate: other processes used 60% of the CPU (mark 25%)",
                     "hello": "baseline base: other processes used 60% of the CPU (mark 25%)"}
    assert result.red_flags == 2 and result.regressions == 0
    assert "| n:llamacpp:m | 5q | contention | | candidate: other processes used 60%" in render_markdown(result)
    assert compare([metadata("base")], metadata("cand")).red_flags == 0


def test_the_catalogue_marks_contended_rows_and_can_leave_them_out(tmp_path):
    from orchestrator.publish.catalogue import update_catalogue
    from orchestrator.publish.catalogue.export import query
    from tests.fakes.catalogue import SyntheticRuns

    runs = SyntheticRuns()
    root = tmp_path / "subs"
    quiet, busy = runs.write(root, 1, axes=True), runs.write(root, 2, axes=False)
    metadata = json.loads((busy / "metadata.json").read_text())
    cell_id = metadata["cells"][0]["cell_id"]
    metadata["contended_phases"] = [{"cell_id": cell_id, "phase": "5q", "cpu_share": 0.6, "gpu_util_percent": None,
                                     "reason": "other processes used 60% of the CPU (mark 25%)"}]
    (busy / "metadata.json").write_text(json.dumps(metadata))
    result = update_catalogue(root, tmp_path / "catalogue.json")
    from orchestrator.publish.catalogue import build_catalogue

    entries = {e["path"].split("/")[-1]: e for e in build_catalogue(root)["runs"]}  # catalogue.json is a bounded summary
    assert entries[busy.name]["contended_phases"] == [f"{cell_id} 5q"] and entries[quiet.name]["contended_phases"] == []
    marked = query(result.export_dir, "SELECT run_path, phase FROM catalogue WHERE contended").rows
    assert [(path.split("/")[-1], phase) for path, phase in marked] == [(busy.name, "5q")]
    total = query(result.export_dir, "SELECT count(*) FROM catalogue").rows[0][0]
    assert query(result.export_dir, "SELECT count(*) FROM catalogue", exclude_contended=True).rows == [(total - 1,)]
