"""The hardware-1.0 document (hardware.json): typed machine facts, loading, validation and writing."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.core import datafiles
from orchestrator.plan.hwhints import Inferred, complete_document
from orchestrator.core.runfolder import HARDWARE_NAME, validate_device_tag
from orchestrator.core.atomic import write_text_atomic

SCHEMA_VERSION = "hardware-1.0"
# Memory, VRAM and disk are in GiB: "an 8 GB laptop" and "a 6 GB GPU" are binary sizes.
GB = 2**30


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
    # how host_memory_bandwidth_gbps_measured was measured, with its spread (probe/bandwidth.py)
    host_memory_bandwidth_test: dict[str, Any] | None = None
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
    def from_dict(cls, doc: Any, source: str = HARDWARE_NAME) -> "Hardware":
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


def bytes_to_gb(n_bytes: float | None, digits: int = 1) -> float | None:
    return None if n_bytes is None else round(n_bytes / GB, digits)


def write_hardware(hardware: Hardware, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    datafiles.validate(hardware.to_dict(), "hardware", str(path))
    write_text_atomic(path, hardware.to_json())
    return path
