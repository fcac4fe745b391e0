"""The catalogue's columnar export: one flat row per run × cell × phase, quality scenario or agent task.

Analysts query it without weeyuga (any Parquet reader: DuckDB, pandas, polars, Spark). Every row
repeats what describes the run (hardware class, runtime, engine version, model digest, knobs and
deviations), so a `GROUP BY` never needs a join. `record_kind` says which block of columns holds
the result; the other blocks are null:

- `phase`: a speed phase of one cell, from metadata.json's `cells` (the report's aggregates).
- `quality`: one `quality` line of run.jsonl (a verifier-scored scenario call; issue #14). The
  ledger field each column reads is in QUALITY_FIELDS, so a renamed record field is a data edit.
- `agent_task`: one `agent_run` line of run.jsonl (one task attempt; issue #15, the record
  orchestrator/agent writes, kind in `record` or `type`), via AGENT_FIELDS.

`knobs` and `deviations` are JSON text (`knobs->>'ngl'` in DuckDB). Values are checked against
their column's type here: a contributed ledger with `"score": "high"` makes its run invalid with
the line named, rather than failing the whole export.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.core.errors import BadInput

# (column, DuckDB type, what it holds). Append new columns at the end; never rename or reorder.
COLUMNS: list[tuple[str, str, str]] = [
    ("run_id", "VARCHAR", "the run's uuid"),
    ("run_path", "VARCHAR", "<handle>/<device-tag>/run-<id> under the submissions folder"),
    ("submitter_handle", "VARCHAR", "who ran it"),
    ("device_tag", "VARCHAR", "the contributor's name for the machine"),
    ("started_at_utc", "VARCHAR", "ISO 8601"),
    ("status", "VARCHAR", "the ledger's status: complete, interrupted, failed, running"),
    ("completeness", "VARCHAR", "complete, partial or failed (as in catalogue.json)"),
    ("hardware_class", "VARCHAR", "the machine class `weeyuga rules suggest` groups by: GPU and VRAM, Apple chip and memory, or CPU cores"),
    ("os", "VARCHAR", "operating system"),
    ("cpu", "VARCHAR", "CPU model"),
    ("cpu_cores", "INTEGER", "physical cores"),
    ("memory_gb", "DOUBLE", "total RAM"),
    ("gpu_name", "VARCHAR", "first GPU's name, null without one"),
    ("gpu_vram_gb", "DOUBLE", "first GPU's memory (null when shared with the CPU)"),
    ("gpu_count", "INTEGER", "GPUs in the machine"),
    ("container_or_vm", "VARCHAR", "container or VM the run was in, if any"),
    ("runtime", "VARCHAR", "llama.cpp or ollama"),
    ("engine_version", "VARCHAR", "the runtime's version (the cell's, else the run's)"),
    ("backend", "VARCHAR", "cpu, cuda, metal, vulkan, rocm"),
    ("model", "VARCHAR", "catalogue model id of this row's cell"),
    ("quant", "VARCHAR", "quantisation of that model"),
    ("model_digest", "VARCHAR", "sha256 of the GGUF or Ollama digest"),
    ("knobs", "VARCHAR", "JSON object: every plan knob's value in effect"),
    ("deviations", "VARCHAR", "JSON array: the manifest's deviations (overrides, tuned values, fallbacks)"),
    ("deviation_count", "INTEGER", "len(deviations)"),
    ("record_kind", "VARCHAR", "phase, quality or agent_task: which block below holds this row's result"),
    ("cell_id", "VARCHAR", "node:engine:model"),
    ("phase", "VARCHAR", "speed phase (hello, 5q, …); for quality and agent rows the phase that ran them"),
    ("n_calls", "INTEGER", "phase: calls made"),
    ("n_errors", "INTEGER", "phase: calls that failed"),
    ("success_rate", "DOUBLE", "phase: share of calls that succeeded"),
    ("tokens_per_sec_mean", "DOUBLE", "phase: mean decode tok/s over its calls"),
    ("tokens_per_sec_p50", "DOUBLE", "phase: median decode tok/s"),
    ("tokens_per_sec_p95", "DOUBLE", "phase: 95th percentile decode tok/s"),
    ("warm_tokens_per_sec_mean", "DOUBLE", "phase: mean decode tok/s of warm calls"),
    ("ttft_ms_p50", "DOUBLE", "phase: median time to first token (first_delta_ms)"),
    ("warm_ttft_ms_p50", "DOUBLE", "phase: median time to first token of warm calls"),
    ("warm_total_duration_ms_p50", "DOUBLE", "phase: median call duration of warm calls"),
    ("completion_tokens_total", "BIGINT", "phase: tokens generated"),
    ("format_ok_rate", "DOUBLE", "phase: share of answers passing the suite's format check"),
    ("quality_pack", "VARCHAR", "quality: pack id"),
    ("quality_pack_version", "VARCHAR", "quality: pack version (a number is kept as text)"),
    ("quality_scenario", "VARCHAR", "quality: scenario id"),
    ("quality_repeat", "INTEGER", "quality: repeat index"),
    ("quality_verifier", "VARCHAR", "quality: verifier kind"),
    ("quality_passed", "BOOLEAN", "quality: the verifier's verdict"),
    ("quality_score", "DOUBLE", "quality: score in [0, 1]"),
    ("quality_failure_mode", "VARCHAR", "quality: why it failed"),
    ("agent_task", "VARCHAR", "agent_task: task id"),
    ("agent_task_version", "INTEGER", "agent_task: task version"),
    ("agent_language", "VARCHAR", "agent_task: programming language"),
    ("agent_workflow", "VARCHAR", "agent_task: ralph or two-try"),
    ("agent_attempt", "INTEGER", "agent_task: attempt at the task (a resumed task's later attempt wins)"),
    ("agent_outcome", "VARCHAR", "agent_task: completed, stagnated, budget, fault, skipped or interrupted"),
    ("agent_passed", "BOOLEAN", "agent_task: outcome is completed (the task's tests passed in the end)"),
    ("agent_pass_at_1", "BOOLEAN", "agent_task: two-try only: passed after try 1"),
    ("agent_pass_at_2", "BOOLEAN", "agent_task: two-try only: passed after try 1 or try 2"),
    ("agent_completed_at", "INTEGER", "agent_task: the pass (ralph) or try (two-try) that passed the gate"),
    ("agent_passes", "INTEGER", "agent_task: passes or tries used"),
    ("agent_duration_s", "DOUBLE", "agent_task: wall time"),
    ("contended", "BOOLEAN", "other processes contended this row's cell and phase (metadata.json contended_phases; "
                             "`weeyuga catalogue --exclude-contended` leaves such rows out of --query and --html)"),
    ("decode_roofline_fraction", "DOUBLE", "phase: median decode tok/s / the memory-bandwidth roofline at the call's context"),
    ("quality_level", "VARCHAR", "quality: the scenario's tier: easy, medium or hard"),
    ("quality_checks_met", "INTEGER", "quality: checks met, where the scenario has several (check-level accuracy)"),
    ("quality_checks_asked", "INTEGER", "quality: checks the scenario asks"),
]
COLUMN_TYPES = {name: kind for name, kind, _ in COLUMNS}
ROW_KINDS = ("phase", "quality", "agent_task")

# metadata.json `cells` field each phase column reads.
PHASE_FIELDS = {"n_calls": "n_calls", "n_errors": "n_errors", "success_rate": "success_rate",
                "tokens_per_sec_mean": "tokens_per_sec_mean", "tokens_per_sec_p50": "tokens_per_sec_p50",
                "tokens_per_sec_p95": "tokens_per_sec_p95", "warm_tokens_per_sec_mean": "warm_tokens_per_sec_mean",
                "ttft_ms_p50": "first_delta_ms_p50", "warm_ttft_ms_p50": "warm_first_delta_ms_p50",
                "warm_total_duration_ms_p50": "warm_total_duration_ms_p50",
                "completion_tokens_total": "completion_tokens_total", "format_ok_rate": "format_ok_rate"}
# run.jsonl `quality` and `agent_run` record fields (issues #14, #15) each column reads.
QUALITY_FIELDS = {"quality_pack": "pack", "quality_pack_version": "pack_version", "quality_scenario": "scenario",
                  "quality_repeat": "repeat_idx", "quality_verifier": "verifier", "quality_passed": "passed",
                  "quality_score": "score", "quality_failure_mode": "failure_mode", "quality_level": "level",
                  "quality_checks_met": "checks_met", "quality_checks_asked": "checks_asked"}
AGENT_FIELDS = {"agent_task": "task", "agent_task_version": "task_version", "agent_language": "language",
                "agent_workflow": "workflow", "agent_attempt": "attempt", "agent_outcome": "outcome",
                "agent_pass_at_1": "pass_at_1", "agent_pass_at_2": "pass_at_2", "agent_completed_at": "completed_at",
                "agent_passes": "passes", "agent_duration_s": "duration_s"}
LEDGER_KINDS = {"quality": ("quality", QUALITY_FIELDS), "agent_run": ("agent_task", AGENT_FIELDS)}
# A ledger line's kind: its `type`, or for the agent suite's records (orchestrator/agent) their `record`.
KIND_FIELDS = ("type", "record")


def ledger_kind(record: dict[str, Any]) -> str | None:
    return next((record[f] for f in KIND_FIELDS if isinstance(record.get(f), str) and record[f] in LEDGER_KINDS), None)
INT64 = 2**63


def typed(column: str, value: Any, source: str) -> Any:
    """`value` as the column's type, or BadInput naming the source and column."""
    if value is None:
        return None
    kind = COLUMN_TYPES[column]
    if kind == "VARCHAR":  # a version may be a number
        value = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        ok = isinstance(value, str)
    elif kind == "BOOLEAN":
        ok = isinstance(value, bool)
    elif kind == "DOUBLE":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:  # INTEGER, BIGINT
        limit = 2**31 if kind == "INTEGER" else INT64
        ok = isinstance(value, int) and not isinstance(value, bool) and -limit <= value < limit
    if not ok:
        raise BadInput(f"{source}: field for {column}: {str(value)[:40]!r} is not a {kind.lower()}")
    return float(value) if kind == "DOUBLE" else value


