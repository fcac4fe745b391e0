"""Stage 2, decide: map a hardware profile to a plan through the rule tables.

Pure: no probing, no launching. Every knob in the plan carries the rule that set it and
why; every user override or tuned value is recorded as a deviation naming what it replaced.

Memory estimate (GiB; memory.estimate, the one used both to fit a model and to report the plan's
est_memory_gb / est_gpu_memory_gb):
    weights  = GGUF file size
    kv_cache = 2 (K and V) x layers x kv_heads x head_dim x bytes_per_element x num_ctx x num_parallel
    est      = weights + kv_cache + runtime_overhead_gb
With partial offload each GPU layer costs weights/(layers+1) + kv_cache/layers and the GPU also holds
the runtime overhead (llama.cpp counts the output layer as one more offloadable layer, so full
offload is ngl = layers + 1).
"""

from __future__ import annotations

from typing import Any

from orchestrator.core.errors import BadInput, NothingFits
from orchestrator.plan import runtimes as runtime_definitions  # a module: it imports decide.plan back
from orchestrator.plan.probe import Hardware
from orchestrator.plan.profiles import ModelSpec, Profiles
from orchestrator.plan.decide.facts import BUDGET_FIELDS, fields_tested, hardware_facts, inferred_notes, rule_matches
from orchestrator.plan.decide.memory import Fit, estimate, fit_model, memory_budget
from orchestrator.plan.decide.plan import Deviation, MemoryBudget, Plan, Reason
from orchestrator.plan.knobs import check_override, knob_names, launch_knobs, rules_stage_knobs, tunable_knobs

# The package's public names, imported from here across weeyuga.
__all__ = ["Deviation", "MemoryBudget", "Plan", "Reason", "decide", "fit_model", "hardware_facts"]


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
    for name, value in overrides.items():
        check_override(name, value)


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
    need = estimate(smallest, smallest.default_quant, num_ctx, 1, 0, "none", budget).total_gb
    raise NothingFits(
        f"no catalogue model fits: the smallest ({smallest.id}) needs {need:.2f} GB; this machine offers "
        f"{mem.usable_ram_gb:.2f} GB of RAM and {mem.usable_gpu_gb:.2f} GB of GPU memory after margins")


def _rule_values(hw: Hardware, profiles: Profiles, facts: dict[str, Any]) -> tuple[_Knobs, dict[str, Any], set[str]]:
    """The canonical table, the defaults, the first matching tier and every matching adjustment, in that order;
    returns the knobs, the tier, and the hardware fields the tier choice rests on."""
    rules = profiles.rules
    knobs = _Knobs()
    for knob in launch_knobs():
        knobs.set(knob, None, "runtime-default", "not set: the runtime's own default")
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
    return knobs, tier, tier_fields


def _place_model(profiles: Profiles, knobs: _Knobs, overrides: dict[str, Any], offload: str, mem: MemoryBudget,
                 budget: dict[str, float], tier: dict[str, Any], notes: str) -> tuple[ModelSpec, str, Fit]:
    """The largest catalogue model that fits (or the user's), its quant and its placement."""
    try:
        chosen = _choose_model(profiles, knobs, offload, mem, budget, knobs.values["runtime"])
    except NothingFits:
        if "model" not in overrides:
            raise
        chosen = None
    if chosen:
        spec, quant, fit, why = chosen
        knobs.set("model", spec.id, tier["id"], why + notes)
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
            need = estimate(spec, quant, knobs.values["num_ctx"], knobs.values["num_parallel"], 0, "none",
                            budget).total_gb
            raise NothingFits(f"model {spec.id} ({quant}) needs about {need:.2f} GB; this machine offers "
                              f"{mem.usable_ram_gb:.2f} GB of RAM and {mem.usable_gpu_gb:.2f} GB of GPU memory after margins")
        fit = fit or Fit(0, "")
    elif "quant" in overrides:
        raise BadInput("override quant: give --model with --quant")
    return spec, quant, fit


