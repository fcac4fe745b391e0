"""Where the probe reads facts from: files, commands, psutil, py-cpuinfo and NVML, behind `ProbeSources`."""

from __future__ import annotations

import glob as globlib
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from orchestrator.plan.probe.recorded_nvml import ENV as RECORDING_ENV, RecordedNVML
from orchestrator.core.procs import run_captured
from orchestrator.plan.probe.bandwidth import HostBandwidth, measure_host_bandwidth


def _run_command(argv: list[str], timeout: float = 5.0) -> str | None:
    """stdout of a command, or None when it is missing, fails or hangs."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = run_captured(argv, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _proc_cpuinfo() -> dict[str, Any] | None:
    """Brand and flags from /proc/cpuinfo: instant, where py-cpuinfo takes about a second."""
    text = _read_text("/proc/cpuinfo")
    if not text:
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    brand = fields.get("model name") or fields.get("Model") or fields.get("Hardware")
    flags = (fields.get("flags") or fields.get("Features") or "").split()
    return {"brand_raw": brand, "flags": flags} if brand or flags else None


def _cpu_info() -> dict[str, Any]:
    fast = _proc_cpuinfo() if platform.system() == "Linux" else None
    if fast:
        return fast
    import cpuinfo

    return cpuinfo.get_cpu_info()


def cpu_identity() -> tuple[str, list[str]]:
    """This CPU's model name and ISA flags, the fingerprint a runtime's self-test is keyed by."""
    info = _cpu_info()
    return info.get("brand_raw") or platform.processor() or "unknown", [str(f) for f in info.get("flags", [])]


def load_nvml():
    """pynvml, initialised; None without an NVIDIA GPU. A recording named by WEEYUGA_NVML_RECORDING stands in
    for it (recorded_nvml.py: rehearsals of the GPU paths, replays)."""
    recording = os.environ.get(RECORDING_ENV)
    if recording:
        return RecordedNVML.load(Path(recording))
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # no driver, no library, or no device: all mean "no NVIDIA GPU here"
        return None


@dataclass
class ProbeSources:
    """Everything the probe reads. `real()` binds the host; tests pass recorded values."""

    system: str
    release: str
    machine: str
    read_text: Callable[[str], str | None]
    run: Callable[[list[str]], str | None]
    exists: Callable[[str], bool]
    glob: Callable[[str], list[str]]
    memory: Callable[[], tuple[int, int]]
    cpu_counts: Callable[[], tuple[int | None, int]]
    cpu_info: Callable[[], dict[str, Any]]
    cpu_max_mhz: Callable[[], float | None]
    disk_free: Callable[[], int | None]
    battery: Callable[[], Any]
    nvml: Callable[[], Any]
    bandwidth: Callable[[], HostBandwidth | None] = field(default=lambda: None)  # probe/bandwidth.py

    @classmethod
    def real(cls, measure_bandwidth: bool = True) -> "ProbeSources":
        import psutil

        def memory():
            vm = psutil.virtual_memory()
            return vm.total, vm.available

        def cpu_max_mhz():
            try:
                freq = psutil.cpu_freq()
            except Exception:  # psutil raises on some VMs without cpufreq
                return None
            return (freq.max or freq.current) if freq else None

        def disk_free():
            try:
                return shutil.disk_usage(Path.home()).free
            except OSError:
                return None

        def battery():
            try:
                return psutil.sensors_battery()
            except Exception:  # no battery interface on this OS
                return None

        return cls(
            system=platform.system(),
            release=platform.release(),
            machine=platform.machine(),
            read_text=_read_text,
            run=_run_command,
            exists=os.path.exists,
            glob=globlib.glob,
            memory=memory,
            cpu_counts=lambda: (psutil.cpu_count(logical=False), psutil.cpu_count(logical=True) or 1),
            cpu_info=_cpu_info,
            cpu_max_mhz=cpu_max_mhz,
            disk_free=disk_free,
            battery=battery,
            nvml=load_nvml,
            bandwidth=(lambda: measure_host_bandwidth(psutil.cpu_count(logical=False) or 1, memory()[1]))
            if measure_bandwidth else (lambda: None),
        )


# ---------------------------------------------------------------------------------------
# Pieces
