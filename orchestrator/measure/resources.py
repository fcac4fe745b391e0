"""Resource samples during a run: the runtime's RSS and CPU, NVML VRAM and utilisation, and thermal
evidence.

A background thread samples every ~250 ms into a series (written to samples.jsonl); the
runner asks for the peaks inside each call's time window. With `contention=True` every sample
also reads how much of the machine other processes used (contention.py), and the runner asks
for that over each call's window too.

Thermal (issue #28 §4): every THERMAL_EVERY-th sample also reads the sensors this machine exposes
(plan/probe/sensors.py: CPU frequency per core, temperatures, throttle counters; NVML clocks,
temperature and throttle reasons) and judges whether it was throttling by canonical.yaml's `thermal`
marks (`throttle_tags`). A call whose window holds a throttling sample is tagged with the tags.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import psutil

from orchestrator.core.canonical import ThermalMarks, thermal_marks
from orchestrator.measure import contention as others
from orchestrator.core.errors import WeeyugaError
from orchestrator.core.ledger import Ledger
from orchestrator.plan.probe.sensors import CpuSources, CpuThermal, GpuThermal, exposed, read_cpu, read_gpus

SAMPLE_INTERVAL_S = 0.25
THERMAL_EVERY = 4  # sensors once a second: macOS asks a command, and temperatures move slowly
MB = 2**20

# Where a sampler reads the host's CPU sensors unless given its own. A module attribute so that tests pin
# it (tests/conftest.py): a hot or throttling host must not change their outcome.
host_cpu_sources: Callable[[], CpuSources] = CpuSources


@dataclass(frozen=True)
class Sample:
    t: float  # monotonic seconds
    rss_mb: float | None
    cpu_percent: float | None
    gpu_mem_used_mb: float | None
    gpu_util_percent: float | None
    others_cpu_share: float | None = None  # since the previous sample (contention.py)
    others_gpu_mem_mb: float | None = None
    others_gpu_util_percent: float | None = None
    # thermal evidence, on every THERMAL_EVERY-th sample (None on the others and where nothing is exposed)
    cpu_freq_mhz: tuple[float, ...] | None = None  # per core
    cpu_temp_c: float | None = None  # the hottest sensor
    gpu_temp_c: float | None = None  # the hottest board
    gpu_sm_clock_mhz: float | None = None  # the slowest board
    throttling: tuple[str, ...] | None = None  # throttle_tags: () when the sensors say no, None when they cannot tell


def throttle_tags(before: CpuThermal | None, cpu: CpuThermal, gpus: tuple[GpuThermal, ...],
                  runtime_cpu_percent: float | None, marks: ThermalMarks) -> tuple[str, ...] | None:
    """What says this sample was throttling, as stable tags (`cpu:frequency_low`, `gpu0:hw_slowdown`);
    () when some sensor could tell and none did; None when no sensor here can tell."""
    told, tags = False, []
    if cpu.throttle_counts is not None:
        told = True
        if before is not None and before.throttle_counts is not None and cpu.throttle_counts > before.throttle_counts:
            tags.append("cpu:throttle_counter")
    for sensor in cpu.temperatures:
        if sensor.high:
            told = True
            if sensor.celsius >= sensor.high:
                tags.append(f"cpu:temperature_high:{sensor.label}")
    if cpu.freq_mhz and cpu.max_freq_mhz and runtime_cpu_percent is not None:
        told = True  # a low clock means something only while the runtime keeps the cores busy
        fastest = max(f / m for f, m in zip(cpu.freq_mhz, cpu.max_freq_mhz))
        if runtime_cpu_percent >= marks.busy_cpu_percent and fastest < marks.cpu_freq_fraction:
            tags.append("cpu:frequency_low")
    if cpu.speed_limit_percent is not None:
        told = True
        if cpu.speed_limit_percent < 100:
            tags.append("cpu:speed_limit")
    for gpu in gpus:
        if gpu.reasons is not None:
            told = True
            tags += [f"gpu{gpu.index}:{reason}" for reason in gpu.reasons if reason in marks.gpu_reasons]
    return tuple(tags) if told else None


def listener_pid(port: int) -> int | None:
    """The process listening on 127.0.0.1:port (a bring-your-own runtime), when the OS tells us."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return conn.pid
    except (psutil.Error, OSError):
        pass
    return None


