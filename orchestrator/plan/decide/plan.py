"""The plan: every knob with the rule that set it and why, deviations, and the memory budget it was fitted in."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.core.errors import BadInput

PLAN_VERSION = "plan-1"


@dataclass(frozen=True)
class Reason:
    knob: str
    value: Any
    rule_id: str
    why: str


@dataclass(frozen=True)
class Deviation:
    """A knob whose value differs from what the rules (or canonical table) chose."""

    knob: str
    value: Any
    replaced: Any
    overrode: str  # the rule id whose value was replaced
    source: str  # user | tuned | fallback (auto's embedded default when the planned model is absent) | rule (a discrete GPU left unused)


@dataclass(frozen=True)
class MemoryBudget:
    usable_ram_gb: float
    usable_gpu_gb: float  # 0 without a usable GPU; unified share on Apple
    gpu_pool: str  # none | discrete | unified


@dataclass(frozen=True)
class Plan:
    """A knob of profiles/knobs.yaml is a field here of the same name (a test holds them equal)."""

    runtime: str
    backend: str
    model: str
    quant: str
    model_size_gb: float
    ngl: int
    num_parallel: int
    keep_alive: str
    max_loaded_models: int
    num_ctx: int
    threads: int
    temperature: float
    num_predict: int
    est_memory_gb: float
    est_gpu_memory_gb: float
    layers_offloadable: int
    tier: str
    device_tag: str
    budget: MemoryBudget
    reasons: list[Reason]
    deviations: list[Deviation] = field(default_factory=list)
    schema_version: str = PLAN_VERSION
    flash_attn: str | None = None  # knobs.yaml runtime_default: None = the runtime's own default
    batch: int | None = None
    ubatch: int | None = None
    threads_batch: int | None = None
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    load_mode: str | None = None
    spec_type: str | None = None
    chat_template: str | None = None  # models.yaml: a template of runtimes/templates/ for a GGUF that carries none

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], source: str = "plan") -> "Plan":
        try:
            body = dict(doc)
            body["budget"] = MemoryBudget(**body["budget"])
            body["reasons"] = [Reason(**r) for r in body["reasons"]]
            body["deviations"] = [Deviation(**d) for d in body.get("deviations", [])]
            return cls(**body)
        except (KeyError, TypeError, ValueError) as exc:  # a missing field, an unknown one, or not a mapping at all
            raise BadInput(f"{source}: not a plan written by `weeyuga decide --out` ({type(exc).__name__}: {exc})") from None

    def reason(self, knob: str) -> Reason:
        return next(r for r in self.reasons if r.knob == knob)
