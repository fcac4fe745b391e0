"""Stage 5, record: manifest.json, generated from the ledger and the run's context, never by hand.

It holds the canonical options and every override, the plan's runtime knobs with their
sources (rule, user, tuned), knobs the runtime ignores, skipped phases and cells with
reasons, engine version and build, model digests, and a hardware summary.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from orchestrator.core import datafiles
from orchestrator.plan.decide import Plan
from orchestrator.plan.knobs import knob_names
from orchestrator.core.canonical import request_option_names
from orchestrator.core.errors import BadInput, os_failure
from orchestrator.core.ledger import read_state
from orchestrator.core.urls import strip_url_credentials
from orchestrator.plan.probe import Hardware
from orchestrator.measure.suites import PHASES
from orchestrator.core.runfolder import HARDWARE_NAME, LEDGER_NAME, MANIFEST_NAME

MANIFEST_SCHEMA = "manifest-1"


@dataclass
class RunContext:
    """What the runner does not know by itself: the plan, the runtime and model files, the machine."""

    plan: Plan | None = None
    runtime: dict[str, Any] | None = None  # name, managed, engine_version, backend, source, build, argv, unsupported
    models: list[dict[str, Any]] = field(default_factory=list)  # model, quant, sha256 or digest, source
    hardware: Hardware | None = None
    canonical: dict[str, Any] = field(default_factory=dict)  # the canonical table's request options and defaults
    # Deviations found after planning, in manifest form (a GPU plan whose runtime install is CPU-only).
    deviations: list[dict[str, Any]] = field(default_factory=list)
    budget_plan: dict[str, Any] | None = None  # auto's plan per axis within --time-budget (budget.py)


def write_text_atomic(path: Path, text: str | Iterable[str]) -> None:
    """Write-then-rename so a crash never leaves half a file where a whole one was; the temporary
    file never outlives a failure (full disk, a folder in the way, a missing parent). `text` may
    come in pieces (the catalogue's tens of megabytes, never joined in memory)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines([text] if isinstance(text, str) else text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise os_failure(path, exc) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, document: Any) -> None:
    """Valid JSON only: a NaN or infinity is a bug to surface here, never a bare `NaN` in the file."""
    write_text_atomic(path, strip_url_credentials(json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)) + "\n")


def knob_table(plan: Plan) -> dict[str, Any]:
    """Every plan knob: its value, where it came from, and what it replaced when it deviates."""
    deviations = {d.knob: d for d in plan.deviations}
    reasons = {r.knob: r for r in plan.reasons}
    table = {}
    for knob in knob_names():
        reason = reasons.get(knob)
        source = "tuned" if reason and reason.rule_id == "tuned" else "rule"  # tuned, equal to the rule's value
        entry = {"value": getattr(plan, knob), "source": source, "rule_id": reason.rule_id if reason else None,
                 "why": reason.why if reason else None}
        if knob in deviations:
            d = deviations[knob]
            entry.update(source=d.source, replaced=d.replaced, overrode=d.overrode)
        table[knob] = entry
    return table


def hardware_summary(hw: Hardware) -> dict[str, Any]:
    return {"device_tag": hw.device_tag, "os": f"{hw.os.name} {hw.os.version}", "cpu": hw.cpu.name,
            "cores": hw.cpu.cores, "threads": hw.cpu.threads, "memory_gb_total": hw.memory_gb_total,
            "gpus": [{"name": g.name, "vram_gb": g.vram_gb, "kind": g.kind} for g in hw.gpu],
            "container_or_vm": hw.container_or_vm, "on_battery": hw.on_battery, "low_power": hw.low_power}


