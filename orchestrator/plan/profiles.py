"""The rule tables in profiles/: canonical knobs, the model catalogue, the rules, tuned overrides.

Data only: loading, validation and typed views. Decisions live in the decide package.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput
from orchestrator.core.gguf import read_header
from orchestrator.core.paths import data_dir

GIB = 2**30
# general.file_type (llama.cpp's LLAMA_FTYPE) -> the quant name the catalogue uses
FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
              12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
              32: "BF16"}


@dataclass(frozen=True)
class QuantFile:
    name: str
    file_size_bytes: int
    sha256: str | None = None
    verified: bool = False
    huggingface: dict[str, str] | None = None
    pypi: list[dict[str, str]] | None = None

    @property
    def size_gb(self) -> float:
        return self.file_size_bytes / GIB


@dataclass(frozen=True)
class ModelSpec:
    id: str
    family: str
    params_b: float
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    context_length: int
    license: str
    default_quant: str
    quants: dict[str, QuantFile]
    ollama_tag: str | None = None
    chat_template: str | None = None  # a template of runtimes/templates/, for a GGUF that carries none

    def quant(self, name: str | None = None) -> QuantFile:
        key = name or self.default_quant
        if key not in self.quants:
            raise BadInput(f"model {self.id}: no quant {key!r} in the catalogue (have: {', '.join(sorted(self.quants))})")
        return self.quants[key]

    def kv_cache_gb(self, total_ctx: int, bytes_per_element: float) -> float:
        """K and V, every layer, every KV head, for all tokens of all slots."""
        return 2 * self.layers * self.kv_heads * self.head_dim * bytes_per_element * total_ctx / GIB


@dataclass(frozen=True)
class Profiles:
    canonical: dict[str, Any]
    models: list[ModelSpec]
    embedded_default: str
    rules: dict[str, Any]
    source_dir: Path
    tuned: dict[str, dict[str, Any]] = field(default_factory=dict)

    def model(self, model_id: str) -> ModelSpec:
        for spec in self.models:
            if spec.id == model_id:
                return spec
        known = ", ".join(m.id for m in self.models)
        raise BadInput(f"unknown model {model_id!r}; the catalogue has: {known}")

    def tuned_for(self, device_tag: str) -> dict[str, Any]:
        return self.tuned.get(device_tag, {})

    def with_model(self, spec: ModelSpec) -> "Profiles":
        """These profiles with one more model (a local GGUF outside the catalogue)."""
        return replace(self, models=[*(m for m in self.models if m.id != spec.id), spec])


def with_model_file(profiles: Profiles, overrides: dict[str, Any], path: str | None
                    ) -> tuple[Profiles, dict[str, Any], ModelSpec | None]:
    """`--model-path`: with `--model` the file stands for that catalogue model (its sha256 is still checked);
    without it the file is a model of its own, planned from its metadata and recorded as the user's model.
    Returns the profiles and overrides to plan with, and the local model's spec (None for a catalogue one)."""
    if path is None or "model" in overrides:
        return profiles, overrides, None
    spec = local_model_spec(Path(path))
    return profiles.with_model(spec), {**overrides, "model": spec.id}, spec


