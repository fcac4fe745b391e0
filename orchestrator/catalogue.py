"""An index of every submitted run: deterministic, idempotent, and cheap at thousands of runs.

Reads only manifest.json and metadata.json of each `submissions/<handle>/<tag>/run-<id>/`
(never the ledgers), skips EXAMPLE, and lists invalid runs with the reason instead of stopping.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from . import __version__, datafiles
from .suites import PHASES

CATALOGUE_SCHEMA = "catalogue-1"
HEADLINE_FIELDS = ["cell_id", "phase", "n_calls", "n_errors", "tokens_per_sec_mean", "warm_first_delta_ms_p50",
                   "warm_total_duration_ms_p50", "success_rate"]


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*/run-*") if p.is_dir() and p.parts[-3] != "EXAMPLE")


def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(datafiles.schema(name))


def catalogue_entry(run_dir: Path, manifest: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    selected = manifest.get("phases_selected") or []
    missing = [p for p in PHASES if p not in selected]
    if manifest.get("status") == "failed":  # no result at all, not a partial one
        completeness, why = "failed", f"status failed: {manifest.get('status_reason') or 'the run stopped with an error'}"
    elif manifest.get("status") != "complete":
        completeness, why = "partial", f"status {manifest.get('status')}"
    elif missing:
        completeness, why = "partial", "phases not run: " + ", ".join(missing)
    else:
        completeness, why = "complete", None
    knobs = manifest.get("knobs") or {}
    return {
        "run_id": manifest["run_id"],
        "path": "/".join(run_dir.parts[-3:]),
        "submitter_handle": manifest.get("submitter_handle"),
        "device_tag": manifest.get("device_tag"),
        "started_at_utc": manifest.get("started_at_utc"),
        "hardware": manifest.get("hardware_summary"),
        "runtime": {k: (manifest.get("runtime") or {}).get(k) for k in ("name", "engine_version", "backend", "managed")},
        "knobs": {k: v.get("value") for k, v in knobs.items()},
        # What `weeyuga tune` measured on that machine, and what the rules had chosen instead.
        "tuned": {k: {"value": v.get("value"), "replaced": v.get("replaced"), "overrode": v.get("overrode")}
                  for k, v in sorted(knobs.items()) if v.get("source") == "tuned"},
        "models": sorted({c["model"] for c in manifest.get("cells", [])}),
        "phases": selected,
        "completeness": completeness,
        "partial_reason": why,
        "deviations": len(manifest.get("deviations") or []),
        "headline": [{k: row.get(k) for k in HEADLINE_FIELDS} for row in metadata.get("cells", [])],
        "status": manifest.get("status"),
    }


def build_catalogue(root: Path) -> dict[str, Any]:
    manifest_check, metadata_check = _validator("manifest"), _validator("metadata")
    runs, invalid = [], []
    for run_dir in run_dirs(root):
        where = "/".join(run_dir.parts[-3:])
        try:
            manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
            metadata = json.loads((run_dir / "metadata.json").read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            invalid.append({"path": where, "reason": f"missing {Path(exc.filename).name}"})
            continue
        except (OSError, ValueError) as exc:
            invalid.append({"path": where, "reason": f"unreadable: {exc}"})
            continue
        for name, doc, validator in (("manifest.json", manifest, manifest_check), ("metadata.json", metadata, metadata_check)):
            error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
            if error is not None:
                invalid.append({"path": where, "reason": f"{name}: field {datafiles.field_path(error.absolute_path)}: {error.message}"})
                break
        else:
            if f"run-{manifest['run_id']}" != run_dir.name:
                invalid.append({"path": where, "reason": "folder name does not match manifest run_id"})
                continue
            runs.append(catalogue_entry(run_dir, manifest, metadata))
    runs.sort(key=lambda r: (r["device_tag"] or "", r["submitter_handle"] or "", r["started_at_utc"] or "", r["run_id"]))
    return {"schema_version": CATALOGUE_SCHEMA, "generated_by": f"weeyuga {__version__} catalogue",
            "runs": runs, "invalid": invalid,
            "counts": {"runs": len(runs), "complete": sum(r["completeness"] == "complete" for r in runs),
                       "partial": sum(r["completeness"] == "partial" for r in runs), "invalid": len(invalid),
                       "failed": sum(r["completeness"] == "failed" for r in runs)}}
