import json

import pytest

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput
from orchestrator.plan.probe import (Hardware, cpu_short_name, probe, validate_device_tag)
from tests.fakes.hardware import battery, recorded_sources
from tests.fakes.nvml import FakeBoard, FakeNVML

GIB = 2**30
OS_RELEASE = 'NAME="Ubuntu"\nVERSION_ID="22.04"\n'


def schema_valid(hw: Hardware) -> dict:
    doc = hw.to_dict()
    datafiles.validate(doc, "hardware", "probe")
    return doc


def test_real_machine_probe_is_schema_valid_and_truthful():
    import os
    hw = probe()
    doc = schema_valid(hw)
    assert doc["cpu"]["threads"] == os.cpu_count()
    assert set(doc) >= {"schema_version", "device_tag", "manufacturer_model", "os", "cpu", "memory_gb_total",
                        "memory_gb_available_at_run_start", "gpu", "storage", "thermal_or_power_notes",
                        "network_used_for_model_fetch", "container_or_vm"}


def test_linux_cpu_only_desktop():
    src = recorded_sources(files={"/etc/os-release": OS_RELEASE, "/sys/class/dmi/id/chassis_type": "3\n",
                                  "/sys/class/dmi/id/sys_vendor": "Dell Inc.\n", "/sys/class/dmi/id/product_name": "OptiPlex 7080\n",
                                  "/proc/mounts": "/dev/nvme0n1p2 / ext4 rw 0 0\n"})
    hw = probe(src)
    doc = schema_valid(hw)
    assert doc["os"] == {"name": "Ubuntu", "version": "22.04", "kernel": "6.1.0"}
    assert doc["cpu"]["cores"] == 4 and doc["cpu"]["threads"] == 8 and doc["cpu"]["max_ghz"] == 3.6
    assert doc["cpu"]["isa"] == ["SSE4_2", "AVX", "AVX2", "FMA"]
    assert doc["gpu"] == [] and doc["chassis"] == "desktop" and doc["container_or_vm"] is None
    assert doc["manufacturer_model"] == "Dell Inc. OptiPlex 7080"
    assert doc["storage"]["kind"] == "nvme"
    assert doc["thermal_or_power_notes"] == "no battery; mains power"
    assert hw.device_tag == "linux-ryzen-7-4c-16gb"


def test_nvidia_two_gpus_from_nvml():
    nvml = FakeNVML([FakeBoard("NVIDIA GeForce RTX 3090", 24 * GIB, 23 * GIB),
                     FakeBoard("NVIDIA GeForce RTX 3090", 24 * GIB, 20 * GIB)])
    hw = probe(recorded_sources(nvml=nvml, files={"/etc/os-release": OS_RELEASE}))
    doc = schema_valid(hw)
    assert len(doc["gpu"]) == 2
    gpu = doc["gpu"][0]
    assert gpu["name"] == "NVIDIA GeForce RTX 3090" and gpu["vram_gb"] == 24.0 and gpu["vram_free_gb"] == 23.0
    assert gpu["driver"] == "550.54.14" and gpu["compute_cap"] == "8.6" and gpu["vendor"] == "nvidia"
    assert gpu["bandwidth_gbps_theoretical"] == pytest.approx(384 / 8 * 9751e6 * 2 / GIB, abs=0.1)
    assert hw.device_tag == "linux-2xrtx-3090-24gb-16gb"


def test_nvml_board_without_bus_width_reports_null_bandwidth():
    nvml = FakeNVML([FakeBoard("NVIDIA GeForce GTX 1060 6GB", 6 * GIB, 5 * GIB, (6, 1), None, None)])
    gpu = probe(recorded_sources(nvml=nvml)).gpu[0]
    assert gpu.bandwidth_gbps_theoretical is None and gpu.compute_cap == "6.1"


def test_windows_nvidia_smi_fallback():
    smi = "NVIDIA GeForce RTX 4070 Laptop GPU, 8188, 7400, 551.86, 8.9\n"
    src = recorded_sources(system="Windows", release="11", machine="AMD64", commands={
        ("nvidia-smi", "--query-gpu=name,memory.total,memory.free,driver_version,compute_cap",
         "--format=csv,noheader,nounits"): smi}, battery=battery(80, True))
    hw = probe(src)
    doc = schema_valid(hw)
    assert doc["os"]["name"] == "Windows" and doc["cpu"]["arch"] == "x86_64"
    assert doc["gpu"][0]["vram_gb"] == 8.0 and doc["gpu"][0]["compute_cap"] == "8.9"
    assert doc["chassis"] == "laptop" and "on AC power" in doc["thermal_or_power_notes"]
    assert hw.device_tag.startswith("win-rtx-4070-8gb")


