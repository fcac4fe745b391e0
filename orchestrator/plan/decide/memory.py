"""The memory budget after margins, and fitting a model in it (the estimate in the package docstring)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from orchestrator.plan.probe import Hardware
from orchestrator.plan.profiles import ModelSpec
from orchestrator.plan.decide.plan import MemoryBudget


def memory_budget(hw: Hardware, facts: dict[str, Any], budget: dict[str, float]) -> MemoryBudget:
    usable_ram = hw.memory_gb_available_at_run_start - budget["ram_reserve_gb"] - budget["ram_reserve_fraction"] * hw.memory_gb_total
    usable_ram = max(0.0, usable_ram)
    vendor = facts["gpu_vendor"]
    if vendor == "apple":
        gpu = min(hw.memory_gb_total * budget["unified_gpu_fraction"], usable_ram)
        return MemoryBudget(round(usable_ram, 2), round(gpu, 2), "unified")
    if vendor in ("none", "other"):
        return MemoryBudget(round(usable_ram, 2), 0.0, "none")
    gpu = 0.0
    for g in hw.gpu:
        if g.vendor == vendor and g.kind == "discrete":
            free = g.vram_free_gb if g.vram_free_gb is not None else g.vram_gb or 0
            gpu += max(0.0, free - budget["vram_reserve_gb"])
    return MemoryBudget(round(usable_ram, 2), round(gpu, 2), "discrete")


@dataclass(frozen=True)
class MemoryEstimate:
    """What a model needs at a placement, in GiB: the whole, and the GPU's part of it."""

    total_gb: float  # weights + KV cache + runtime overhead
    gpu_gb: float  # the offloaded layers' share plus the overhead, or all of it on unified memory
    per_layer_gb: float  # one offloadable layer: weights/(layers+1) + kv/layers


def estimate(spec: ModelSpec, quant: str, num_ctx: int, num_parallel: int, ngl: int, gpu_pool: str,
             budget: dict[str, float]) -> MemoryEstimate:
    """The one memory estimate (pure): decide fits models with it and the plan reports it."""
    weights = spec.quant(quant).size_gb
    kv = spec.kv_cache_gb(num_ctx * num_parallel, budget["kv_bytes_per_element"])
    overhead = budget["runtime_overhead_gb"]
    total = weights + kv + overhead
    full_ngl = spec.layers + 1
    per_layer = weights / full_ngl + kv / spec.layers
    if ngl <= 0:
        gpu = 0.0
    elif gpu_pool == "unified" or ngl >= full_ngl:
        gpu = total
    else:
        gpu = min(total, ngl * per_layer + overhead)
    return MemoryEstimate(total, gpu, per_layer)


@dataclass(frozen=True)
class Fit:
    ngl: int
    how: str


def fit_model(spec: ModelSpec, quant: str, num_ctx: int, num_parallel: int, offload: str,
              mem: MemoryBudget, budget: dict[str, float]) -> Fit | None:
    """Place the model in this budget under an offload mode, or None if it does not fit."""
    full_ngl = spec.layers + 1
    whole = estimate(spec, quant, num_ctx, num_parallel, full_ngl, mem.gpu_pool, budget)
    if mem.gpu_pool == "unified":
        if offload != "none" and whole.total_gb <= mem.usable_gpu_gb:
            return Fit(full_ngl, "fully on the GPU in unified memory")
        return None
    if offload == "none" or mem.gpu_pool == "none":
        return Fit(0, "on the CPU") if whole.total_gb <= mem.usable_ram_gb else None
    if whole.total_gb <= mem.usable_gpu_gb:
        return Fit(full_ngl, "fully offloaded")
    if offload != "partial":
        return None
    overhead = budget["runtime_overhead_gb"]
    ngl = (min(spec.layers, math.floor((mem.usable_gpu_gb - overhead) / whole.per_layer_gb))
           if mem.usable_gpu_gb > overhead else 0)
    if ngl < 1:
        return None
    placed = estimate(spec, quant, num_ctx, num_parallel, ngl, mem.gpu_pool, budget)
    if placed.total_gb - placed.gpu_gb + overhead > mem.usable_ram_gb:  # the host keeps the rest (and its own overhead)
        return None
    return Fit(ngl, f"partially offloaded ({ngl} of {full_ngl} layers on the GPU)")
