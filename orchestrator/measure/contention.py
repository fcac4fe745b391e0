"""Contention: how much of the machine other processes used while weeyuga measured (issue #16).

CPU: the machine's busy CPU seconds (all CPUs, from the OS's counters) minus those of weeyuga, its
children and its runtime, over the wall time × CPUs between two readings. Counters make a window's
share exact whatever the sampling interval; a child that exits moves its time into weeyuga's
`children_*` counters once reaped, so it stays ours. GPU (NVML): memory and utilisation of the
compute processes that are not ours.

The resource sampler (resources.py) takes a reading with every sample; each call line carries the
share over its window (`contention_cpu`), and `contended_phases` flags the (cell, phase) pairs
whose time-weighted share passes profiles/canonical.yaml's marks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import psutil

from orchestrator.core.canonical import ContentionMarks, contention_marks

MB = 2**20
# Where readings come from: psutil, or a stand-in with the same calls (cpu_times, cpu_count, Process,
# Error). A module attribute so that unit tests pin it (tests/conftest.py): they never read the host's processes.
process_table: Any = psutil


@dataclass(frozen=True)
class Reading:
    t: float  # monotonic seconds
    machine_busy_s: float | None  # every CPU's non-idle seconds since boot
    ours_s: float | None  # weeyuga's, its children's and the runtime's CPU seconds
    cpus: int
    others_gpu_mem_mb: float | None = None
    others_gpu_util_percent: float | None = None


def _busy_seconds(times: Any) -> float:
    """Non-idle time; guest time is already inside user, and steal is another machine's, not a process here."""
    return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))


def _process_seconds(process: Any) -> float:
    """Its own time and its reaped children's (live children are listed, and read, on their own)."""
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def our_processes(own_pid: int, runtime_pid: int | None) -> dict[int, Any]:
    """Our live processes by pid: weeyuga, its descendants, and the runtime's family."""
    table = process_table
    family: dict[int, Any] = {}
    for root in {own_pid, runtime_pid} - {None}:
        try:
            process = table.Process(root)
            for member in [process] + process.children(recursive=True):
                family[member.pid] = member
        except table.Error:
            continue  # a runtime between restarts: its time is in our children's counters once reaped
    return family


def read(t: float, own_pid: int, runtime_pid: int | None, nvml: Any = None, handles: Iterable[Any] = ()) -> Reading:
    """One reading of the counters; figures the system will not give are None."""
    table = process_table
    try:
        busy = _busy_seconds(table.cpu_times())
        cpus = table.cpu_count() or 1
    except (table.Error, OSError):
        return Reading(t, None, None, 1)
    family = our_processes(own_pid, runtime_pid)
    ours = 0.0
    for process in family.values():
        try:
            ours += _process_seconds(process)
        except table.Error:
            continue  # gone between listing and reading: its time is in its parent's counters once reaped
    gpu_mem, gpu_util = others_on_gpus(nvml, handles, set(family))
    return Reading(t, busy, ours, cpus, gpu_mem, gpu_util)


def others_on_gpus(nvml: Any, handles: Iterable[Any], ours: set[int]) -> tuple[float | None, float | None]:
    """(memory, utilisation) of compute processes on the GPUs that are not ours; None where NVML does not say."""
    handles = list(handles)
    if nvml is None or not handles:
        return None, None
    memory: float | None = None
    utilisation: float | None = None
    for handle in handles:
        try:
            used = sum(p.usedGpuMemory or 0 for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle) if p.pid not in ours)
            memory = (memory or 0.0) + used / MB
        except Exception:  # not supported on this board or driver: unknown, not zero
            pass
        try:
            samples = nvml.nvmlDeviceGetProcessUtilization(handle, 0)
            busy = float(min(100, sum(s.smUtil for s in samples if s.pid not in ours)))
            utilisation = busy if utilisation is None else max(utilisation, busy)
        except Exception:  # no samples yet (NVML raises NOT_FOUND) or not supported
            pass
    return (None if memory is None else round(memory, 1)), utilisation


def others_share(start: Reading, end: Reading) -> float | None:
    """Others' share of all CPUs between two readings, in [0, 1]; None when either lacks the counters."""
    if None in (start.machine_busy_s, end.machine_busy_s, start.ours_s, end.ours_s) or end.t <= start.t:
        return None
    others = (end.machine_busy_s - start.machine_busy_s) - (end.ours_s - start.ours_s)
    return round(min(1.0, max(0.0, others / ((end.t - start.t) * end.cpus))), 3)


def window(readings: list[Reading], t0: float, t1: float) -> dict[str, float | None]:
    """A call's contention over [t0, t1] from the readings around it: the CPU share between the last
    reading at or before t0 and the first at or after t1 (or the latest), and the GPU maxima in that span."""
    if len(readings) < 2:
        return {"contention_cpu": None, "contention_gpu_util_percent": None, "contention_gpu_mem_mb": None}
    start = next((r for r in reversed(readings) if r.t <= t0), readings[0])
    end = next((r for r in readings if r.t >= t1), readings[-1])
    span = [r for r in readings if start.t <= r.t <= end.t]

    def peak(name: str) -> float | None:
        values = [getattr(r, name) for r in span if getattr(r, name) is not None]
        return max(values) if values else None

    return {"contention_cpu": others_share(start, end), "contention_gpu_util_percent": peak("others_gpu_util_percent"),
            "contention_gpu_mem_mb": peak("others_gpu_mem_mb")}


def contended_phases(calls: Iterable[dict[str, Any]], marks: ContentionMarks | None = None) -> list[dict[str, Any]]:
    """Each (cell, phase) whose calls saw other processes above the marks: the CPU share weighted by
    each call's duration, the mean of others' GPU utilisation. Ledgers without the fields flag nothing."""
    marks = marks or contention_marks()
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for call in calls:
        groups.setdefault((call["cell_id"], call["phase"]), []).append(call)
    flagged = []
    for (cell_id, phase), group in groups.items():
        weighted = [(c["contention_cpu"], c.get("total_duration_ms") or 0.0) for c in group if c.get("contention_cpu") is not None]
        total = sum(w for _, w in weighted)
        cpu = round(sum(s * w for s, w in weighted) / total, 3) if total > 0 else None
        gpu_values = [c["contention_gpu_util_percent"] for c in group if c.get("contention_gpu_util_percent") is not None]
        gpu = round(sum(gpu_values) / len(gpu_values), 1) if gpu_values else None
        reasons = []
        if cpu is not None and cpu > marks.cpu_share:
            reasons.append(f"other processes used {cpu:.0%} of the CPU (mark {marks.cpu_share:.0%})")
        if gpu is not None and gpu > marks.gpu_util_percent:
            reasons.append(f"other processes kept the GPU {gpu:.0f}% busy (mark {marks.gpu_util_percent:.0f}%)")
        if reasons:
            flagged.append({"cell_id": cell_id, "phase": phase, "cpu_share": cpu, "gpu_util_percent": gpu,
                            "reason": "; ".join(reasons)})
    return sorted(flagged, key=lambda f: (f["cell_id"], f["phase"]))


def describe(flagged: list[dict[str, Any]]) -> str:
    """One line naming the contended phases: the refusal and the caveat share it."""
    return "; ".join(f"{f['cell_id']} {f['phase']}: {f['reason']}" for f in flagged)
