"""An index of every submitted run: deterministic, idempotent, and cheap at thousands of runs.

Reads only manifest.json and metadata.json of each `submissions/<handle>/<tag>/run-<id>/`
(never the ledgers), skips EXAMPLE, and lists invalid runs with the reason instead of stopping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import __version__, datafiles
from .errors import BadInput
from .runfolder import check_regular_files, run_identity
from .methodology import methodology

CATALOGUE_SCHEMA = "catalogue-1"
HEADLINE_FIELDS = ["cell_id", "phase", "n_calls", "n_errors", "tokens_per_sec_mean", "warm_first_delta_ms_p50",
                   "warm_total_duration_ms_p50", "success_rate"]


def run_dirs(root: Path) -> list[Path]:
    """Every `<handle>/<tag>/run-*` under root, links included (refused later, never followed)."""
    if not root.is_dir():
        raise BadInput(f"{root}: no such submissions folder")
    found = []
    for handle in sorted(root.iterdir()):
        if handle.name == "EXAMPLE" or not _real_dir(handle):
            continue
        for tag in sorted(handle.iterdir()):
            if _real_dir(tag):
                found += sorted(p for p in tag.glob("run-*") if p.is_symlink() or p.is_dir())
    return found


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def catalogue_entry(run_dir: Path, manifest: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    selected = manifest.get("phases_selected") or []
    canonical = manifest.get("canonical_phases") or methodology().legacy_phases
    missing = [p for p in canonical if p not in selected]
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
    runs, invalid = [], []
    for run_dir in run_dirs(root):
        where = "/".join(run_dir.parts[-3:])
        try:
            check_regular_files(run_dir)
            manifest = datafiles.load(run_dir / "manifest.json", "manifest")
            metadata = datafiles.load(run_dir / "metadata.json", "metadata")
            identity = run_identity(manifest, f"{run_dir / 'manifest.json'}")
        except BadInput as exc:
            invalid.append({"path": where, "reason": str(exc).replace(str(run_dir) + "/", "")})
            continue
        if f"run-{identity.run_id}" != run_dir.name:
            invalid.append({"path": where, "reason": "folder name does not match manifest run_id"})
            continue
        runs.append(catalogue_entry(run_dir, manifest, metadata))
    runs.sort(key=lambda r: (r["device_tag"] or "", r["submitter_handle"] or "", r["started_at_utc"] or "", r["run_id"]))
    return {"schema_version": CATALOGUE_SCHEMA, "generated_by": f"weeyuga {__version__} catalogue",
            "runs": runs, "invalid": invalid,
            "counts": {"runs": len(runs), "complete": sum(r["completeness"] == "complete" for r in runs),
                       "partial": sum(r["completeness"] == "partial" for r in runs), "invalid": len(invalid),
                       "failed": sum(r["completeness"] == "failed" for r in runs)}}
