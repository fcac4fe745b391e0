"""Stage 2, decide: map a hardware profile to a plan through the rule tables.

Pure: no probing, no launching. Every knob in the plan carries the rule that set it and
why; every user override or tuned value is recorded as a deviation naming what it replaced.

Memory estimate (GiB), used for both fit and `est_memory_gb`:
    weights  = GGUF file size
    kv_cache = 2 (K and V) x layers x kv_heads x head_dim x bytes_per_element x num_ctx x num_parallel
    est      = weights + kv_cache + runtime_overhead_gb
With partial offload each GPU layer costs weights/(layers+1) + kv_cache/layers (llama.cpp
counts the output layer as one more offloadable layer, so full offload is ngl = layers + 1).
"""

from __future__ import annotations

from typing import Any

from orchestrator.core.errors import BadInput, NothingFits
from orchestrator.plan import runtimes as runtime_definitions  # a module: it imports decide.plan back
from orchestrator.plan.probe import Hardware
from orchestrator.plan.profiles import ModelSpec, Profiles
from orchestrator.plan.decide.facts import BUDGET_FIELDS, fields_tested, hardware_facts, inferred_notes, rule_matches
from orchestrator.plan.decide.memory import Fit, fit_model, memory_budget
from orchestrator.plan.decide.plan import (INTEGER_LAUNCH_KNOBS, KNOB_CHOICES, KNOB_ORDER, LAUNCH_KNOBS, OVERRIDABLE, Deviation,
                                          MemoryBudget, Plan, Reason)

# The package's public names, imported from here across weeyuga.
__all__ = ["KNOB_ORDER", "Deviation", "MemoryBudget", "Plan", "Reason", "decide", "fit_model", "hardware_facts"]


