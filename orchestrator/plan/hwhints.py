"""Fill in what a hardware.json without weeyuga's additive fields would have said.

A document with only the runbook's hardware-1.0 fields (a volunteer's hand-written file, or one
from before weeyuga) lacks the GPU vendor, free VRAM, battery and chassis that the rules read;
without them an NVIDIA, AMD or Apple GPU would be planned as no GPU at all. `complete_document`
infers each missing one from the fields the document has, by the tables in
profiles/hardware_hints.yaml, and lists every inference so the plan can say what it rests on.
A field the document has is never changed.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput
from orchestrator.core.paths import data_dir


@dataclass(frozen=True)
class Inferred:
    field: str  # the hardware.json field it fills, e.g. gpu[0].vendor
    value: Any
    source: str  # what it was read from, e.g. GPU name 'NVIDIA GeForce RTX 3060'

    def note(self) -> str:
        return f"{self.field} {self.value} inferred from {self.source}"


@dataclass(frozen=True)
class Hints:
    gpu_vendor: list[tuple[str, str, re.Pattern, list[str] | None]]  # vendor, field, pattern, os names
    vram_in_use_at_rest_gb: float
    on_battery: re.Pattern
    low_power: re.Pattern
    chassis: list[tuple[str, str, re.Pattern]]  # chassis, field, pattern


def _compile(pattern: str, source: str, where: str) -> re.Pattern:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise BadInput(f"{source}: field {where}: not a regular expression ({exc})") from None


@lru_cache(maxsize=None)
def load_hints() -> Hints:
    path = data_dir("profiles") / "hardware_hints.yaml"
    doc, source = datafiles.load(path, "hardware_hints"), str(path)
    return Hints(
        gpu_vendor=[(e["vendor"], e["field"], _compile(e["pattern"], source, f"gpu_vendor[{i}].pattern"), e.get("os"))
                    for i, e in enumerate(doc["gpu_vendor"])],
        vram_in_use_at_rest_gb=doc["vram_in_use_at_rest_gb"],
        on_battery=_compile(doc["battery"]["on_battery"], source, "battery.on_battery"),
        low_power=_compile(doc["battery"]["low_power"], source, "battery.low_power"),
        chassis=[(e["chassis"], e["field"], _compile(e["pattern"], source, f"chassis[{i}].pattern"))
                 for i, e in enumerate(doc["chassis"])],
    )


FIELD_LABELS = {"name": "GPU name", "driver": "GPU driver", "compute_cap": "CUDA compute capability",
                "gpu_name": "GPU name"}


def _quoted(field: str, value: str) -> str:
    return f"{FIELD_LABELS.get(field, field)} {value!r}"


def gpu_vendor(gpu: dict[str, Any], os_name: str, hints: Hints) -> tuple[str, str]:
    """(vendor, what it was read from) for one gpu entry."""
    for vendor, field, pattern, os_names in hints.gpu_vendor:
        value = gpu.get(field)
        if value and (os_names is None or os_name in os_names) and pattern.search(str(value)):
            return vendor, _quoted(field, str(value)) + (f" on {os_name}" if os_names else "")
    return "other", f"GPU name {gpu['name']!r} (no pattern in profiles/hardware_hints.yaml matches it)"


def _battery(notes: str | None, hints: Hints) -> tuple[dict[str, Any] | None, list[Inferred]]:
    on_battery = bool(notes and hints.on_battery.search(notes))
    low_power = bool(notes and hints.low_power.search(notes))
    if not (on_battery or low_power):
        return None, []
    battery = {"percent": None, "on_ac_power": False if on_battery else None, "low_power_mode": True if low_power else None}
    source = f"thermal_or_power_notes {notes!r}"
    found = [Inferred(f"battery.{key}", value, source) for key, value in battery.items() if value is not None]
    return battery, found


def _chassis(doc: dict[str, Any], hints: Hints) -> tuple[str, str] | None:
    for chassis, field, pattern in hints.chassis:
        values = [g["name"] for g in doc["gpu"]] if field == "gpu_name" else [doc.get(field)]
        for value in values:
            if value and pattern.search(value):
                return chassis, _quoted(field, value)
    return None


def complete_document(doc: dict[str, Any]) -> tuple[dict[str, Any], list[Inferred]]:
    """A copy of a (valid) hardware.json with its missing additive fields inferred, and the inferences."""
    hints = load_hints()
    doc = copy.deepcopy(doc)
    found: list[Inferred] = []
    for index, gpu in enumerate(doc["gpu"]):
        if "vendor" not in gpu:
            gpu["vendor"], source = gpu_vendor(gpu, doc["os"]["name"], hints)
            found.append(Inferred(f"gpu[{index}].vendor", gpu["vendor"], source))
        if "vram_free_gb" not in gpu and gpu["kind"] == "discrete" and gpu["vram_gb"] is not None:
            gpu["vram_free_gb"] = round(max(0.0, gpu["vram_gb"] - hints.vram_in_use_at_rest_gb), 1)
            found.append(Inferred(f"gpu[{index}].vram_free_gb", gpu["vram_free_gb"],
                                  f"vram_gb {gpu['vram_gb']:g} less {hints.vram_in_use_at_rest_gb:g} GB a driver holds at rest"))
    if "battery" not in doc:
        doc["battery"], battery_found = _battery(doc["thermal_or_power_notes"], hints)
        found += battery_found
    if "chassis" not in doc:
        chassis = _chassis(doc, hints)
        doc["chassis"] = chassis[0] if chassis else None
        if chassis:
            found.append(Inferred("chassis", chassis[0], chassis[1]))
    return doc, found