def build_manifest(run_dir: Path, context: RunContext, status: str) -> dict[str, Any]:
    state = read_state(run_dir / LEDGER_NAME)
    meta = state.meta or {}
    options = meta.get("options", {})
    skipped_cells = [{"cell_id": r["cell_id"], "reason": r["reason"]} for r in state.records
                     if r.get("type") == "skipped" and r.get("phase") is None]
    skipped_phases = [{"cell_id": r["cell_id"], "phase": r["phase"], "reason": r["reason"]} for r in state.records
                      if r.get("type") == "skipped" and r.get("phase") is not None]
    selected = options.get("phases", [])
    notes = meta.get("phase_notes") or {}
    skipped_phases += [{"cell_id": None, "phase": p, "reason": notes.get(p, "not selected for this run")}
                       for p in PHASES if p not in selected]
    deviations = []
    overrides = meta.get("canonical_overrides", {})
    for option, change in overrides.items():
        deviations.append({"knob": option, "value": change["value"], "replaced": change["canonical"],
                           "source": "user", "kind": "canonical_option"})
    plan = context.plan
    if plan:
        deviations += [{"knob": d.knob, "value": d.value, "replaced": d.replaced, "source": d.source,
                        "overrode": d.overrode, "kind": "plan_knob"} for d in plan.deviations if d.knob not in overrides]
        defaults = {**context.canonical.get("request_options", {}), **context.canonical.get("runtime_defaults", {})}
        for knob, canonical_value in defaults.items():
            value = getattr(plan, knob)
            if value != canonical_value and knob not in {d["knob"] for d in deviations}:
                reason = plan.reason(knob)
                deviations.append({"knob": knob, "value": value, "replaced": canonical_value, "source": "rule",
                                   "overrode": "canonical", "rule_id": reason.rule_id, "why": reason.why,
                                   "kind": "runtime_default"})
    deviations += context.deviations
    if options.get("smoke"):
        deviations.append({"knob": "smoke", "value": True, "replaced": False, "source": "user", "kind": "mode",
                           "why": "smoke run: one item per phase (two lanes in parallel phases), no warm repeats"})
    if options.get("runs") not in (None, 5):
        deviations.append({"knob": "runs", "value": options["runs"], "replaced": 5, "source": "user", "kind": "mode"})
    events = [r for r in state.records if r.get("type") in ("resume", "end")]
    last = state.records[-1] if state.records else {}
    # A run that ran to its end can still fail (no call succeeded); its end line says why.
    status_reason = last.get("status_reason") if status == "failed" and last.get("type") == "end" else None
    return {
        "schema_version": MANIFEST_SCHEMA,
        "run_id": meta.get("benchmark_run_id"),
        "status": status,
        "submitter_handle": meta.get("submitter_handle"),
        "device_tag": meta.get("device_tag"),
        "harness_version": meta.get("harness_version"),
        "weeyuga_version": meta.get("weeyuga_version"),
        "git_sha": meta.get("git_sha"),
        "git_dirty": meta.get("git_dirty"),
        "started_at_utc": meta.get("started_at_utc"),
        "finished_at_utc": next((r["finished_at_utc"] for r in reversed(events) if r["type"] == "end"), None),
        "resumed": sum(r["type"] == "resume" for r in events),
        "canonical_options": context.canonical.get("request_options", {}),
        "options_in_effect": {k: options.get(k) for k in (*request_option_names(), "runs")},
        "canonical_options_overrides": overrides,
        "knobs": knob_table(plan) if plan else None,
        "plan": {"tier": plan.tier, "est_memory_gb": plan.est_memory_gb, "est_gpu_memory_gb": plan.est_gpu_memory_gb}
        if plan else None,
        "deviations": deviations,
        "runtime": context.runtime,
        "models": context.models,
        "cells": meta.get("cells", []),
        "phases_selected": selected,
        "phases_skipped": skipped_phases,
        "cells_skipped": skipped_cells,
        "suites": meta.get("suites", {}),
        "gates": meta.get("gates", {}),
        "hardware_summary": hardware_summary(context.hardware) if context.hardware else None,
        "command": meta.get("command", []),
        "status_reason": status_reason,
        "canonical_phases": PHASES,  # the catalogue judges completeness against the list of the run's time
        "sandbox": options.get("sandbox"),  # where model-written code ran: kind, image, digest, how it was built
        "prompt_cache": meta.get("prompt_cache"),  # what timed calls asked of the prompt cache, per cell
        **({"budget_plan": context.budget_plan} if context.budget_plan else {}),
    }


def load_context(run_dir: Path) -> RunContext | None:
    """The context an earlier invocation recorded, for resumes that were not given one."""
    path = run_dir / "context.json"
    if not path.exists():
        return None
    doc = datafiles.read_json(path)
    if not isinstance(doc, dict):
        raise BadInput(f"{path}: not a JSON object; the run's context is damaged")
    hw_path = run_dir / HARDWARE_NAME
    return RunContext(plan=Plan.from_dict(doc["plan"], f"{path}: field plan") if doc.get("plan") else None, runtime=doc.get("runtime"),
                      models=doc.get("models", []), hardware=Hardware.load(hw_path) if hw_path.exists() else None,
                      canonical=doc.get("canonical", {}), deviations=doc.get("deviations", []),
                      budget_plan=doc.get("budget_plan"))


def record(run_dir: Path, context: RunContext | None, status: str) -> Path:
    """Write context.json, hardware.json (if known) and manifest.json for a run folder."""
    run_dir.mkdir(parents=True, exist_ok=True)
    context = context or load_context(run_dir) or RunContext()
    write_json_atomic(run_dir / "context.json", {
        "plan": context.plan.to_dict() if context.plan else None, "runtime": context.runtime,
        "models": context.models, "canonical": context.canonical, "deviations": context.deviations,
        "budget_plan": context.budget_plan})
    if context.hardware is not None:
        write_json_atomic(run_dir / HARDWARE_NAME, context.hardware.to_dict())
    path = run_dir / MANIFEST_NAME
    write_json_atomic(path, build_manifest(run_dir, context, status))
    return path
