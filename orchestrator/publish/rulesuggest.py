"""`weeyuga rules suggest`: rule-table edits proposed from the tuned runs in the catalogue.

A run whose manifest records a knob with source "tuned" ran with what `weeyuga tune` measured
on that machine. Runs are grouped by hardware class (GPU vendor, name and VRAM; or the CPU's
cores and threads when there is no GPU), model and quant. Each group whose measured values
differ from what the current rules choose for that hardware becomes a `model_pins` entry for
a maintainer to review, with the runs behind it. Nothing is written: the YAML is printed.

Values across a group: NGL takes the smallest (a pin must fit every machine behind it; free
VRAM differs between them), threads and slots the median (lower middle on a tie).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.publish.catalogue import build_catalogue
from orchestrator.plan.decide.facts import hardware_class
from orchestrator.plan.decide import decide
from orchestrator.core.errors import WeeyugaError
from orchestrator.plan.probe import Hardware
from orchestrator.plan.knobs import tunable_knobs
from orchestrator.plan.profiles import Profiles
from orchestrator.core.runfolder import HARDWARE_NAME



@dataclass
class Evidence:
    path: str
    tuned: dict[str, Any]
    tokens_per_sec: float | None


@dataclass
class Suggestion:
    hardware: str  # e.g. "NVIDIA GeForce GTX 1060 6GB (6 GB)"
    model: str
    quant: str
    values: dict[str, int]  # what the tuned runs measured
    rules_now: dict[str, tuple[Any, str]]  # knob -> (value, rule id) the current tables choose
    pin: dict[str, Any]  # a model_pins entry, ready to paste
    runs: list[Evidence] = field(default_factory=list)

    def headline(self) -> str:
        def words(values: dict[str, Any]) -> str:
            parts = [f"NGL {values['ngl']}" if "ngl" in values else None,
                     f"{values['threads']} threads" if "threads" in values else None,
                     (f"{values['num_parallel']} slot" + ("s" if values["num_parallel"] != 1 else ""))
                     if "num_parallel" in values else None]
            return ", ".join(p for p in parts if p)

        now = ", ".join(f"{k} {v} ({rule})" for k, (v, rule) in self.rules_now.items())
        return f"{self.hardware} + {self.model} {self.quant}: {words(self.values)} (rules now: {now})"


@dataclass
class SuggestResult:
    suggestions: list[Suggestion]
    tuned_runs: int
    already_in_rules: list[str]  # groups whose tuned values the rules already choose
    unreadable: list[str]  # runs skipped, with the reason

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)



def _combine(knob: str, values: list[int]) -> int:
    return min(values) if knob == "ngl" else statistics.median_low(values)


def _pin_id(label: str, model: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", f"tuned {label} {model}".lower()).strip("-")[:80]


def _rate(entry: dict[str, Any]) -> float | None:
    rates = [row["tokens_per_sec_mean"] for row in entry["headline"] if row.get("tokens_per_sec_mean")]
    return round(statistics.mean(rates), 1) if rates else None


def suggest_rules(submissions: Path, profiles: Profiles, min_runs: int = 1) -> SuggestResult:
    catalogue = build_catalogue(submissions)
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    unreadable, tuned_runs = [], 0
    for entry in catalogue["runs"]:
        tuned = {k: v["value"] for k, v in entry["tuned"].items() if k in tunable_knobs()}
        if not tuned:
            continue
        tuned_runs += 1
        try:
            hw = Hardware.load(submissions / entry["path"] / HARDWARE_NAME)
        except (OSError, ValueError, WeeyugaError) as exc:
            unreadable.append(f"{entry['path']}: hardware.json unreadable ({exc})")
            continue
        label, when = hardware_class(hw)
        model, quant = entry["knobs"].get("model"), entry["knobs"].get("quant")
        group = groups.setdefault((label, model, quant), {"when": when, "hardware": hw, "runs": []})
        group["runs"].append(Evidence(entry["path"], tuned, _rate(entry)))

    suggestions, already = [], []
    for (label, model, quant), group in sorted(groups.items()):
        runs: list[Evidence] = group["runs"]
        if len(runs) < min_runs:
            continue
        knobs = sorted({k for run in runs for k in run.tuned})
        values = {k: _combine(k, [run.tuned[k] for run in runs if k in run.tuned]) for k in knobs}
        try:
            plan = decide(group["hardware"], profiles, {"model": model, "quant": quant}, use_tuned=False)
        except WeeyugaError as exc:
            unreadable.append(f"{label} + {model}: the current rules cannot plan it ({exc})")
            continue
        rules_now = {k: (getattr(plan, k), plan.reason(k).rule_id) for k in knobs}
        if all(rules_now[k][0] == v for k, v in values.items()):
            already.append(f"{label} + {model} {quant}")
            continue
        basis = "smallest NGL that ran on every machine" if "ngl" in values else "median of the runs"
        pin = {"id": _pin_id(label, model), "when": group["when"], "model": model, "quant": quant, "set": values,
               "why": f"Measured by weeyuga tune on {len(runs)} run(s) of {label} ({basis}).",
               "evidence": [run.path for run in runs]}
        suggestions.append(Suggestion(label, model, quant, values, rules_now, pin, runs))
    return SuggestResult(suggestions, tuned_runs, already, unreadable)


def render_suggestions(result: SuggestResult) -> str:
    if not result.suggestions:
        return (f"no rule edits to suggest ({result.tuned_runs} tuned run(s) in the catalogue; "
                f"{len(result.already_in_rules)} group(s) already match the rules)\n")
    lines = [f"{len(result.suggestions)} suggested edit(s) from {result.tuned_runs} tuned run(s). Review them, then add the "
             "entries under `model_pins:` in profiles/rules.yaml and run `weeyuga rules check`.", ""]
    for suggestion in result.suggestions:
        lines.append(suggestion.headline())
        for run in suggestion.runs:
            rate = f"{run.tokens_per_sec} tok/s" if run.tokens_per_sec is not None else "no rate"
            lines.append(f"  run {run.path}: tuned {run.tuned}, {rate}")
        lines.append("")
    lines.append("model_pins:")
    block = yaml.safe_dump([s.pin for s in result.suggestions], sort_keys=False, default_flow_style=None, width=110)
    lines += ["  " + line for line in block.splitlines()]
    return "\n".join(lines) + "\n"