def run_columns(path: str, manifest: dict[str, Any], hardware_class: str | None) -> dict[str, Any]:
    """The columns every row of this run repeats (model, quant and digest are filled per cell)."""
    summary = manifest.get("hardware_summary") or {}
    gpus = summary.get("gpus") or []
    runtime = manifest.get("runtime") or {}
    knobs = {name: knob.get("value") for name, knob in sorted((manifest.get("knobs") or {}).items())}
    deviations = manifest.get("deviations") or []
    return {"run_id": manifest["run_id"], "run_path": path, "submitter_handle": manifest.get("submitter_handle"),
            "device_tag": manifest.get("device_tag"), "started_at_utc": manifest.get("started_at_utc"),
            "status": manifest.get("status"), "hardware_class": hardware_class, "os": summary.get("os"),
            "cpu": summary.get("cpu"), "cpu_cores": summary.get("cores"), "memory_gb": summary.get("memory_gb_total"),
            "gpu_name": gpus[0].get("name") if gpus else None, "gpu_vram_gb": gpus[0].get("vram_gb") if gpus else None,
            "gpu_count": len(gpus), "container_or_vm": summary.get("container_or_vm"),
            "runtime": runtime.get("name"), "backend": runtime.get("backend"),
            "knobs": json.dumps(knobs, sort_keys=True), "deviations": json.dumps(deviations, sort_keys=True),
            "deviation_count": len(deviations)}


