"""One memory estimate (issue #24): decide fits a model with it and the plan reports it."""

from __future__ import annotations

import pytest

from orchestrator.plan.decide import MemoryBudget, fit_model
from orchestrator.plan.decide.memory import estimate
from orchestrator.plan.profiles import load_profiles

PROFILES = load_profiles()
BUDGET = PROFILES.rules["budget"]
SPEC = PROFILES.model("qwen3.5-9b")


def test_the_estimate_is_weights_kv_and_overhead():
    memory = estimate(SPEC, "Q4_K_M", 4096, 2, 0, "none", BUDGET)
    kv = SPEC.kv_cache_gb(4096 * 2, BUDGET["kv_bytes_per_element"])
    assert memory.total_gb == pytest.approx(SPEC.quant("Q4_K_M").size_gb + kv + BUDGET["runtime_overhead_gb"])
    assert memory.gpu_gb == 0


@pytest.mark.parametrize("ngl_of_full,pool,share", [(1.0, "discrete", 1.0), (1.0, "unified", 1.0), (0.0, "discrete", 0.0)])
def test_the_gpu_part_follows_the_placement(ngl_of_full, pool, share):
    full = SPEC.layers + 1
    memory = estimate(SPEC, "Q4_K_M", 4096, 1, round(full * ngl_of_full), pool, BUDGET)
    assert memory.gpu_gb == pytest.approx(memory.total_gb * share)


def test_a_partial_fit_is_within_the_gpu_budget_by_the_same_estimate():
    budget = MemoryBudget(8, 3, "discrete")
    fit = fit_model(SPEC, "Q4_K_M", 4096, 1, "partial", budget, BUDGET)
    placed = estimate(SPEC, "Q4_K_M", 4096, 1, fit.ngl, "discrete", BUDGET)
    one_more = estimate(SPEC, "Q4_K_M", 4096, 1, fit.ngl + 1, "discrete", BUDGET)
    assert placed.gpu_gb <= budget.usable_gpu_gb < one_more.gpu_gb