def test_amd_gpu_from_sysfs_and_rocm_smi():
    card = "/sys/class/drm/card1/device"
    src = recorded_sources(files={f"{card}/vendor": "0x1002\n", f"{card}/mem_info_vram_total": str(24 * GIB),
                                  f"{card}/mem_info_vram_used": str(1 * GIB)},
                           commands={("rocm-smi", "--showproductname", "--json"):
                                     json.dumps({"card1": {"Card series": "Radeon RX 7900 XTX"}})})
    doc = schema_valid(probe(src))
    assert doc["gpu"] == [{"name": "Radeon RX 7900 XTX", "kind": "discrete", "vram_gb": 24.0, "driver": "amdgpu",
                           "compute_cap": None, "vendor": "amd", "vram_free_gb": 23.0, "memory_bus_width_bits": None,
                           "memory_clock_mhz": None, "bandwidth_gbps_theoretical": None}]


SYSTEM_PROFILER = json.dumps({
    "SPHardwareDataType": [{"machine_name": "MacBook Air", "machine_model": "MacBookAir10,1", "chip_type": "Apple M1"}],
    "SPDisplaysDataType": [{"_name": "Apple M1", "sppci_model": "Apple M1", "spdisplays_vendor": "sppci_vendor_Apple"}],
})


def test_macos_unified_memory_on_battery_low_power():
    src = recorded_sources(system="Darwin", release="23.5.0", machine="arm64", memory_gib=(8, 4.2), cpu_counts=(8, 8),
                           cpu_info={"brand_raw": "", "flags": []}, battery=battery(18, False),
                           commands={("sw_vers", "-productVersion"): "14.5\n",
                                     ("sysctl", "-n", "machdep.cpu.brand_string"): "Apple M1\n",
                                     ("system_profiler", "SPHardwareDataType", "SPDisplaysDataType", "-json"): SYSTEM_PROFILER,
                                     ("pmset", "-g"): " lowpowermode         1\n"})
    hw = probe(src)
    doc = schema_valid(hw)
    assert doc["os"] == {"name": "macOS", "version": "14.5", "kernel": "23.5.0"}
    assert doc["manufacturer_model"] == "Apple MacBook Air (MacBookAir10,1)"
    assert doc["gpu"][0]["kind"] == "integrated" and doc["gpu"][0]["vram_gb"] is None
    assert doc["gpu"][0]["driver"] == "Metal/macOS-14"
    assert doc["cpu"]["isa"] == ["NEON"] and doc["chassis"] == "laptop"
    assert "on battery (18%)" in doc["thermal_or_power_notes"] and "low-power mode" in doc["thermal_or_power_notes"]
    assert hw.on_battery and hw.low_power
    assert hw.device_tag == "mac-m1-8c-8gb"


@pytest.mark.parametrize("paths,files,commands,expected", [
    (["/.dockerenv"], {}, {}, "container:docker"),
    ([], {"/proc/1/cgroup": "0::/kubepods/besteffort/pod1\n"}, {}, "container:kubepods"),
    ([], {}, {("systemd-detect-virt", "--vm"): "kvm\n"}, "vm:kvm"),
    (["/run/.containerenv"], {}, {("systemd-detect-virt", "--vm"): "microsoft\n"}, "container:podman, vm:microsoft"),
    ([], {}, {("systemd-detect-virt", "--vm"): "none\n"}, None),
])
def test_container_or_vm(paths, files, commands, expected):
    hw = probe(recorded_sources(paths=paths, files=files, commands=commands))
    assert hw.container_or_vm == expected
    if expected:
        assert hw.chassis == "server"


def test_hypervisor_flag_means_vm():
    hw = probe(recorded_sources(cpu_info={"brand_raw": "AMD EPYC", "flags": ["avx2", "hypervisor"]}))
    assert hw.container_or_vm == "vm:vm"


@pytest.mark.parametrize("name,short", [
    ("AMD EPYC", "epyc"), ("AMD EPYC 7763 64-Core Processor", "epyc"), ("Intel(R) Core(TM) i7-8750H CPU @ 2.20GHz", "i7-8750h"),
    ("Apple M1 Max", "m1-max"), ("Apple M2", "m2"), ("AMD Ryzen 9 5950X 16-Core Processor", "ryzen-9"),
    ("", "cpu"),
])
def test_cpu_short_name(name, short):
    assert cpu_short_name(name) == short


def test_device_tag_validation():
    assert validate_device_tag("mac-m1-8gb") == "mac-m1-8gb"
    for bad in ("Mac", "../x", "a" * 49, "-x", "a_b"):
        with pytest.raises(BadInput):
            validate_device_tag(bad)
    with pytest.raises(BadInput):
        probe(recorded_sources(), device_tag="../../etc")


def test_roundtrip_through_json():
    hw = probe(recorded_sources(nvml=FakeNVML([FakeBoard("NVIDIA RTX A4000", 16 * GIB, 15 * GIB)]), battery=battery()))
    again = Hardware.from_dict(json.loads(hw.to_json()))
    assert again == hw
