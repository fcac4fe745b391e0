"""GPUs: NVIDIA through NVML (or nvidia-smi), AMD through sysfs and rocm-smi, Apple through system_profiler."""

from __future__ import annotations

import json
import re
from typing import Any

from orchestrator.plan.probe.document import GB, GpuInfo, bytes_to_gb
from orchestrator.plan.probe.sources import ProbeSources


def _nvml_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe_nvidia_nvml(nvml) -> list[GpuInfo]:
    gpus = []
    driver = _nvml_text(nvml.nvmlSystemGetDriverVersion())
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        mem = nvml.nvmlDeviceGetMemoryInfo(handle)
        try:
            major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
            cap = f"{major}.{minor}"
        except Exception:  # older drivers lack the call
            cap = None
        try:
            bus = int(nvml.nvmlDeviceGetMemoryBusWidth(handle))
            clock = float(nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_MEM))
        except Exception:  # not exposed on every board (laptops, vGPU)
            bus, clock = None, None
        # Double data rate: two transfers per clock.
        bandwidth = round(bus / 8 * clock * 1e6 * 2 / GB, 1) if bus and clock else None
        gpus.append(GpuInfo(
            name=_nvml_text(nvml.nvmlDeviceGetName(handle)),
            kind="discrete",
            vram_gb=bytes_to_gb(mem.total),
            driver=driver,
            compute_cap=cap,
            vendor="nvidia",
            vram_free_gb=bytes_to_gb(mem.free),
            memory_bus_width_bits=bus,
            memory_clock_mhz=clock,
            bandwidth_gbps_theoretical=bandwidth,
        ))
    return gpus


def probe_nvidia_smi(src: ProbeSources) -> list[GpuInfo]:
    """Fallback where NVML is not loadable from Python (some Windows installs)."""
    out = src.run(["nvidia-smi", "--query-gpu=name,memory.total,memory.free,driver_version,compute_cap",
                   "--format=csv,noheader,nounits"])
    gpus = []
    for line in (out or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 5:
            continue
        name, total_mib, free_mib, driver, cap = parts[:5]
        gpus.append(GpuInfo(name=name, kind="discrete", vram_gb=bytes_to_gb(float(total_mib) * 2**20),
                            driver=driver, compute_cap=cap or None, vendor="nvidia",
                            vram_free_gb=bytes_to_gb(float(free_mib) * 2**20)))
    return gpus


def probe_amd(src: ProbeSources) -> list[GpuInfo]:
    """AMD GPUs from sysfs (amdgpu exposes VRAM there), named by rocm-smi when installed."""
    names: list[str] = []
    raw = src.run(["rocm-smi", "--showproductname", "--json"])
    if raw:
        try:
            cards = json.loads(raw)
            names = [card.get("Card series") or card.get("Card SKU") or "AMD GPU" for card in cards.values()]
        except (ValueError, AttributeError):
            names = []
    gpus = []
    for device in sorted(src.glob("/sys/class/drm/card*/device")):
        if not re.search(r"card\d+/device$", device):
            continue
        if (src.read_text(f"{device}/vendor") or "").strip() != "0x1002":
            continue
        total = src.read_text(f"{device}/mem_info_vram_total")
        used = src.read_text(f"{device}/mem_info_vram_used")
        if not total:
            continue
        total_b = int(total.strip())
        free_b = total_b - int(used.strip()) if used else None
        # APUs report a small carve-out; anything under 2 GB dedicated is treated as integrated.
        kind = "discrete" if total_b >= 2 * GB else "integrated"
        name = names[len(gpus)] if len(gpus) < len(names) else "AMD GPU"
        gpus.append(GpuInfo(name=name, kind=kind, vram_gb=bytes_to_gb(total_b), driver="amdgpu", compute_cap=None,
                            vendor="amd", vram_free_gb=bytes_to_gb(free_b)))
    return gpus


def probe_apple(src: ProbeSources) -> tuple[list[GpuInfo], str | None]:
    """Apple GPUs share unified memory: kind integrated, vram null. Also returns the model name."""
    raw = src.run(["system_profiler", "SPHardwareDataType", "SPDisplaysDataType", "-json"])
    try:
        doc = json.loads(raw) if raw else {}
    except ValueError:
        doc = {}
    hw = (doc.get("SPHardwareDataType") or [{}])[0]
    model = None
    if hw.get("machine_name"):
        model = f"Apple {hw['machine_name']}" + (f" ({hw['machine_model']})" if hw.get("machine_model") else "")
    gpus = []
    macos = (src.run(["sw_vers", "-productVersion"]) or "").strip()
    for display in doc.get("SPDisplaysDataType") or []:
        name = display.get("sppci_model") or display.get("_name") or "Apple GPU"
        apple = "apple" in (display.get("spdisplays_vendor", "") + name).lower()
        gpus.append(GpuInfo(name=name if "gpu" in name.lower() else f"{name} GPU", kind="integrated" if apple else "discrete",
                            vram_gb=None, driver=f"Metal/macOS-{macos.split('.')[0]}" if macos else "Metal",
                            compute_cap=None, vendor="apple" if apple else "other"))
    return gpus, model


def probe_gpus(src: ProbeSources) -> tuple[list[GpuInfo], str | None]:
    if src.system == "Darwin":
        return probe_apple(src)
    nvml = src.nvml()
    gpus = probe_nvidia_nvml(nvml) if nvml is not None else probe_nvidia_smi(src)
    if src.system == "Linux":
        gpus += probe_amd(src)
    return gpus, None
