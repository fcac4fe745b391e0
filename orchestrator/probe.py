"""Stage 1, probe: describe this machine as a hardware-1.0 document (hardware.json).

Every source of facts (files, commands, psutil, py-cpuinfo, NVML) goes through a
`ProbeSources` object, so tests replay recorded outputs for macOS, NVIDIA, AMD, Windows,
battery and container machines on any host.
"""

from __future__ import annotations

import glob as globlib
import json
import os
import platform
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import datafiles
from .hwhints import Inferred, complete_document
from .procs import run_captured

SCHEMA_VERSION = "hardware-1.0"
# Memory, VRAM and disk are in GiB: "an 8 GB laptop" and "a 6 GB GPU" are binary sizes.
GB = 2**30
TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")

# ---------------------------------------------------------------------------------------
# The result


@dataclass(frozen=True)
class OsInfo:
    name: str
    version: str | None
    kernel: str | None


@dataclass(frozen=True)
class CpuInfo:
    name: str
    cores: int
    threads: int
    max_ghz: float | None
    arch: str
    isa: list[str]


@dataclass(frozen=True)
class GpuInfo:
    name: str
    kind: str  # discrete | integrated
    vram_gb: float | None
    driver: str | None
    compute_cap: str | None
    vendor: str = "other"
    vram_free_gb: float | None = None
    memory_bus_width_bits: int | None = None
    memory_clock_mhz: float | None = None
    bandwidth_gbps_theoretical: float | None = None


@dataclass(frozen=True)
class StorageInfo:
    kind: str | None
    free_gb_at_run_start: float | None


@dataclass(frozen=True)
class BatteryInfo:
    percent: float | None
    on_ac_power: bool | None
    low_power_mode: bool | None


def _known(cls, fields: dict[str, Any]) -> dict[str, Any]:
    """The fields a dataclass has: additive fields of a newer hardware.json are ignored, not fatal."""
    return {k: v for k, v in fields.items() if k in cls.__dataclass_fields__}


@dataclass(frozen=True)
class Hardware:
    """One machine, as hardware.json describes it. Field order is the schema's."""

    device_tag: str
    manufacturer_model: str | None
    os: OsInfo
    cpu: CpuInfo
    memory_gb_total: float
    memory_gb_available_at_run_start: float
    gpu: list[GpuInfo]
    storage: StorageInfo
    thermal_or_power_notes: str | None
    network_used_for_model_fetch: str | None
    container_or_vm: str | None
    battery: BatteryInfo | None = None
    chassis: str | None = None
    host_memory_bandwidth_gbps_measured: float | None = None
    probe_duration_ms: int | None = None
    inferred: list[Inferred] = field(default_factory=list)  # additive fields the document lacked (hwhints.py)
    schema_version: str = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        version = body.pop("schema_version")
        if not body["inferred"]:  # a probed machine: nothing was inferred, nothing to say
            del body["inferred"]
        return {"schema_version": version, **body}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, doc: Any, source: str = "hardware.json") -> "Hardware":
        datafiles.validate(doc, "hardware", source)
        validate_device_tag(doc["device_tag"], f"{source}: field device_tag")  # the schema's `$` lets a newline through
        body, inferred = complete_document(doc)
        body.pop("schema_version")
        battery = body.pop("battery")
        return cls(
            **{k: v for k, v in body.items() if k in cls.__dataclass_fields__
               and k not in ("os", "cpu", "gpu", "storage", "inferred")},
            os=OsInfo(**_known(OsInfo, body["os"])),
            cpu=CpuInfo(**_known(CpuInfo, body["cpu"])),
            gpu=[GpuInfo(**_known(GpuInfo, g)) for g in body["gpu"]],
            storage=StorageInfo(**_known(StorageInfo, body["storage"])),
            battery=BatteryInfo(**{k: battery.get(k) for k in BatteryInfo.__dataclass_fields__}) if battery else None,
            inferred=[Inferred(**i) for i in body.get("inferred", [])] + inferred,
        )

    @classmethod
    def load(cls, path: Path) -> "Hardware":
        return cls.from_dict(datafiles.read_json(path), str(path))

    # Facts the rule tables match on -------------------------------------------------

    @property
    def on_battery(self) -> bool:
        return bool(self.battery and self.battery.on_ac_power is False)

    @property
    def low_power(self) -> bool:
        return bool(self.battery and self.battery.low_power_mode)


# ---------------------------------------------------------------------------------------
# Sources


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
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # no driver, no library, or no device: all mean "no NVIDIA GPU here"
        return None


def measure_memory_bandwidth(budget_s: float = 0.5, size_mb: int = 128) -> float | None:
    """Host memory bandwidth in GB/s from repeated large copies, best of those that fit the budget.

    A copy reads and writes each byte once, so bytes moved = 2 x size.
    """
    try:
        src = bytearray(size_mb * 1024 * 1024)
        dst = bytearray(len(src))
    except MemoryError:
        return None
    best = 0.0
    deadline = time.perf_counter() + budget_s
    view_src, view_dst = memoryview(src), memoryview(dst)
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        view_dst[:] = view_src
        elapsed = time.perf_counter() - start
        if elapsed > 0:
            best = max(best, 2 * len(src) / elapsed / GB)
    return round(best, 1) if best else None


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
    bandwidth: Callable[[], float | None] = field(default=lambda: None)

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
            bandwidth=measure_memory_bandwidth if measure_bandwidth else (lambda: None),
        )


