"""The endurance phase and thermal evidence (#28 §4): the sensors read from injected sources (a sysfs
tree, psutil-shaped readings, macOS pmset text) and an NVML recording replayed by recorded_nvml.py; the
throttling judgement; calls tagged `throttled`; the phase's buckets, drift, report section, Caveats line
and catalogue column."""

import json
from types import SimpleNamespace

import pytest

from orchestrator.core import datafiles
from orchestrator.core.canonical import thermal_marks
from orchestrator.core.ledger import read_records
from orchestrator.core.paths import REPO_ROOT
from orchestrator.flows.pipeline import byo_targets
from orchestrator.measure import resources
from orchestrator.measure.phases.endurance import EndurancePhase
from orchestrator.measure.phases.load import load_suite
from orchestrator.measure.resources import ResourceSampler, throttle_tags
from orchestrator.measure.run import RunOptions, run_suites
from orchestrator.plan.probe.recorded_nvml import RecordedNVML
from orchestrator.plan.probe.sensors import CpuSources, CpuThermal, GpuThermal, Temperature, exposed, read_cpu, read_gpus
from orchestrator.publish.catalogue.rows import COLUMNS, run_rows
from orchestrator.publish.report import report
from orchestrator.publish.report.endurance import drift
from tests.fakes.openai_server import start_in_thread
from tests.fakes.sensors import ReplayedCpu

NVML_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "nvml_thermal.json"
MARKS = thermal_marks()
HEATING = [{"freq_mhz": [3500.0, 3400.0], "temp_c": 60.0, "throttle_count": 0},
           {"freq_mhz": [3500.0, 3450.0], "temp_c": 75.0, "throttle_count": 0},
           {"freq_mhz": [2100.0, 2000.0], "temp_c": 92.0, "throttle_count": 3},
           {"freq_mhz": [2000.0, 1900.0], "temp_c": 93.0, "throttle_count": 7}]


def cpu(freq=(3000.0,), maxima=(3600.0,), temps=(), counts=None, limit=None):
    return CpuThermal(tuple(freq) if freq else None, tuple(maxima) if maxima else None, tuple(temps), counts, limit)


def test_a_cpu_is_throttled_by_its_counter_its_high_mark_or_a_low_clock_while_busy():
    hot = Temperature("coretemp/Package id 0", 95.0, high=90.0)
    assert throttle_tags(cpu(counts=3), cpu(counts=5), (), 20.0, MARKS) == ("cpu:throttle_counter",)
    assert throttle_tags(None, cpu(counts=5), (), 20.0, MARKS) == ()  # a counter needs a reading before it
    assert throttle_tags(None, cpu(temps=[hot]), (), None, MARKS) == ("cpu:temperature_high:coretemp/Package id 0",)
    assert throttle_tags(None, cpu(freq=[1800.0, 2000.0]), (), 180.0, MARKS) == ("cpu:frequency_low",)
    assert throttle_tags(None, cpu(freq=[1800.0, 2000.0]), (), 5.0, MARKS) == ()  # idle cores clock down: not throttling
    assert throttle_tags(None, cpu(freq=[3000.0, 3500.0]), (), 180.0, MARKS) == ()
    assert throttle_tags(None, cpu(maxima=None, limit=80.0), (), 180.0, MARKS) == ("cpu:speed_limit",)


def test_nothing_that_can_tell_gives_none_not_a_clean_bill():
    # a VM's /proc/cpuinfo clock with no maximum, no temperatures, no counters (this build machine)
    assert throttle_tags(None, cpu(maxima=None), (), 180.0, MARKS) is None
    assert throttle_tags(None, cpu(freq=None, maxima=None), (GpuThermal(0, 60.0, 1500.0, None),), None, MARKS) is None


def test_gpu_reasons_count_by_the_canonical_marks():
    gpu = lambda *reasons: (GpuThermal(0, 80.0, 2000.0, reasons),)  # noqa: E731
    assert throttle_tags(None, cpu(freq=None), gpu("sw_thermal_slowdown"), None, MARKS) == ("gpu0:sw_thermal_slowdown",)
    assert throttle_tags(None, cpu(freq=None), gpu("gpu_idle", "sw_power_cap"), None, MARKS) == ()


