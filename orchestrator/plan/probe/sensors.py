"""Thermal sensors, read where the OS exposes them (issue #28 §4): CPU frequency per core, temperatures
and the kernel's throttle counters, and per NVIDIA GPU its SM clock, temperature and clock-throttle
reasons (NVML). Every source is optional: a reading holds None for what this machine does not tell.

Linux: psutil (cpu_freq per core from sysfs cpufreq or /proc/cpuinfo; sensors_temperatures from
hwmon), /sys/class/thermal/thermal_zone*/temp, /sys/devices/system/cpu/cpu*/thermal_throttle/
*_throttle_count and cpufreq/cpuinfo_max_freq. macOS: `pmset -g therm`'s CPU_Speed_Limit (psutil gives
no temperatures there). Sources are injected (`CpuSources`), so tests replay recorded readings.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import psutil

from orchestrator.core.procs import run_captured

# NVML's clock-throttle reason bits (nvml.h nvmlClocksThrottleReason*), by the names canonical.yaml uses.
NVML_THROTTLE_REASONS = {0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
                         0x10: "sync_boost", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown",
                         0x80: "hw_power_brake_slowdown", 0x100: "display_clock_setting"}
NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1


@dataclass(frozen=True)
class Temperature:
    label: str
    celsius: float
    high: float | None = None  # the sensor's own warning mark, where it has one
    critical: float | None = None


@dataclass(frozen=True)
class CpuThermal:
    freq_mhz: tuple[float, ...] | None  # per core, now
    max_freq_mhz: tuple[float, ...] | None  # per core, the hardware's maximum (None where not exposed)
    temperatures: tuple[Temperature, ...] = ()
    throttle_counts: int | None = None  # the kernel's core + package throttle events so far, summed
    speed_limit_percent: float | None = None  # macOS: the CPU speed limit the OS imposes (100 = none)


@dataclass(frozen=True)
class GpuThermal:
    index: int
    temperature_c: float | None
    sm_clock_mhz: float | None
    reasons: tuple[str, ...] | None  # NVML's active clock-throttle reasons; None: not supported


@dataclass(frozen=True)
class CpuSources:
    """Where CPU readings come from; tests replace any of them."""

    cpu_freq: Callable[[], Any] = lambda: psutil.cpu_freq(percpu=True)
    temperatures: Callable[[], dict[str, Any]] = lambda: getattr(psutil, "sensors_temperatures", dict)()
    sysfs: Path = Path("/sys")
    platform: str = sys.platform
    command: Callable[[list[str]], str | None] = field(default=lambda argv: _output(argv))


def _output(argv: list[str]) -> str | None:
    try:
        done = run_captured(argv, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _read_number(path: Path) -> float | None:
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return None


def read_cpu(sources: CpuSources | None = None) -> CpuThermal:
    sources = sources or CpuSources()
    try:
        freqs = sources.cpu_freq() or []
    except (OSError, RuntimeError, NotImplementedError, AttributeError):
        freqs = []
    freq = tuple(round(f.current, 1) for f in freqs) or None
    cpus = sources.sysfs / "devices/system/cpu"
    limits = [_read_number(cpus / f"cpu{i}/cpufreq/cpuinfo_max_freq") for i in range(len(freq or ()))]
    listed = [round(f.max, 1) if f.max else None for f in freqs]
    maxima = tuple(m / 1000 if m else listed[i] for i, m in enumerate(limits)) if freq else None
    maxima = maxima if maxima and all(maxima) else None
    temperatures = _temperatures(sources)
    counts = [_read_number(p) for p in sorted(cpus.glob("cpu*/thermal_throttle/*_throttle_count"))]
    throttle_counts = int(sum(c for c in counts if c is not None)) if counts else None
    limit = None
    if sources.platform == "darwin":
        text = sources.command(["pmset", "-g", "therm"]) or ""
        found = re.search(r"CPU_Speed_Limit\s*=\s*(\d+)", text)
        limit = float(found.group(1)) if found else None
    return CpuThermal(freq, maxima, temperatures, throttle_counts, limit)


def _temperatures(sources: CpuSources) -> tuple[Temperature, ...]:
    out = []
    try:
        found = sources.temperatures() or {}
    except (OSError, RuntimeError, NotImplementedError):
        found = {}
    for chip, entries in found.items():
        for n, entry in enumerate(entries):
            if entry.current is not None and entry.current > 0:
                out.append(Temperature(f"{chip}/{entry.label or n}", round(entry.current, 1),
                                       entry.high or None, entry.critical or None))
    if not out:  # no hwmon: the ACPI thermal zones
        for zone in sorted((sources.sysfs / "class/thermal").glob("thermal_zone*")):
            milli = _read_number(zone / "temp")
            if milli and milli > 0:
                kind = (zone / "type").read_text().strip() if (zone / "type").exists() else zone.name
                out.append(Temperature(f"{zone.name}/{kind}", round(milli / 1000, 1)))
    return tuple(out)


def _nvml_call(method: Callable[..., Any], *args: Any) -> Any:
    try:
        return method(*args)
    except Exception:  # NOT_SUPPORTED on this board, or a transient NVML error: that reading is None
        return None


def read_gpus(nvml: Any, handles: list[Any]) -> tuple[GpuThermal, ...]:
    """One reading per board. Newer bindings name the reasons call `...ClocksEventReasons`."""
    out = []
    for index, handle in enumerate(handles):
        reasons_call = (getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
                        or getattr(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None))
        mask = _nvml_call(reasons_call, handle) if reasons_call else None
        reasons = None if mask is None else tuple(name for bit, name in NVML_THROTTLE_REASONS.items() if mask & bit)
        temperature = _nvml_call(nvml.nvmlDeviceGetTemperature, handle, NVML_TEMPERATURE_GPU) if hasattr(nvml, "nvmlDeviceGetTemperature") else None
        clock = _nvml_call(nvml.nvmlDeviceGetClockInfo, handle, NVML_CLOCK_SM) if hasattr(nvml, "nvmlDeviceGetClockInfo") else None
        out.append(GpuThermal(index, None if temperature is None else float(temperature),
                              None if clock is None else float(clock), reasons))
    return tuple(out)


def exposed(cpu: CpuThermal, gpus: tuple[GpuThermal, ...]) -> list[str]:
    """What this machine's readings hold, in words (run.md and the report's `thermal.sensors`)."""
    out = []
    if cpu.freq_mhz:
        out.append("CPU frequency per core" + (" with its maximum" if cpu.max_freq_mhz else " (no maximum exposed)"))
    if cpu.temperatures:
        out.append("CPU temperatures (" + ", ".join(t.label for t in cpu.temperatures[:4]) + ")")
    if cpu.throttle_counts is not None:
        out.append("kernel thermal-throttle counters")
    if cpu.speed_limit_percent is not None:
        out.append("macOS CPU speed limit")
    for gpu in gpus:
        parts = [name for name, value in (("temperature", gpu.temperature_c), ("SM clock", gpu.sm_clock_mhz),
                                          ("throttle reasons", gpu.reasons)) if value is not None]
        if parts:
            out.append(f"GPU {gpu.index} {', '.join(parts)} (NVML)")
    return out