# ---------------------------------------------------------------------------------------
# Pieces


def _gb(n_bytes: float | None, digits: int = 1) -> float | None:
    return None if n_bytes is None else round(n_bytes / GB, digits)


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
            vram_gb=_gb(mem.total),
            driver=driver,
            compute_cap=cap,
            vendor="nvidia",
            vram_free_gb=_gb(mem.free),
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
        gpus.append(GpuInfo(name=name, kind="discrete", vram_gb=_gb(float(total_mib) * 2**20),
                            driver=driver, compute_cap=cap or None, vendor="nvidia",
                            vram_free_gb=_gb(float(free_mib) * 2**20)))
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
        gpus.append(GpuInfo(name=name, kind=kind, vram_gb=_gb(total_b), driver="amdgpu", compute_cap=None,
                            vendor="amd", vram_free_gb=_gb(free_b)))
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
    return StorageInfo(kind=kind, free_gb_at_run_start=_gb(src.disk_free()))


def _manufacturer_model(src: ProbeSources) -> str | None:
    placeholders = {"", "to be filled by o.e.m.", "default string", "system product name", "none"}
    vendor = (src.read_text("/sys/class/dmi/id/sys_vendor") or "").strip()
    product = (src.read_text("/sys/class/dmi/id/product_name") or "").strip()
    parts = [p for p in (vendor, product) if p.lower() not in placeholders]
    return " ".join(parts) or None


def slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")


GENERIC_CPU_WORDS = {"amd", "intel", "apple", "core", "processor", "cpu", "r", "tm", "with", "radeon", "graphics",
                     "genuine", "gen", "th"}
FAMILY_NEEDS_MODEL = {"ryzen", "xeon", "threadripper", "celeron", "pentium", "athlon", "ultra"}


def cpu_short_name(name: str) -> str:
    words = [w for w in re.split(r"[^a-z0-9-]+", name.lower().split("@")[0])
             if w and w not in GENERIC_CPU_WORDS and not re.fullmatch(r"\d+-core|\d+(\.\d+)?ghz", w)]
    if not words:
        return "cpu"
    short = words[0]
    if len(words) > 1 and (short in FAMILY_NEEDS_MODEL or re.fullmatch(r"m\d", short) and words[1] in ("pro", "max", "ultra")):
        short += "-" + words[1]
    return slug(short)


def derive_device_tag(os_info: OsInfo, cpu: CpuInfo, gpus: list[GpuInfo], memory_gb: float) -> str:
    os_part = {"macOS": "mac", "Windows": "win"}.get(os_info.name, "linux")
    discrete = [g for g in gpus if g.kind == "discrete" and g.vram_gb]
    if discrete:
        best = max(discrete, key=lambda g: g.vram_gb or 0)
        gpu_name = slug(re.sub(r"(?i)nvidia|geforce|amd|radeon|laptop gpu|\bgpu\b", "", best.name))
        count = f"{len(discrete)}x" if len(discrete) > 1 else ""
        middle = f"{count}{gpu_name}-{round(best.vram_gb or 0)}gb"
    else:
        middle = f"{cpu_short_name(cpu.name)}-{cpu.cores}c"
    tag = slug(f"{os_part}-{middle}-{round(memory_gb)}gb")
    return tag[:48].rstrip("-")


def validate_device_tag(tag: str, source: str = "device tag") -> str:
    from .errors import BadInput

    if not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag):
        raise BadInput(f"{source} {tag!r}: use 1-48 characters of a-z, 0-9 and '-', starting with a letter or digit")
    return tag


# ---------------------------------------------------------------------------------------
# Entry point


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
    model = apple_model or _manufacturer_model(src)
    bandwidth = src.bandwidth()
    memory_gb = _gb(total)
    return Hardware(
        device_tag=validate_device_tag(device_tag) if device_tag else derive_device_tag(os_info, cpu, gpus, memory_gb),
        manufacturer_model=model,
        os=os_info,
        cpu=cpu,
        memory_gb_total=memory_gb,
        memory_gb_available_at_run_start=_gb(available),
        gpu=gpus,
        storage=probe_storage(src),
        thermal_or_power_notes=power_notes(battery),
        network_used_for_model_fetch=None,
        container_or_vm=container_or_vm,
        battery=battery,
        chassis=probe_chassis(src, model, battery is not None, container_or_vm is not None),
        host_memory_bandwidth_gbps_measured=bandwidth,
        probe_duration_ms=int((clock() - started) * 1000),
    )


def write_hardware(hardware: Hardware, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    datafiles.validate(hardware.to_dict(), "hardware", str(path))
    path.write_text(hardware.to_json(), encoding="utf-8")
    return path