def test_cpu_readings_from_sysfs_psutil_and_pmset(tmp_path):
    replay = ReplayedCpu(tmp_path, HEATING)
    first = read_cpu(replay.sources())
    assert first.freq_mhz == (3500.0, 3400.0) and first.max_freq_mhz == (3600.0, 3600.0) and first.throttle_counts == 0
    assert first.temperatures == (Temperature("coretemp/Package id 0", 60.0, 90.0, 100.0),)
    assert exposed(first, ()) == ["CPU frequency per core with its maximum", "CPU temperatures (coretemp/Package id 0)",
                                  "kernel thermal-throttle counters"]
    zones = tmp_path / "zones"
    (zones / "class/thermal/thermal_zone0").mkdir(parents=True)
    (zones / "class/thermal/thermal_zone0/temp").write_text("47500\n")
    (zones / "class/thermal/thermal_zone0/type").write_text("x86_pkg_temp\n")
    vm = read_cpu(CpuSources(cpu_freq=lambda: [SimpleNamespace(current=2445.4, min=0.0, max=0.0)] * 2,
                             temperatures=dict, sysfs=zones, platform="linux", command=lambda argv: None))
    assert vm.freq_mhz == (2445.4, 2445.4) and vm.max_freq_mhz is None and vm.throttle_counts is None
    assert vm.temperatures == (Temperature("thermal_zone0/x86_pkg_temp", 47.5),)
    pmset = "Note: No thermal warning level has been recorded\n CPU_Scheduler_Limit \t= 100\n CPU_Available_CPUs \t= 8\n CPU_Speed_Limit \t= 63\n"
    mac = read_cpu(CpuSources(cpu_freq=lambda: [], temperatures=dict, sysfs=tmp_path / "none", platform="darwin",
                              command=lambda argv: pmset if argv == ["pmset", "-g", "therm"] else None))
    assert mac.speed_limit_percent == 63.0 and mac.freq_mhz is None


def test_the_nvml_recording_replays_clocks_temperatures_and_reasons():
    nvml = RecordedNVML.load(NVML_FIXTURE)
    handles = [nvml.nvmlDeviceGetHandleByIndex(0)]
    readings = [read_gpus(nvml, handles)[0] for _ in range(9)]
    assert readings[0] == GpuThermal(0, 41.0, 210.0, ("gpu_idle",))
    assert [r.reasons for r in readings[3:6]] == [("sw_power_cap",), ("sw_thermal_slowdown",),
                                                  ("sw_thermal_slowdown", "hw_thermal_slowdown")]
    assert readings[8] == readings[7]  # the last reading repeats
    plain = RecordedNVML([{"name": "board", "total_bytes": 1, "free_bytes": 1}], "recorded")  # no thermal readings
    assert read_gpus(plain, [plain.boards[0]]) == (GpuThermal(0, None, None, None),)


def test_the_sampler_tags_a_call_window_with_what_the_sensors_said(tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "THERMAL_EVERY", 1)
    replay = ReplayedCpu(tmp_path, HEATING)
    nvml = RecordedNVML.load(NVML_FIXTURE)
    sampler = ResourceSampler(lambda: None, nvml, interval_s=3600, cpu_sensors=replay.sources())
    samples = [sampler.sample_once() for _ in range(6)]
    assert [s.throttling for s in samples] == [
        (), (), ("cpu:throttle_counter", "cpu:temperature_high:coretemp/Package id 0"),
        ("cpu:throttle_counter", "cpu:temperature_high:coretemp/Package id 0"),  # the GPU's power cap is not thermal
        ("cpu:temperature_high:coretemp/Package id 0", "gpu0:sw_thermal_slowdown"),  # the counter stopped rising
        ("cpu:temperature_high:coretemp/Package id 0", "gpu0:sw_thermal_slowdown", "gpu0:hw_thermal_slowdown")]
    assert samples[0].cpu_freq_mhz == (3500.0, 3400.0) and samples[5].gpu_temp_c == 87.0 and samples[5].gpu_sm_clock_mhz == 2100.0
    assert sampler.throttled_during(samples[0].t, samples[1].t) is None
    assert sampler.throttled_during(samples[1].t, samples[2].t) == ["cpu:temperature_high:coretemp/Package id 0",
                                                                     "cpu:throttle_counter"]
    assert "GPU 0 temperature, SM clock, throttle reasons (NVML)" in sampler.sensors