def _ngl_why(ngl: int, layers: int, mem: MemoryBudget) -> str:
    full = layers + 1
    if ngl == 0:
        return "CPU-only plan: no layers on a GPU"
    if ngl >= full:
        return f"all {layers} layers plus the output layer fit the {mem.usable_gpu_gb:.1f} GB GPU budget"
    return f"{ngl} of {full} layers fit the {mem.usable_gpu_gb:.1f} GB GPU budget; the rest run on the CPU"


def _measured_values(knobs: _Knobs, profiles: Profiles, hw: Hardware, facts: dict[str, Any], spec: ModelSpec,
                     quant: str, overrides: dict[str, Any], use_tuned: bool) -> None:
    """A model pin's measured values replace the estimate; this machine's tuned values and the user's replace both."""
    pin = next((p for p in profiles.rules.get("model_pins", []) if p["model"] == spec.id
                and p.get("quant", quant) == quant and rule_matches(p, facts)), None)
    for knob, value in (pin or {}).get("set", {}).items():
        if knob not in overrides:  # a measured pin replaces the estimate, not the user
            knobs.set(knob, value, pin["id"], pin["why"])
    tuned = profiles.tuned_for(hw.device_tag).get("models", {}).get(spec.id, {}) if use_tuned else {}
    for knob in tunable_knobs():
        if knob in tuned and knob not in overrides:
            knobs.override(knob, tuned[knob], "tuned")
    for knob in sorted(set(overrides) - set(rules_stage_knobs()) - {"model", "quant"}):  # the fit's: ngl, chat_template
        knobs.override(knob, overrides[knob], "user")


def decide(hw: Hardware, profiles: Profiles, overrides: dict[str, Any] | None = None,
           use_tuned: bool = True) -> Plan:
    """The plan for this hardware: rules (tier, adjustments, model pins) first, then tuned values,
    then the user's overrides."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    _check_overrides(overrides)
    budget = profiles.rules["budget"]
    facts = hardware_facts(hw)
    knobs, tier, tier_fields = _rule_values(hw, profiles, facts)
    for knob in rules_stage_knobs():
        if knob in overrides:
            knobs.override(knob, overrides[knob], "user")
    if "backend" not in overrides:
        _record_unused_gpus(knobs, hw)
    mem = memory_budget(hw, facts, budget)
    offload = "none" if knobs.values["backend"] == "cpu" else knobs.values["offload"]
    budget_notes = inferred_notes(hw, tier_fields | (BUDGET_FIELDS if offload != "none" else set()))
    spec, quant, fit = _place_model(profiles, knobs, overrides, offload, mem, budget, tier, budget_notes)
    knobs.set("ngl", fit.ngl, tier["id"], _ngl_why(fit.ngl, spec.layers, mem) + budget_notes)
    if spec.chat_template:
        knobs.set("chat_template", spec.chat_template, "models",
                  f"{spec.id}'s model file carries no chat template: {spec.chat_template} (runtimes/templates/) is the "
                  f"model's own format (without it llama-server falls back to ChatML)")
    _measured_values(knobs, profiles, hw, facts, spec, quant, overrides, use_tuned)

    values = knobs.values
    memory = estimate(spec, quant, values["num_ctx"], values["num_parallel"], values["ngl"], mem.gpu_pool, budget)
    return Plan(
        runtime=values["runtime"], backend=values["backend"], model=spec.id, quant=quant,
        model_size_gb=round(spec.quant(quant).size_gb, 3), ngl=values["ngl"], num_parallel=values["num_parallel"],
        keep_alive=values["keep_alive"], max_loaded_models=values["max_loaded_models"], num_ctx=values["num_ctx"],
        threads=values["threads"], temperature=values["temperature"], num_predict=values["num_predict"],
        est_memory_gb=round(memory.total_gb, 3), est_gpu_memory_gb=round(memory.gpu_gb, 3),
        layers_offloadable=spec.layers + 1, tier=tier["id"], device_tag=hw.device_tag, budget=mem,
        reasons=[knobs.reasons[k] for k in knob_names()], deviations=knobs.deviations,
        **{k: values[k] for k in launch_knobs()},
    )
