"""Physics: decode no faster than the memory-bandwidth roofline allows (report/roofline.py, from the
manifest's GGUF facts and hardware.json's bandwidth), the claimed bandwidth itself within what the
hardware can deliver (profiles/bandwidth.yaml), and a runtime that decoded was busy while it did."""

from __future__ import annotations

import copy
import functools
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from orchestrator.core import datafiles
from orchestrator.core.paths import data_dir
from orchestrator.publish.report.roofline import Roofline
from orchestrator.publish.review.model import Finding, RunUnderReview, call_label, grouped, reject, tolerances, warn

CHECK = "physics"


@dataclass(frozen=True)
class BandwidthTable:
    gpus: tuple[tuple[re.Pattern, float], ...]
    hosts: tuple[tuple[re.Pattern, float], ...]

    @staticmethod
    def _first(entries: tuple[tuple[re.Pattern, float], ...], name: str | None) -> float | None:
        return next((gbps for pattern, gbps in entries if name and pattern.search(name)), None)

    def gpu(self, name: str | None) -> float | None:
        return self._first(self.gpus, name)

    def host(self, cpu_name: str | None) -> float | None:
        return self._first(self.hosts, cpu_name or "unknown")


@functools.cache
def bandwidth_table() -> BandwidthTable:
    document = datafiles.load(data_dir("profiles") / "bandwidth.yaml", "bandwidth")
    compiled = {kind: tuple((re.compile(e["pattern"], re.IGNORECASE), float(e["gbps"])) for e in document[kind])
                for kind in ("gpus", "hosts")}
    return BandwidthTable(compiled["gpus"], compiled["hosts"])


def check(run: RunUnderReview) -> list[Finding]:
    findings = bandwidth_claims(run)
    return findings + roofline(run) + busy(run)


def bandwidth_claims(run: RunUnderReview) -> list[Finding]:
    hardware, table, slack = run.hardware or {}, bandwidth_table(), 1 + tolerances().bandwidth_bound_slack
    findings = []
    cpu = (hardware.get("cpu") or {}).get("name")
    measured, bound = hardware.get("host_memory_bandwidth_gbps_measured"), table.host(cpu)
    if measured is not None and bound is not None and measured > bound * slack:
        findings.append(reject(CHECK, f"hardware.json: host bandwidth {measured} GB/s measured, but a {cpu} "
                                      f"can deliver at most {bound} GB/s"))
    for gpu in hardware.get("gpu") or []:
        claimed, known = gpu.get("bandwidth_gbps_theoretical"), table.gpu(gpu.get("name"))
        if known is None and gpu.get("kind") != "integrated":
            findings.append(warn(CHECK, f"GPU {gpu.get('name')!r} is not in profiles/bandwidth.yaml: its bandwidth is not checked"))
        elif claimed is not None and known is not None and claimed > known * slack:
            findings.append(reject(CHECK, f"hardware.json: {gpu.get('name')} claims {claimed} GB/s; it has {known} GB/s"))
    return findings


def bounded_hardware(hardware: dict[str, Any] | None) -> dict[str, Any]:
    """hardware.json with each missing bandwidth set to the most the hardware can have, so the
    roofline is an upper bound wherever the run did not measure one."""
    bounded = copy.deepcopy(hardware or {})
    table = bandwidth_table()
    if bounded.get("host_memory_bandwidth_gbps_measured") is None:
        bounded["host_memory_bandwidth_gbps_measured"] = table.host((bounded.get("cpu") or {}).get("name"))
    for gpu in bounded.get("gpu") or []:
        if gpu.get("bandwidth_gbps_theoretical") is None and gpu.get("kind") != "integrated":
            gpu["bandwidth_gbps_theoretical"] = table.gpu(gpu.get("name"))
    return bounded


def roofline(run: RunUnderReview) -> list[Finding]:
    limits = Roofline(run.manifest, bounded_hardware(run.hardware))
    fractions: dict[tuple[str, str], list[float]] = defaultdict(list)
    for call in run.calls:
        if (figures := limits.of_call(call)) is not None:
            fractions[(call["cell_id"], call["phase"])].append(figures["fraction"])
    decoded = {(c["cell_id"], c["phase"]) for c in run.calls if c.get("tokens_per_sec") and c.get("error") is None}
    if decoded and not fractions:
        return [warn(CHECK, "decode vs the roofline not checked: the manifest has no GGUF facts for the model or "
                            "no bandwidth is known for the memory it ran from")]
    reject_above, findings = tolerances().roofline_reject_fraction, []
    for (cell, phase), values in fractions.items():
        median = statistics.median(values)
        line = (f"{cell} {phase}: decode at {median:.2f}x the memory-bandwidth roofline (median of {len(values)} "
                f"calls; {limits.kind})")
        if median > reject_above:
            findings.append(reject(CHECK, line + f": faster than the memory can feed it (at most {reject_above}x)"))
        elif median > 1:
            findings.append(warn(CHECK, line + ": above 1, possible only from caches"))
    return findings


def busy(run: RunUnderReview) -> list[Finding]:
    """A call that decoded long enough for a sample to land must show the runtime's CPU or GPU at work,
    and no process uses more CPU than the machine's threads."""
    limits = tolerances()
    threads = ((run.hardware or {}).get("cpu") or {}).get("threads")
    sampled = [c for c in run.calls if c.get("peak_cpu_percent") is not None or c.get("peak_gpu_util_percent") is not None]
    if not sampled:
        if any(s.get("cpu_percent") is not None for s in run.samples or ()):
            return [reject(CHECK, "samples.jsonl saw the runtime's CPU but no call carries its peaks (removed evidence)")]
        return [warn(CHECK, "no resource samples of the runtime (one weeyuga could not see): decode vs CPU and GPU "
                            "use not checked")] if run.calls else []
    idle, impossible = [], []
    for call in sampled:
        cpu, gpu = call.get("peak_cpu_percent") or 0, call.get("peak_gpu_util_percent") or 0
        decode_ms = (call.get("total_duration_ms") or 0) - (call.get("first_delta_ms") or 0)
        if (call.get("error") is None and (call.get("completion_tokens") or 0) >= limits.busy_min_tokens
                and decode_ms >= limits.busy_min_decode_ms and max(cpu, gpu) < limits.busy_min_percent):
            idle.append(f"{call_label(call)}: {call.get('completion_tokens')} tokens in {decode_ms:.0f} ms at "
                        f"{cpu}% CPU, {gpu}% GPU")
        if threads and cpu > threads * 100 * 1.1:
            impossible.append(f"{call_label(call)}: {cpu}% CPU on {threads} threads")
    return (grouped(CHECK, "a call decoded while its runtime used neither CPU nor GPU", idle)
            + grouped(CHECK, "a call used more CPU than the machine's threads have", impossible))
