"""The rest of the machine: OS, CPU, container or VM, chassis, battery and power, storage, model name."""

from __future__ import annotations

import re
from typing import Any

from orchestrator.plan.probe.document import BatteryInfo, CpuInfo, OsInfo, StorageInfo, bytes_to_gb
from orchestrator.plan.probe.sources import ProbeSources


def _os_release(src: ProbeSources) -> dict[str, str]:
    text = src.read_text("/etc/os-release") or ""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip('"')
    return out


def probe_os(src: ProbeSources) -> OsInfo:
    if src.system == "Darwin":
        return OsInfo("macOS", (src.run(["sw_vers", "-productVersion"]) or "").strip() or None, src.release)
    if src.system == "Windows":
        return OsInfo("Windows", src.release or None, None)
    rel = _os_release(src)
    return OsInfo(rel.get("NAME", src.system or "Linux"), rel.get("VERSION_ID"), src.release or None)


NOTABLE_ISA = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile",
               "neon", "asimd", "sve", "sve2", "i8mm", "dotprod"]


def _normal_arch(machine: str) -> str:
    machine = machine.lower()
    return {"amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64"}.get(machine, machine)


def probe_cpu(src: ProbeSources, info: dict[str, Any]) -> CpuInfo:
    physical, logical = src.cpu_counts()
    name = info.get("brand_raw") or ""
    if src.system == "Darwin":
        name = (src.run(["sysctl", "-n", "machdep.cpu.brand_string"]) or name).strip()
    mhz = src.cpu_max_mhz()
    if not mhz:
        advertised = info.get("hz_advertised") or info.get("hz_actual")
        mhz = advertised[0] / 1e6 if advertised else None
    arch = _normal_arch(src.machine)
    flags = {f.lower() for f in info.get("flags", [])}
    isa = [f.upper() for f in NOTABLE_ISA if f in flags]
    if arch == "arm64" and not isa:
        isa = ["NEON"]  # every arm64 core has Advanced SIMD, even when no flag list is exposed
    return CpuInfo(
        name=name or "unknown CPU",
        cores=physical or logical,
        threads=max(logical, physical or 1),
        max_ghz=round(mhz / 1000, 2) if mhz else None,
        arch=arch,
        isa=isa,
    )


def probe_container_or_vm(src: ProbeSources, cpu_flags: set[str]) -> str | None:
    container = None
    if src.exists("/.dockerenv"):
        container = "docker"
    elif src.exists("/run/.containerenv"):
        container = "podman"
    else:
        cgroup = src.read_text("/proc/1/cgroup") or ""
        for marker in ("kubepods", "docker", "lxc", "containerd"):
            if marker in cgroup:
                container = marker
                break
    vm = (src.run(["systemd-detect-virt", "--vm"]) or "").strip()
    if vm in ("", "none"):
        vm = "vm" if "hypervisor" in cpu_flags else ""
    parts = [p for p in (f"container:{container}" if container else "", f"vm:{vm}" if vm else "") if p]
    return ", ".join(parts) or None


LAPTOP_CHASSIS = {"8", "9", "10", "14", "30", "31", "32"}
SERVER_CHASSIS = {"17", "23", "25", "28", "29"}


def probe_chassis(src: ProbeSources, model: str | None, has_battery: bool, virtualised: bool) -> str | None:
    code = (src.read_text("/sys/class/dmi/id/chassis_type") or "").strip()
    if code in LAPTOP_CHASSIS or (model and "macbook" in model.lower()):
        return "laptop"
    if code in SERVER_CHASSIS:
        return "server"
    if has_battery:
        return "laptop"
    if virtualised:
        return "server"
    return "desktop" if code else None


def probe_battery(src: ProbeSources) -> BatteryInfo | None:
    raw = src.battery()
    if raw is None:
        return None
    low_power = None
    if src.system == "Darwin":
        pmset = src.run(["pmset", "-g"]) or ""
        match = re.search(r"lowpowermode\s+(\d)", pmset)
        low_power = bool(int(match.group(1))) if match else None
    elif src.system == "Linux":
        profile = (src.read_text("/sys/firmware/acpi/platform_profile") or "").strip()
        low_power = (profile in ("low-power", "quiet")) if profile else None
    return BatteryInfo(percent=round(float(raw.percent), 1) if raw.percent is not None else None,
                       on_ac_power=raw.power_plugged, low_power_mode=low_power)


def power_notes(battery: BatteryInfo | None) -> str:
    if battery is None:
        return "no battery; mains power"
    notes = []
    if battery.on_ac_power is False:
        level = f" ({battery.percent:.0f}%)" if battery.percent is not None else ""
        notes.append(f"on battery{level}: results may be slower than on AC power")
    else:
        notes.append("on AC power")
    if battery.low_power_mode:
        notes.append("low-power mode active: results may be artificially slow")
    return "; ".join(notes)


def probe_storage(src: ProbeSources) -> StorageInfo:
    kind = None
    if src.system == "Darwin":
        kind = "ssd"
    elif src.system == "Linux":
        root_dev = None
        for line in (src.read_text("/proc/mounts") or "").splitlines():
            parts = line.split()
            if len(parts) > 1 and parts[1] == "/" and parts[0].startswith("/dev/"):
                root_dev = parts[0][5:]
        if root_dev:
            disk = re.sub(r"(p?\d+)$", "", root_dev) if not root_dev.startswith("nvme") else re.sub(r"p\d+$", "", root_dev)
            if disk.startswith("nvme"):
                kind = "nvme"
            elif re.match(r"x?vd[a-z]", disk):
                kind = "virtual"  # virtio disks claim to be rotational whatever backs them
            else:
                rotational = (src.read_text(f"/sys/block/{disk}/queue/rotational") or "").strip()
                kind = {"0": "ssd", "1": "hdd"}.get(rotational)
    return StorageInfo(kind=kind, free_gb_at_run_start=bytes_to_gb(src.disk_free()))


def manufacturer_model(src: ProbeSources) -> str | None:
    placeholders = {"", "to be filled by o.e.m.", "default string", "system product name", "none"}
    vendor = (src.read_text("/sys/class/dmi/id/sys_vendor") or "").strip()
    product = (src.read_text("/sys/class/dmi/id/product_name") or "").strip()
    parts = [p for p in (vendor, product) if p.lower() not in placeholders]
    return " ".join(parts) or None
