"""The device tag derived from the probed facts, such as `linux-rtx-4090-24gb-64gb`."""

from __future__ import annotations

import re

from orchestrator.plan.probe.document import CpuInfo, GpuInfo, OsInfo


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
