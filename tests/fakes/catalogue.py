"""Synthetic submissions for the catalogue's tests and benchmark: copies of submissions/EXAMPLE under
new ids, spread over the golden machines of tests/fixtures/hardware, three models and varied rates,
some with `quality` and `agent_run` ledger lines (the record kinds of issues #14 and #15).
Deterministic: run i is the same folder every time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.core.paths import REPO_ROOT
from orchestrator.plan.probe import Hardware
from orchestrator.publish.manifest import hardware_summary

EXAMPLE = next((REPO_ROOT / "submissions" / "EXAMPLE").glob("*/run-*"))
MACHINES = sorted(p for p in (REPO_ROOT / "tests" / "fixtures" / "hardware").glob("*.json")
                  if not p.name.endswith(".plan.json"))
MODELS = [("smollm2-135m-instruct", "Q4_1"), ("qwen3.5-2b", "Q4_K_M"), ("llama3.2-3b", "Q8_0")]


def run_id(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-000000000000"


def quality_record(cell_id: str, scenario: int, passed: bool) -> dict[str, Any]:
    """The fields a `quality` line has (quality/records.py) that the catalogue reads."""
    return {"type": "quality", "cell_id": cell_id, "pack": "toolcall", "pack_version": 1,
            "scenario": f"toolcall-{scenario:02d}", "repeat_idx": 0, "verifier": "tool_call", "passed": passed,
            "failure_mode": "passed" if passed else "wrong_answer", "score": 1.0 if passed else 0.25,
            "level": "easy", "checks_met": 2 if passed else 1, "checks_asked": 2}


def agent_record(cell_id: str, task: str, passed: bool) -> dict[str, Any]:
    """An `agent_run` as orchestrator/agent writes it (kind in `record`), with the cell it ran on."""
    return {"record": "agent_run", "task": task, "task_version": 1, "workflow": "two-try", "attempt": 1,
            "cell_id": cell_id, "phase": "agent", "language": "python", "outcome": "completed" if passed else "budget",
            "completed_at": 1 if passed else None, "passes": 2, "duration_s": 41.0, "pass_at_1": passed,
            "pass_at_2": passed}


class SyntheticRuns:
    """Writes run folders like a contributor's, from the example's files."""

    def __init__(self) -> None:
        self.manifest = json.loads((EXAMPLE / "manifest.json").read_text())
        self.metadata = json.loads((EXAMPLE / "metadata.json").read_text())
        self.ledger = (EXAMPLE / "run.jsonl").read_bytes()
        self.machines = [json.loads(p.read_text()) for p in MACHINES]
        self.summaries = [hardware_summary(Hardware.from_dict(doc, "fixture")) for doc in self.machines]

    def write(self, root: Path, i: int, axes: bool | None = None) -> Path:
        """Run i under root; `axes` adds quality and agent lines (default: every tenth run)."""
        rid, handle = run_id(i), f"user{i % 97}"
        machine = i % len(self.machines)
        tag = self.machines[machine].get("device_tag") or f"device-{machine}"
        model, quant = MODELS[i % len(MODELS)]
        run_dir = root / handle / tag / f"run-{rid}"
        run_dir.mkdir(parents=True)
        cell_id = f"{tag}:llamacpp:{model}"
        speed = 0.5 + (i * 7919 % 1000) / 400  # spread rates 0.5x .. 3x, deterministically
        manifest = json.loads(json.dumps(self.manifest))
        manifest.update(run_id=rid, submitter_handle=handle, device_tag=tag, hardware_summary=self.summaries[machine],
                        started_at_utc=f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T00:00:00Z")
        manifest["cells"][0].update(cell_id=cell_id, model=model)
        manifest["models"][0].update(model=model, quant=quant)
        manifest["knobs"]["model"]["value"], manifest["knobs"]["quant"]["value"] = model, quant
        metadata = json.loads(json.dumps(self.metadata))
        metadata.update(run_id=rid, submitter_handle=handle, device_tag=tag)
        for row in metadata["cells"]:
            row["cell_id"] = cell_id
            for key in ("tokens_per_sec_mean", "tokens_per_sec_p50", "warm_tokens_per_sec_mean"):
                row[key] = round(row[key] * speed, 2)
            row["warm_first_delta_ms_p50"] = round(row["warm_first_delta_ms_p50"] / speed, 1)
        ledger = self.ledger
        if axes if axes is not None else i % 10 == 0:
            extra = [quality_record(cell_id, s, (i + s) % 3 != 0) for s in range(4)]
            extra += [agent_record(cell_id, f"task-{t}", (i + t) % 2 == 0) for t in range(2)]
            ledger += b"".join(json.dumps(r).encode() + b"\n" for r in extra)
        (run_dir / "manifest.json").write_text(json.dumps(manifest))
        (run_dir / "metadata.json").write_text(json.dumps(metadata))
        (run_dir / "hardware.json").write_text(json.dumps(self.machines[machine]))
        (run_dir / "run.jsonl").write_bytes(ledger)
        (run_dir / "run.md").write_text(f"# run {rid}\n")
        return run_dir

    def write_many(self, root: Path, n: int, start: int = 0) -> list[Path]:
        return [self.write(root, i) for i in range(start, start + n)]