def local_model_spec(path: Path) -> ModelSpec:
    """A GGUF outside the catalogue, described by its own metadata: shape for the memory estimate, file size
    for the weights, the file type as its quant. Its id is `local-<file stem>`."""
    header = read_header(path)
    meta = header.metadata
    arch = meta.get("general.architecture")

    def number(key: str, default: Any = None) -> Any:
        value = meta.get(f"{arch}.{key}", default)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default

    layers, heads, width = number("block_count"), number("attention.head_count"), number("embedding_length")
    if not isinstance(arch, str) or not (layers and heads and width):
        raise BadInput(f"{path}: the GGUF does not say its architecture's block_count, attention.head_count and "
                       "embedding_length; weeyuga cannot estimate its memory")
    size = path.stat().st_size
    quant = FILE_TYPES.get(meta.get("general.file_type"), "local")
    params = meta.get("general.parameter_count")
    if not isinstance(params, int):
        params = sum(math.prod(tensor.shape) for tensor in header.tensors)
    stem = re.sub(r"[^a-z0-9.-]+", "-", path.stem.lower()).strip("-.")[:60] or "model"
    return ModelSpec(id=f"local-{stem}", family=arch,
                     params_b=round(params / 1e9, 3),
                     layers=layers, heads=heads, kv_heads=number("attention.head_count_kv", heads),
                     head_dim=number("attention.key_length", width // heads),
                     context_length=number("context_length", 4096), license="unknown (a local file)",
                     default_quant=quant, quants={quant: QuantFile(quant, size)})


def _model_spec(entry: dict[str, Any]) -> ModelSpec:
    attention = entry["attention"]
    quants = {name: QuantFile(name=name, **body) for name, body in entry["quants"].items()}
    return ModelSpec(
        id=entry["id"], family=entry["family"], params_b=float(entry["params_b"]), layers=entry["layers"],
        heads=attention["heads"], kv_heads=attention["kv_heads"], head_dim=attention["head_dim"],
        context_length=entry["context_length"], license=entry["license"], default_quant=entry["default_quant"],
        quants=quants, ollama_tag=entry.get("ollama_tag"),
        chat_template=entry.get("chat_template"),
    )


def _check_models(doc: dict[str, Any], source: str) -> list[ModelSpec]:
    specs, seen = [], set()
    for index, entry in enumerate(doc["models"]):
        if entry["id"] in seen:
            raise BadInput(f"{source}: field models[{index}].id: duplicate id {entry['id']!r}")
        seen.add(entry["id"])
        if entry["default_quant"] not in entry["quants"]:
            raise BadInput(f"{source}: field models[{index}].default_quant: {entry['default_quant']!r} is not in quants")
        for qname, quant in entry["quants"].items():
            if not (quant.get("huggingface") or quant.get("pypi")) and not entry.get("ollama_tag"):
                raise BadInput(f"{source}: field models[{index}].quants.{qname}: no source (huggingface, pypi or ollama_tag)")
        specs.append(_model_spec(entry))
    ids = {s.id for s in specs}
    if doc["embedded_default"] not in ids:
        raise BadInput(f"{source}: field embedded_default: {doc['embedded_default']!r} is not a catalogue id")
    return specs


def _check_rules(doc: dict[str, Any], source: str) -> None:
    seen: set[str] = set()
    for group in ("tiers", "adjustments", "model_pins"):
        for index, rule in enumerate(doc.get(group, [])):
            if rule["id"] in seen:
                raise BadInput(f"{source}: field {group}[{index}].id: duplicate rule id {rule['id']!r}")
            seen.add(rule["id"])
            lo_hi = rule["set"].get("model_params_b")
            if lo_hi and lo_hi[0] > lo_hi[1]:
                raise BadInput(f"{source}: field {group}[{index}].set.model_params_b: minimum above maximum")
    last = doc["tiers"][-1]
    if last["when"]:
        raise BadInput(f"{source}: field tiers[{len(doc['tiers']) - 1}].when: the last tier must match everything ({{}})")
    for index, tier in enumerate(doc["tiers"]):
        missing = {"backend", "offload", "model_params_b"} - set(tier["set"])
        if missing:
            raise BadInput(f"{source}: field tiers[{index}].set: a tier must set {', '.join(sorted(missing))}")


def load_tuned(directory: Path) -> dict[str, dict[str, Any]]:
    """profiles/local/<device-tag>.yaml files written by `weeyuga tune`."""
    tuned = {}
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
        doc = datafiles.load(path, "tuned")
        tuned[doc["device_tag"]] = doc
    return tuned


def load_profiles(directory: Path | None = None) -> Profiles:
    directory = directory or data_dir("profiles")
    canonical = datafiles.load(directory / "canonical.yaml", "canonical")
    models_doc = datafiles.load(directory / "models.yaml", "models")
    rules = datafiles.load(directory / "rules.yaml", "rules")
    _check_rules(rules, str(directory / "rules.yaml"))
    models = _check_models(models_doc, str(directory / "models.yaml"))
    known = {m.id: m for m in models}
    for index, pin in enumerate(rules.get("model_pins", [])):
        if pin["model"] not in known:
            raise BadInput(f"{directory / 'rules.yaml'}: field model_pins[{index}].model: {pin['model']!r} is not a catalogue id")
        if "quant" in pin and pin["quant"] not in known[pin["model"]].quants:
            raise BadInput(f"{directory / 'rules.yaml'}: field model_pins[{index}].quant: {pin['model']} has no quant {pin['quant']!r}")
    return Profiles(
        canonical=canonical,
        models=models,
        embedded_default=models_doc["embedded_default"],
        rules=rules,
        source_dir=directory,
        tuned=load_tuned(directory / "local"),
    )
