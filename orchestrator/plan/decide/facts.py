"""The flat hardware facts a rule's `when` tests, the inferences they rest on, and rule matching."""

from __future__ import annotations

import re
from typing import Any

from orchestrator.plan.probe import Hardware


def hardware_facts(hw: Hardware) -> dict[str, Any]:
    """The flat facts a rule's `when` can test."""
    usable = [g for g in hw.gpu if (g.kind == "discrete" and g.vram_gb) or g.vendor == "apple"]
    vendors = [g.vendor for g in usable]
    vendor = next((v for v in ("nvidia", "amd", "apple", "intel", "other") if v in vendors), "none")
    mine = [g for g in usable if g.vendor == vendor]
    os_name = {"macOS": "macos", "Windows": "windows"}.get(hw.os.name, "linux")
    return {
        "os": os_name,
        "arch": hw.cpu.arch,
        "gpu_vendor": vendor,
        "gpu_count": len(mine),
        "gpu_vram_gb": max((g.vram_gb or 0 for g in mine), default=0),
        "gpu_vram_total_gb": sum(g.vram_gb or 0 for g in mine),
        "discrete_gpus": sum(g.kind == "discrete" for g in hw.gpu),
        "memory_gb_total": hw.memory_gb_total,
        "memory_gb_available": hw.memory_gb_available_at_run_start,
        "cpu_cores": hw.cpu.cores,
        "cpu_threads": hw.cpu.threads,
        "chassis": hw.chassis or "unknown",
        "on_battery": hw.on_battery,
        "low_power": hw.low_power,
        "virtualised": hw.container_or_vm is not None,
    }


# The hardware.json fields each fact is read from, where a document may lack them and
# hwhints.py infers them: a rule that tests the fact rests on the inference.
FACT_FIELDS = {"gpu_vendor": {"vendor"}, "gpu_count": {"vendor"}, "gpu_vram_gb": {"vendor"},
               "gpu_vram_total_gb": {"vendor"}, "on_battery": {"battery"}, "low_power": {"battery"},
               "chassis": {"chassis"}}
# The memory budget reads which GPUs are the vendor's and their free VRAM.
BUDGET_FIELDS = {"vendor", "vram_free_gb"}


def inferred_notes(hw: Hardware, fields: set[str]) -> str:
    """' (gpu[0].vendor nvidia inferred from ...)' for the inferences among `fields`; '' when none."""
    notes = [i.note() for i in hw.inferred if set(re.findall(r"[a-z_]+", i.field)) & fields]
    return f" ({'; '.join(notes)})" if notes else ""


def fields_tested(rules: list[dict[str, Any]]) -> set[str]:
    return set().union(*(FACT_FIELDS.get(fact, set()) for rule in rules for fact in rule["when"]))


def _condition_holds(actual: Any, condition: Any) -> bool:
    if not isinstance(condition, dict):
        return actual == condition
    for op, expected in condition.items():
        if op == "in":
            if actual not in expected:
                return False
            continue
        if not isinstance(actual, (int, float)):
            return False
        if not {"gte": actual >= expected, "gt": actual > expected,
                "lte": actual <= expected, "lt": actual < expected}[op]:
            return False
    return True


def rule_matches(rule: dict[str, Any], facts: dict[str, Any]) -> bool:
    return all(_condition_holds(facts.get(name), cond) for name, cond in rule["when"].items())

def hardware_class(hw: Hardware) -> tuple[str, dict[str, Any]]:
    """A readable label and the `when` a pin for this class of machine matches on."""
    facts = hardware_facts(hw)
    if facts["gpu_vendor"] in ("nvidia", "amd"):
        vram = round(facts["gpu_vram_gb"])
        names = sorted({g.name for g in hw.gpu if g.vendor == facts["gpu_vendor"] and g.kind == "discrete"})
        count = f"{facts['gpu_count']}x " if facts["gpu_count"] > 1 else ""
        return (f"{count}{' / '.join(names)} ({vram} GB)",
                {"gpu_vendor": facts["gpu_vendor"], "gpu_count": facts["gpu_count"],
                 "gpu_vram_gb": {"gte": vram - 0.5, "lt": vram + 0.5}})
    if facts["gpu_vendor"] == "apple":
        memory = round(facts["memory_gb_total"])
        return f"{hw.cpu.name} ({memory} GB unified)", {"gpu_vendor": "apple", "memory_gb_total": {"gte": memory - 0.5, "lt": memory + 0.5}}
    return (f"CPU only, {facts['cpu_cores']} cores / {facts['cpu_threads']} threads",
            {"gpu_vendor": facts["gpu_vendor"], "cpu_cores": facts["cpu_cores"], "cpu_threads": facts["cpu_threads"]})