def listener_pid_source(port: int) -> Callable[[], int | None]:
    """A pid callable for a bring-your-own runtime: looked up once, again only if that process ends."""
    found: dict[str, int | None] = {}

    def pid() -> int | None:
        if not found.get("pid") or not psutil.pid_exists(found["pid"]):
            found["pid"] = listener_pid(port)
        return found["pid"]

    return pid


class ResourceSampler:
    """Start it around a cell; `peaks(t0, t1)` gives the maxima of the samples in that window."""

    def __init__(self, pid: Callable[[], int | None], nvml: Any = None, samples_path: Path | None = None,
                 interval_s: float = SAMPLE_INTERVAL_S, label: dict[str, Any] | None = None,
                 contention: bool = False, cpu_sensors: CpuSources | None = None) -> None:
        self.interval_s = interval_s
        self.nvml = nvml
        self.samples: list[Sample] = []
        self._times: list[float] = []  # sample times, kept in step with `samples` for bisecting
        self.samples_path = samples_path
        self.label = label or {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pid = pid  # asked every sample: a cold restart gives the runtime a new pid
        self._process: psutil.Process | None = None
        self.contention = contention
        self.readings: list[others.Reading] = []  # in step with `samples` when contention is on
        self.cpu_sensors, self.marks = cpu_sensors or host_cpu_sources(), thermal_marks()
        self._cpu_before: CpuThermal | None = None
        self.sensors: list[str] | None = None  # what the first thermal reading found, in words
        self._handles = []
        if nvml is not None:
            try:
                self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
            except Exception:  # NVML present but unusable: sample without it
                self._handles = []

    def _process_figures(self, pid: int | None) -> tuple[float | None, float | None]:
        if pid is None:
            return None, None
        if self._process is None or self._process.pid != pid:
            try:
                self._process = psutil.Process(pid)
            except psutil.Error:
                return None, None
        try:
            family = [self._process] + self._process.children(recursive=True)
            rss = sum(p.memory_info().rss for p in family) / MB
            cpu = sum(p.cpu_percent(None) for p in family)
            return round(rss, 1), round(cpu, 1)
        except psutil.Error:
            return None, None

    def _gpu_figures(self) -> tuple[float | None, float | None]:
        if not self._handles:
            return None, None
        try:
            used = sum(self.nvml.nvmlDeviceGetMemoryInfo(h).used for h in self._handles) / MB
            util = max(self.nvml.nvmlDeviceGetUtilizationRates(h).gpu for h in self._handles)
            return round(used, 1), float(util)
        except Exception:  # a transient NVML error loses one sample, not the run
            return None, None

    def _reading(self, t: float, runtime_pid: int | None) -> others.Reading:
        return others.read(t, os.getpid(), runtime_pid, self.nvml, self._handles)

    def _thermal(self, runtime_cpu_percent: float | None) -> dict[str, Any]:
        cpu, gpus = read_cpu(self.cpu_sensors), read_gpus(self.nvml, self._handles)
        if self.sensors is None:
            self.sensors = exposed(cpu, gpus)
        tags = throttle_tags(self._cpu_before, cpu, gpus, runtime_cpu_percent, self.marks)
        self._cpu_before = cpu
        temps = [t.celsius for t in cpu.temperatures]
        gpu_temps = [g.temperature_c for g in gpus if g.temperature_c is not None]
        clocks = [g.sm_clock_mhz for g in gpus if g.sm_clock_mhz is not None]
        return {"cpu_freq_mhz": cpu.freq_mhz, "cpu_temp_c": max(temps) if temps else None,
                "gpu_temp_c": max(gpu_temps) if gpu_temps else None, "gpu_sm_clock_mhz": min(clocks) if clocks else None,
                "throttling": tags}

    def sample_once(self) -> Sample:
        pid = self._pid()  # once a sample: a bring-your-own runtime's is looked up among the host's sockets
        rss, cpu = self._process_figures(pid)
        gpu_mem, gpu_util = self._gpu_figures()
        thermal = self._thermal(cpu) if len(self.samples) % THERMAL_EVERY == 0 else {}
        t = time.monotonic()
        reading = self._reading(t, pid) if self.contention else None  # outside the lock: it reads the process table
        with self._lock:
            if reading is None:
                sample = Sample(t, rss, cpu, gpu_mem, gpu_util, **thermal)
            else:
                share = others.others_share(self.readings[-1], reading) if self.readings else None
                sample = Sample(t, rss, cpu, gpu_mem, gpu_util, share, reading.others_gpu_mem_mb,
                                reading.others_gpu_util_percent, **thermal)
                self.readings.append(reading)
            self.samples.append(sample)
            self._times.append(sample.t)
        return sample

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample_once()

    def __enter__(self) -> "ResourceSampler":
        self.sample_once()
        self._thread = threading.Thread(target=self._loop, name="weeyuga-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        if self.samples_path:
            start = self.samples[0].t if self.samples else 0.0
            rows = [{**self.label, **asdict(sample), "t": round(sample.t - start, 3)} for sample in self.samples]
            try:
                with Ledger(self.samples_path) as out:  # whole lines or none, as durable as the ledger
                    out.write_many(rows)
            except WeeyugaError:
                if exc_type is None:
                    raise  # otherwise the error on its way (Ctrl-C, the same full disk) is the one to report

    def window(self, t0: float, t1: float) -> list[Sample]:
        """Samples taken in [t0, t1]; a window shorter than the interval takes the nearest sample."""
        with self._lock:
            lo, hi = bisect.bisect_left(self._times, t0), bisect.bisect_right(self._times, t1)
            window = self.samples[lo:hi]
            if not window and self.samples:
                neighbours = self.samples[max(0, hi - 1):hi + 1]  # the samples either side of t1
                window = [min(neighbours, key=lambda s: abs(s.t - t1))]
        return window

    def throttled_during(self, t0: float, t1: float) -> list[str] | None:
        """The throttle tags of the thermal samples in [t0, t1] (the nearest one before it for a short call);
        None when none said it was throttling."""
        with self._lock:
            lo, hi = bisect.bisect_left(self._times, t0), bisect.bisect_right(self._times, t1)
            thermal = [s for s in self.samples[max(0, lo - THERMAL_EVERY):hi] if s.throttling is not None]
        inside = [s for s in thermal if s.t >= t0] or thermal[-1:]
        tags = sorted({tag for s in inside for tag in s.throttling or ()})
        return tags or None

    def peaks(self, t0: float, t1: float) -> dict[str, float | None]:
        """Maxima over samples taken in [t0, t1]; a window shorter than the interval takes the nearest sample."""
        window = self.window(t0, t1)

        def peak(name: str) -> float | None:
            values = [getattr(s, name) for s in window if getattr(s, name) is not None]
            return max(values) if values else None

        return {"peak_rss_mb": peak("rss_mb"), "peak_cpu_percent": peak("cpu_percent"),
                "peak_gpu_mem_used_mb": peak("gpu_mem_used_mb"), "peak_gpu_util_percent": peak("gpu_util_percent")}

    def contention_during(self, t0: float, t1: float) -> dict[str, float | None]:
        """Other processes' use of the machine over [t0, t1]; a call that ended after the latest
        sample is closed by a reading taken now."""
        with self._lock:
            readings = list(self.readings)
        if self.contention and (not readings or readings[-1].t < t1):
            readings.append(self._reading(time.monotonic(), self._pid()))
        return others.window(readings, t0, t1)
