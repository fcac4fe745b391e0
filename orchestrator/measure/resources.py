"""Resource samples during a run: the runtime's RSS and CPU, and NVML VRAM and utilisation.

A background thread samples every ~250 ms into a series (written to samples.jsonl); the
runner asks for the peaks inside each call's time window. With `contention=True` every sample
also reads how much of the machine other processes used (contention.py), and the runner asks
for that over each call's window too.
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

from orchestrator.measure import contention as others
from orchestrator.core.errors import WeeyugaError
from orchestrator.core.ledger import Ledger

SAMPLE_INTERVAL_S = 0.25
MB = 2**20


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
                 contention: bool = False) -> None:
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

    def sample_once(self) -> Sample:
        pid = self._pid()  # once a sample: a bring-your-own runtime's is looked up among the host's sockets
        rss, cpu = self._process_figures(pid)
        gpu_mem, gpu_util = self._gpu_figures()
        t = time.monotonic()
        reading = self._reading(t, pid) if self.contention else None  # outside the lock: it reads the process table
        with self._lock:
            if reading is None:
                sample = Sample(t, rss, cpu, gpu_mem, gpu_util)
            else:
                share = others.others_share(self.readings[-1], reading) if self.readings else None
                sample = Sample(t, rss, cpu, gpu_mem, gpu_util, share, reading.others_gpu_mem_mb,
                                reading.others_gpu_util_percent)
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

    def peaks(self, t0: float, t1: float) -> dict[str, float | None]:
        """Maxima over samples taken in [t0, t1]; a window shorter than the interval takes the nearest sample."""
        with self._lock:
            lo, hi = bisect.bisect_left(self._times, t0), bisect.bisect_right(self._times, t1)
            window = self.samples[lo:hi]
            if not window and self.samples:
                neighbours = self.samples[max(0, hi - 1):hi + 1]  # the samples either side of t1
                window = [min(neighbours, key=lambda s: abs(s.t - t1))]

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