def cell_columns(manifest: dict[str, Any], cell_id: str | None) -> dict[str, Any]:
    """Model, quant, digest and engine version of one cell (the run's knobs where the cell is silent)."""
    knobs = manifest.get("knobs") or {}
    cell = next((c for c in manifest.get("cells") or [] if c.get("cell_id") == cell_id), {})
    model = cell.get("model") or (knobs.get("model") or {}).get("value")
    listed = next((m for m in manifest.get("models") or [] if m.get("model") == model), {})
    return {"cell_id": cell_id, "model": model, "quant": listed.get("quant") or (knobs.get("quant") or {}).get("value"),
            "model_digest": cell.get("model_digest") or listed.get("sha256") or listed.get("digest"),
            "engine_version": cell.get("engine_version") or (manifest.get("runtime") or {}).get("engine_version")}


def run_rows(path: str, manifest: dict[str, Any], metadata: dict[str, Any], ledger_records: list[tuple[int, dict]],
             completeness: str, hardware_class: str | None) -> list[dict[str, Any]]:
    """Every row of one run, typed and in column order. `ledger_records`: (line number, record) of
    the run.jsonl lines whose type is in LEDGER_KINDS."""
    common = run_columns(path, manifest, hardware_class) | {"completeness": completeness}
    contended = {(f.get("cell_id"), f.get("phase")) for f in metadata.get("contended_phases") or [] if isinstance(f, dict)}
    rows = []
    roofline = {(r.get("cell_id"), r.get("phase")): r.get("utilisation") for r in metadata.get("memory_bandwidth_utilisation") or []}
    for cell in metadata.get("cells") or []:
        fields = {column: cell.get(name) for column, name in PHASE_FIELDS.items()}
        fields["decode_roofline_fraction"] = roofline.get((cell.get("cell_id"), cell.get("phase")))
        rows.append(_row(common | cell_columns(manifest, cell.get("cell_id")) | fields,
                         "phase", cell.get("phase"), f"{path}/metadata.json", contended))
    for line, record in ledger_records:
        kind, mapping = LEDGER_KINDS[ledger_kind(record)]
        fields = {column: record.get(name) for column, name in mapping.items()}
        if kind == "agent_task" and isinstance(record.get("outcome"), str):
            fields["agent_passed"] = record["outcome"] == "completed"
        cell_id = record.get("cell_id") if isinstance(record.get("cell_id"), str) else None
        rows.append(_row(common | cell_columns(manifest, cell_id) | fields, kind, record.get("phase"),
                         f"{path}/run.jsonl line {line}", contended))
    return rows


def _row(values: dict[str, Any], kind: str, phase: Any, source: str, contended: set[tuple[Any, Any]]) -> dict[str, Any]:
    values |= {"record_kind": kind, "phase": phase, "contended": (values.get("cell_id"), phase) in contended}
    return {column: typed(column, values.get(column), source) for column in COLUMN_TYPES}