def test_buckets_cut_the_phase_and_the_last_is_shorter():
    suite = load_suite()
    assert EndurancePhase(suite, 2.5, 2).buckets() == [60.0, 60.0, 30.0]
    assert EndurancePhase(suite, 10.0, 2).buckets() == [60.0] * 10
    assert EndurancePhase(suite, 0.25, 2).buckets() == [15.0]
    units = EndurancePhase(suite, 2.5, 2).units(["n:e:m"], RunOptions(phases=["endurance"]))
    assert [[(k.prompt_id, k.lane) for k in u.keys] for u in units][1] == [("bucket-1", 0), ("bucket-1", 1)]
    assert EndurancePhase.from_options(RunOptions(phases=["endurance"], capacity={"max_users": 4})).users == 4
    assert EndurancePhase.from_options(RunOptions(phases=["endurance"])).minutes == 10.0


def test_drift_is_a_least_squares_slope_per_minute_and_the_last_bucket_against_the_first():
    calls = [{"cell_id": "c", "started_at_utc": f"2026-01-01T00:{m:02d}:00.00Z", "tokens_per_sec": 100.0 - 5 * m}
             for m in range(5)]
    buckets = [{"cell_id": "c", "decode_tokens_per_sec_p50": r} for r in (100.0, 90.0, 80.0)]
    assert drift(calls, buckets, "c") == {"cell_id": "c", "calls": 5, "first_bucket_tokens_per_sec": 100.0,
                                          "last_bucket_tokens_per_sec": 80.0, "change_fraction": -0.2,
                                          "slope_fraction_per_minute": -0.05}


@pytest.fixture()
def fake():
    srv, state, url = start_in_thread()
    state.chunk_delay_s = 0.01
    yield state, url
    srv.shutdown()


def test_an_endurance_run_on_a_throttling_machine_tags_calls_and_says_so(fake, tmp_path, monkeypatch):
    _, url = fake
    monkeypatch.setattr(resources, "THERMAL_EVERY", 1)
    monkeypatch.setattr(resources, "SAMPLE_INTERVAL_S", 0.25)
    replay = ReplayedCpu(tmp_path / "sys", HEATING)
    monkeypatch.setattr(resources, "host_cpu_sources", replay.sources)
    nvml = RecordedNVML.load(NVML_FIXTURE)
    targets = byo_targets(url, ["fake"], "llamacpp", "node:llamacpp", "node")
    options = RunOptions(phases=["endurance"], num_predict=16, endurance={"minutes": 0.1}, capacity={"max_users": 2})
    run_dir = tmp_path / "run"
    assert run_suites(targets, options, run_dir, "run-1", nvml=nvml).status == "complete"
    records = list(read_records(run_dir / "run.jsonl"))
    assert records[0]["options"]["capacity"] == {"max_users": 2}  # a resume keeps the users
    assert records[0]["options"]["endurance"] == {"minutes": 0.1}
    calls = [r for r in records if r["type"] == "call"]
    assert {(c["prompt_id"], c["lane"]) for c in calls} == {("bucket-0", 0), ("bucket-0", 1)} and len(calls) > 4
    tagged = [c for c in calls if c.get("throttled")]
    assert tagged and "throttled" not in calls[0]  # the first calls ran cool
    (bucket,) = [r for r in records if r["type"] == "endurance"]
    assert bucket["users"] == 2 and bucket["calls"] == len(calls) and 5.5 < bucket["seconds"] < 9
    assert "gpu0:hw_thermal_slowdown" in bucket["throttling"] and bucket["gpu_temp_c_max"] == 87.0
    assert bucket["cpu_freq_mhz_mean"] and bucket["cpu_temp_c_max"] == 93.0
    assert "kernel thermal-throttle counters" in bucket["sensors"]
    done = report(run_dir)
    datafiles.validate(done.metadata, "metadata", "metadata.json")
    thermal = done.metadata["thermal"]
    assert thermal["observed"] is True and thermal["throttled_calls"] == len(tagged)
    caveats = done.markdown.split("## Caveats")[1].split("##")[0]
    assert "- Thermal throttling observed: node:llamacpp:fake endurance: " in caveats and "gpu0:sw_thermal_slowdown" in caveats
    assert "## Endurance: sustained load and thermal evidence" in done.markdown and "endurance.png" in done.plots
    manifest = {"run_id": "run-1", "cells": [], "knobs": {}}
    rows = run_rows("h/d/run-1", manifest, done.metadata, [], "complete", None)
    assert {r["phase"]: r["thermal_throttling"] for r in rows} == {"endurance": True}
    names = [c for c, _, _ in COLUMNS]  # appended together, after the columns that came before them
    at = names.index("thermal_throttling")
    assert names[at:at + 4] == ["thermal_throttling", "capacity_users", "capacity_ttft_p95_s", "capacity_user_tokens_per_sec"]
    assert names.index("quality_checks_asked") < at


