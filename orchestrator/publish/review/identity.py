"""Identity: the model is the one its id and quant name (the known sha256 and size in
profiles/models.yaml; unknown models are a warning) and the GGUF facts fit its file, and
hardware.json is the machine the run recorded and its runtime and samples saw."""

from __future__ import annotations

from typing import Any

from orchestrator import __version__
from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.plan.decide import decide
from orchestrator.plan.probe import Hardware
from orchestrator.plan.profiles import load_profiles
from orchestrator.publish.manifest import hardware_summary, knob_table
from orchestrator.publish.review.model import Finding, RunUnderReview, call_label, grouped, reject, tolerances, warn

CHECK = "identity"


def check(run: RunUnderReview) -> list[Finding]:
    return models(run) + cells(run) + machine(run)


def _knob(manifest: dict[str, Any], name: str) -> Any:
    return ((manifest.get("knobs") or {}).get(name) or {}).get("value")


def models(run: RunUnderReview) -> list[Finding]:
    profiles, findings = load_profiles(), []
    for entry in run.manifest.get("models") or []:
        model_id, quant = entry.get("model"), entry.get("quant")
        try:
            spec = profiles.model(model_id)
            known = spec.quant(quant) if quant else None
        except BadInput:
            findings.append(warn(CHECK, f"model {model_id} {quant or ''} is not in profiles/models.yaml: its digest is not checked"))
            continue
        if known is None or not known.sha256:
            findings.append(warn(CHECK, f"model {model_id} {quant or '(no quant)'}: no known digest to check"))
        elif entry.get("sha256") != known.sha256:
            findings.append(reject(CHECK, f"model {model_id} {quant}: sha256 {entry.get('sha256')} is not its known "
                                          f"digest {known.sha256} (another file under this name)"))
        if known is not None and known.file_size_bytes and entry.get("size_bytes") not in (None, known.file_size_bytes):
            findings.append(reject(CHECK, f"model {model_id} {quant}: {entry.get('size_bytes')} bytes, its file has "
                                          f"{known.file_size_bytes}"))
        facts = entry.get("roofline")
        if facts:
            findings += _facts(model_id, facts, entry.get("size_bytes"), spec.layers)
    return findings


def _facts(model_id: str, facts: dict[str, Any], size: int | None, layers: int | None) -> list[Finding]:
    """The GGUF facts (what the roofline rests on) must describe this model's file, not a smaller one."""
    findings = []
    if layers and facts.get("n_layer") != layers:
        findings.append(reject(CHECK, f"model {model_id}: the GGUF facts give {facts.get('n_layer')} layers; it has {layers}"))
    weights = sum(facts.get("layer_bytes") or []) + (facts.get("output_bytes") or 0) + (facts.get("other_bytes") or 0)
    dense = (facts.get("experts_active_share") or 1) >= 1
    if size and (weights > size * 1.01 or (dense and weights < size * tolerances().facts_min_share_of_file)):
        findings.append(reject(CHECK, f"model {model_id}: the GGUF facts add up to {weights} bytes of weights; "
                                      f"its file has {size}"))
    return findings


def cells(run: RunUnderReview) -> list[Finding]:
    named = {m.get("model") for m in run.manifest.get("models") or []}
    by_cell = {c.get("cell_id"): c.get("model") for c in run.meta.get("cells") or []}
    findings = [reject(CHECK, f"cell {cell} ran model {model}, which the manifest does not list")
                for cell, model in by_cell.items() if named and model not in named]
    wrong = [f"{call_label(c)}: {c.get('model')} on cell {c.get('cell_id')} ({by_cell.get(c.get('cell_id'))})"
             for c in run.calls if by_cell.get(c.get("cell_id")) != c.get("model")]
    return findings + grouped(CHECK, "a call names a model or cell the run did not have", wrong)


def machine(run: RunUnderReview) -> list[Finding]:
    findings: list[Finding] = []
    hardware = run.hardware or {}
    if hardware:
        recorded = run.manifest.get("hardware_summary")
        if recorded is not None and recorded != hardware_summary(Hardware.from_dict(hardware)):
            findings.append(reject(CHECK, "hardware.json is not the machine the manifest recorded at run time "
                                          "(hardware_summary differs)"))
    cpu = hardware.get("cpu") or {}
    threads, knob_threads = cpu.get("threads"), _knob(run.manifest, "threads")
    if threads and cpu.get("cores") and cpu["cores"] > threads:
        findings.append(reject(CHECK, f"hardware.json: {cpu['cores']} cores but {threads} threads"))
    if threads and isinstance(knob_threads, int) and knob_threads > threads:
        findings.append(reject(CHECK, f"the runtime ran {knob_threads} threads on a machine of {threads}"))
    gpus = hardware.get("gpu") or []
    backend = (run.manifest.get("runtime") or {}).get("backend") or _knob(run.manifest, "backend")
    ngl = _knob(run.manifest, "ngl")
    if isinstance(ngl, int) and ngl != 0 and backend not in (None, "cpu") and not gpus:
        findings.append(reject(CHECK, f"the runtime offloaded {ngl} layers ({backend}) on a machine with no GPU"))
    seen = any(c.get("peak_gpu_mem_used_mb") is not None for c in run.calls) or any(
        s.get("gpu_mem_used_mb") is not None or s.get("others_gpu_mem_mb") is not None for s in run.samples or ())
    nvidia = [g.get("name") for g in gpus if g.get("vendor") == "nvidia"]
    chosen = ((run.manifest.get("knobs") or {}).get("ngl") or {}).get("source") == "user"
    if nvidia and (ngl == 0 or backend == "cpu") and not chosen and not seen:
        findings.append(reject(CHECK, f"hardware.json claims {', '.join(nvidia)}, yet the run planned no offload "
                                      f"(ngl {ngl}, backend {backend}) and no sample saw a GPU"))
    return findings + replanned(run)


def replanned(run: RunUnderReview) -> list[Finding]:
    """hardware.json, planned again with the user's recorded choices, gives the knobs the rules gave the run."""
    knobs = run.manifest.get("knobs") or {}
    if not run.hardware or not knobs:
        return []
    chosen = {name: entry.get("value") for name, entry in knobs.items() if entry.get("source") == "user"}
    try:
        plan = decide(Hardware.from_dict(run.hardware), load_profiles(), chosen, use_tuned=False)
    except WeeyugaError as exc:
        return [warn(CHECK, f"the plan cannot be made again from hardware.json ({exc}): knobs not checked")]
    same_rules = run.meta.get("weeyuga_version") == __version__
    findings = []
    for name, again in knob_table(plan).items():
        entry = knobs.get(name) or {}
        if entry.get("source") == "rule" and again["source"] == "rule" and entry.get("value") != again["value"]:
            line = (f"knob {name}: the run used {entry.get('value')!r} (rule {entry.get('rule_id')}); the machine in "
                    f"hardware.json is planned {again['value']!r} (rule {again['rule_id']})")
            findings.append(reject(CHECK, line) if same_rules else
                            warn(CHECK, line + f"; the run's weeyuga {run.meta.get('weeyuga_version')} had other rules"))
    return findings