class _Knobs:
    """Knob values with the reason for each, and deviations when something replaces a rule's value."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.reasons: dict[str, Reason] = {}
        self.deviations: list[Deviation] = []

    def set(self, knob: str, value: Any, rule_id: str, why: str) -> None:
        self.values[knob] = value
        self.reasons[knob] = Reason(knob, value, rule_id, why)

    def override(self, knob: str, value: Any, source: str) -> None:
        previous = self.reasons.get(knob)
        if previous is not None and previous.value == value:
            if source == "tuned":  # measured and confirmed: say so, though nothing deviated
                self.reasons[knob] = Reason(knob, value, "tuned", "measured best on this machine by weeyuga tune; "
                                            f"the rules ({previous.rule_id}) chose the same")
            return
        self.deviations.append(Deviation(knob, value, previous.value if previous else None,
                                         previous.rule_id if previous else "none", source))
        why = "set by the user" if source == "user" else "measured best on this machine by weeyuga tune"
        self.set(knob, value, source, why)


def _record_unused_gpus(knobs: _Knobs, hw: Hardware) -> None:
    """A CPU plan on a machine with a discrete GPU is never silent: the backend's reason names each
    GPU and why it is unused, and a deviation records it in the manifest and run.md."""
    unused = [g for g in hw.gpu if g.kind == "discrete"]
    if knobs.values["backend"] != "cpu" or not unused:
        return
    names = ", ".join(f"{g.name} (vendor {g.vendor}, " + ("VRAM unknown)" if g.vram_gb is None else f"{g.vram_gb:g} GB)")
                      for g in unused)
    reason = knobs.reasons["backend"]
    knobs.set("backend", "cpu", reason.rule_id, f"{reason.why}; discrete GPU not used: {names}")
    knobs.deviations.append(Deviation("backend", "cpu", f"gpu: {names}", reason.rule_id, "rule"))


def _resolve_threads(value: Any, hw: Hardware) -> int:
    if value == "physical_cores":
        return hw.cpu.cores
    if value == "logical_cores":
        return hw.cpu.threads
    return int(value)


def _check_overrides(overrides: dict[str, Any]) -> None:
    for knob, value in overrides.items():
        if knob not in OVERRIDABLE:
            raise BadInput(f"override {knob!r}: not a plan knob (knobs: {', '.join(KNOB_ORDER)})")
        if knob in ("ngl", "threads", "num_parallel", "max_loaded_models", "num_ctx", "num_predict"):
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if knob == "ngl" else 1):
                raise BadInput(f"override {knob}={value!r}: must be an integer >= {0 if knob == 'ngl' else 1}")
        if knob in INTEGER_LAUNCH_KNOBS and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise BadInput(f"override {knob}={value!r}: must be an integer >= 1")
        if knob in KNOB_CHOICES and value not in KNOB_CHOICES[knob]:
            raise BadInput(f"override {knob}={value!r}: must be one of {', '.join(KNOB_CHOICES[knob])}")
        if knob == "temperature" and (not isinstance(value, (int, float)) or not 0 <= value <= 2):
            raise BadInput(f"override temperature={value!r}: must be a number from 0 to 2")


def _choose_model(profiles: Profiles, knobs: _Knobs, offload: str, mem: MemoryBudget, budget: dict[str, float],
                  runtime: str) -> tuple[ModelSpec, str, Fit, str]:
    lo, hi = knobs.values["model_params_b"]
    num_ctx, num_parallel = knobs.values["num_ctx"], knobs.values["num_parallel"]
    definition = runtime_definitions.load_runtime(runtime)
    candidates = [m for m in profiles.models if definition.serves_model(m)]
    candidates.sort(key=lambda m: (m.params_b, m.quant().file_size_bytes), reverse=True)
    in_range = [m for m in candidates if lo <= m.params_b <= hi]
    for spec in in_range:
        fit = fit_model(spec, spec.default_quant, num_ctx, num_parallel, offload, mem, budget)
        if fit:
            return spec, spec.default_quant, fit, f"largest catalogue model in the tier's {lo:g}-{hi:g}B range that fits, {fit.how}"
    for spec in (m for m in candidates if m.params_b < lo):
        fit = fit_model(spec, spec.default_quant, num_ctx, num_parallel, offload, mem, budget)
        if fit:
            return spec, spec.default_quant, fit, (f"nothing in the tier's {lo:g}-{hi:g}B range fits the free memory; "
                                                   f"stepped down to the largest model that does, {fit.how}")
    smallest = min(candidates, key=lambda m: m.quant().file_size_bytes)
    need = fit_model(smallest, smallest.default_quant, num_ctx, 1, "none",
                     MemoryBudget(1e9, 0, "none"), budget).est_memory_gb
    raise NothingFits(
        f"no catalogue model fits: the smallest ({smallest.id}) needs {need:.2f} GB; this machine offers "
        f"{mem.usable_ram_gb:.2f} GB of RAM and {mem.usable_gpu_gb:.2f} GB of GPU memory after margins")


def decide(hw: Hardware, profiles: Profiles, overrides: dict[str, Any] | None = None,
           use_tuned: bool = True) -> Plan:
    """The plan for this hardware: rules (tier, adjustments, model pins) first, then tuned values,
    then the user's overrides."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    _check_overrides(overrides)
    rules = profiles.rules
    budget = rules["budget"]
    facts = hardware_facts(hw)
    knobs = _Knobs()

    canonical = profiles.canonical
    for knob, value in {**canonical["request_options"], **canonical["runtime_defaults"]}.items():
        knobs.set(knob, value, "canonical", "canonical methodology value")
    for knob, value in rules["defaults"]["set"].items():
        knobs.set(knob, value, "defaults", rules["defaults"]["why"])
    tiers = rules["tiers"]
    tier_index = next(i for i, t in enumerate(tiers) if rule_matches(t, facts))
    tier = tiers[tier_index]
    # The tiers before it were ruled out by the facts they test, so the choice rests on those too.
    tier_fields = fields_tested(tiers[:tier_index + 1])
    for knob, value in tier["set"].items():
        knobs.set(knob, value, tier["id"], tier["why"] + inferred_notes(hw, tier_fields))
    for rule in rules["adjustments"]:
        if rule_matches(rule, facts):
            for knob, value in rule["set"].items():
                knobs.set(knob, value, rule["id"], rule["why"] + inferred_notes(hw, fields_tested([rule])))
    knobs.set("threads", _resolve_threads(knobs.values["threads"], hw), knobs.reasons["threads"].rule_id,
              knobs.reasons["threads"].why)

    for knob in ("runtime", "backend", "num_parallel", "keep_alive", "max_loaded_models", "num_ctx", "threads",
                 "temperature", "num_predict"):
        if knob in overrides:
            knobs.override(knob, overrides[knob], "user")

    if "backend" not in overrides:
        _record_unused_gpus(knobs, hw)
    mem = memory_budget(hw, facts, budget)
    offload = knobs.values["offload"]
    if knobs.values["backend"] == "cpu":
        offload = "none"
    runtime = knobs.values["runtime"]
    budget_notes = inferred_notes(hw, tier_fields | (BUDGET_FIELDS if offload != "none" else set()))

    try:
        chosen = _choose_model(profiles, knobs, offload, mem, budget, runtime)
    except NothingFits:
        if "model" not in overrides:
            raise
        chosen = None
    if chosen:
        spec, quant, fit, why = chosen
        knobs.set("model", spec.id, tier["id"], why + budget_notes)
        knobs.set("quant", quant, tier["id"], "the catalogue's default quant for the model")
    if "model" in overrides:
        spec = profiles.model(overrides["model"])
        quant = overrides.get("quant") or spec.default_quant
        spec.quant(quant)
        knobs.override("model", spec.id, "user")
        knobs.override("quant", quant, "user")
        fit = fit_model(spec, quant, knobs.values["num_ctx"], knobs.values["num_parallel"],
                        "partial" if offload != "none" else "none", mem, budget)
        if fit is None and "ngl" not in overrides:
            need = fit_model(spec, quant, knobs.values["num_ctx"], knobs.values["num_parallel"], "none",
                             MemoryBudget(1e9, 0, "none"), budget).est_memory_gb
            raise NothingFits(f"model {spec.id} ({quant}) needs about {need:.2f} GB; this machine offers "
                              f"{mem.usable_ram_gb:.2f} GB of RAM and {mem.usable_gpu_gb:.2f} GB of GPU memory after margins")
        fit = fit or Fit(0, 0.0, 0.0, "")
    elif "quant" in overrides:
        raise BadInput("override quant: give --model with --quant")

    full = spec.layers + 1
    if fit.ngl == 0:
        ngl_why = "CPU-only plan: no layers on a GPU"
    elif fit.ngl >= full:
        ngl_why = f"all {spec.layers} layers plus the output layer fit the {mem.usable_gpu_gb:.1f} GB GPU budget"
    else:
        ngl_why = f"{fit.ngl} of {full} layers fit the {mem.usable_gpu_gb:.1f} GB GPU budget; the rest run on the CPU"
    knobs.set("ngl", fit.ngl, tier["id"], ngl_why + budget_notes)
    pin = next((p for p in rules.get("model_pins", []) if p["model"] == spec.id and p.get("quant", quant) == quant
                and rule_matches(p, facts)), None)
    for knob, value in (pin or {}).get("set", {}).items():
        if knob not in overrides:  # a measured pin replaces the estimate, not the user
            knobs.set(knob, value, pin["id"], pin["why"])

    for knob in LAUNCH_KNOBS:
        knobs.set(knob, None, "runtime-default", "not set: the runtime's own default")
    tuned = profiles.tuned_for(hw.device_tag).get("models", {}).get(spec.id, {}) if use_tuned else {}
    for knob in ("ngl", "threads", "num_parallel", *LAUNCH_KNOBS):
        if knob in tuned and knob not in overrides:
            knobs.override(knob, tuned[knob], "tuned")
    for knob in ("ngl", *LAUNCH_KNOBS):
        if knob in overrides:
            knobs.override(knob, overrides[knob], "user")

    values = knobs.values
    weights = spec.quant(quant).size_gb
    kv = spec.kv_cache_gb(values["num_ctx"] * values["num_parallel"], budget["kv_bytes_per_element"])
    est = weights + kv + budget["runtime_overhead_gb"]
    ngl = values["ngl"]
    gpu_share = 0.0 if ngl == 0 else min(1.0, ngl / full)
    return Plan(
        runtime=runtime, backend=values["backend"], model=spec.id, quant=quant,
        model_size_gb=round(weights, 3), ngl=ngl, num_parallel=values["num_parallel"],
        keep_alive=values["keep_alive"], max_loaded_models=values["max_loaded_models"], num_ctx=values["num_ctx"],
        threads=values["threads"], temperature=values["temperature"], num_predict=values["num_predict"],
        est_memory_gb=round(est, 3), est_gpu_memory_gb=round(est * gpu_share if mem.gpu_pool != "unified" else (est if ngl else 0), 3),
        layers_offloadable=full, tier=tier["id"], device_tag=hw.device_tag, budget=mem,
        reasons=[knobs.reasons[k] for k in KNOB_ORDER], deviations=knobs.deviations,
        **{k: values[k] for k in LAUNCH_KNOBS},
    )