def test_a_cool_machine_with_sensors_says_no_throttling_and_an_unsensed_one_says_it_cannot_tell(fake, tmp_path, monkeypatch):
    _, url = fake
    monkeypatch.setattr(resources, "THERMAL_EVERY", 1)
    cool = ReplayedCpu(tmp_path / "sys", HEATING[:2])
    monkeypatch.setattr(resources, "host_cpu_sources", cool.sources)
    targets = byo_targets(url, ["fake"], "llamacpp", "node:llamacpp", "node")
    options = RunOptions(phases=["endurance"], num_predict=8, endurance={"minutes": 0.1}, capacity={"max_users": 1})
    run_suites(targets, options, tmp_path / "cool", "run-1")
    done = report(tmp_path / "cool")
    assert done.metadata["thermal"]["observed"] is False and "Verdict: no throttling observed." in done.markdown
    assert "Thermal throttling observed" not in done.markdown
    monkeypatch.setattr(resources, "host_cpu_sources", lambda: CpuSources(
        cpu_freq=lambda: [SimpleNamespace(current=2445.4, min=0.0, max=0.0)], temperatures=dict,
        sysfs=tmp_path / "none", platform="linux", command=lambda argv: None))
    run_suites(targets, options, tmp_path / "vm", "run-2")
    done = report(tmp_path / "vm")
    assert done.metadata["thermal"]["observed"] is None
    assert "Sensors this machine exposes: CPU frequency per core (no maximum exposed)." in done.markdown
    assert "Verdict: no sensor here can tell whether the machine throttled." in done.markdown
    assert json.loads((tmp_path / "vm" / "metadata.json").read_text())["endurance"]["buckets"][0]["throttling"] is None


def test_a_resumed_endurance_phase_skips_the_bucket_it_had_begun(fake, tmp_path):
    _, url = fake
    targets = byo_targets(url, ["fake"], "llamacpp", "node:llamacpp", "node")
    options = RunOptions(phases=["endurance"], num_predict=8, endurance={"minutes": 0.1}, capacity={"max_users": 1})
    run_suites(targets, options, tmp_path / "whole", "run-1")
    kept = (tmp_path / "whole" / "run.jsonl").read_text().splitlines()
    cut = next(i for i, line in enumerate(kept) if '"type": "call"' in line or '"type":"call"' in line) + 2
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "run.jsonl").write_text("\n".join(kept[:cut]) + "\n")
    assert run_suites(targets, options, tmp_path / "cut", "run-1", resume=True).status == "complete"
    records = list(read_records(tmp_path / "cut" / "run.jsonl"))
    assert len([r for r in records if r["type"] == "call"]) == 2 and not [r for r in records if r["type"] == "endurance"]
