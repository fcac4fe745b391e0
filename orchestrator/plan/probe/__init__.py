"""Stage 1, probe: describe this machine as a hardware-1.0 document (hardware.json).

Every source of facts (files, commands, psutil, py-cpuinfo, NVML) goes through a
`ProbeSources` object, so tests replay recorded outputs for macOS, NVIDIA, AMD, Windows,
battery and container machines on any host.
"""


from __future__ import annotations

import time
from typing import Callable

from orchestrator.plan.probe.device_tag import cpu_short_name, derive_device_tag
from orchestrator.plan.probe.document import (BatteryInfo, CpuInfo, GpuInfo, Hardware, OsInfo, StorageInfo, bytes_to_gb, validate_device_tag,
                       write_hardware)
from orchestrator.plan.probe.gpu import probe_gpus
from orchestrator.plan.probe.machine import (manufacturer_model, power_notes, probe_battery, probe_chassis, probe_container_or_vm, probe_cpu,
                      probe_os, probe_storage)
from orchestrator.plan.probe.sources import ProbeSources, cpu_identity, load_nvml

# The package's public names, imported from here across weeyuga.
__all__ = ["BatteryInfo", "CpuInfo", "GpuInfo", "Hardware", "OsInfo", "ProbeSources", "StorageInfo", "cpu_identity",
           "cpu_short_name", "load_nvml", "probe", "validate_device_tag", "write_hardware"]


def probe(sources: ProbeSources | None = None, device_tag: str | None = None,
          clock: Callable[[], float] = time.perf_counter) -> Hardware:
    """Describe this machine. Pass `sources` to describe a recorded one instead."""
    src = sources or ProbeSources.real()
    started = clock()
    os_info = probe_os(src)
    cpu_facts = src.cpu_info() or {}
    cpu = probe_cpu(src, cpu_facts)
    total, available = src.memory()
    gpus, apple_model = probe_gpus(src)
    battery = probe_battery(src)
    flags = {f.lower() for f in cpu_facts.get("flags", [])}
    container_or_vm = probe_container_or_vm(src, flags)
    model = apple_model or manufacturer_model(src)
    bandwidth = src.bandwidth()
    memory_gb = bytes_to_gb(total)
    return Hardware(
        device_tag=validate_device_tag(device_tag) if device_tag else derive_device_tag(os_info, cpu, gpus, memory_gb),
        manufacturer_model=model,
        os=os_info,
        cpu=cpu,
        memory_gb_total=memory_gb,
        memory_gb_available_at_run_start=bytes_to_gb(available),
        gpu=gpus,
        storage=probe_storage(src),
        thermal_or_power_notes=power_notes(battery),
        network_used_for_model_fetch=None,
        container_or_vm=container_or_vm,
        battery=battery,
        chassis=probe_chassis(src, model, battery is not None, container_or_vm is not None),
        host_memory_bandwidth_gbps_measured=bandwidth.gbps if bandwidth else None,
        probe_duration_ms=int((clock() - started) * 1000),
        host_memory_bandwidth_test=bandwidth.to_dict() if bandwidth else None,
    )
