"""`weeyuga rules check`: validate the rule tables and replay every golden machine.

A golden fixture is tests/fixtures/hardware/<name>.json (a hardware.json) beside
<name>.plan.json (the knobs the rules must choose for it). A maintainer who edits a rule
sees at once which machines' plans changed, and `--update` accepts the new plans.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.plan.decide import decide
from orchestrator.core.errors import WeeyugaError
from orchestrator.core.paths import REPO_ROOT
from orchestrator.plan.probe import Hardware
from orchestrator.plan.knobs import golden_knobs
from orchestrator.plan.profiles import Profiles

GOLDEN_DIR = REPO_ROOT / "tests" / "fixtures" / "hardware"
GOLDEN_KNOBS = ["tier", *golden_knobs()]


@dataclass(frozen=True)
class GoldenResult:
    name: str
    changes: dict[str, tuple[object, object]]  # knob -> (expected, actual)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.changes and self.error is None


@dataclass(frozen=True)
class RuleCheck:
    results: list[GoldenResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


def golden_plan(hw: Hardware, profiles: Profiles) -> dict[str, object]:
    try:
        plan = decide(hw, profiles, use_tuned=False).to_dict()
    except WeeyugaError as exc:  # "nothing fits" is a legitimate golden outcome
        return {"error": type(exc).__name__}
    return {k: plan[k] for k in GOLDEN_KNOBS}


def check_rules(profiles: Profiles, golden_dir: Path = GOLDEN_DIR, update: bool = False) -> RuleCheck:
    results = []
    for hw_path in sorted(golden_dir.glob("*.json")):
        if hw_path.name.endswith(".plan.json"):
            continue
        name = hw_path.stem
        plan_path = hw_path.with_name(f"{name}.plan.json")
        try:
            actual = golden_plan(Hardware.load(hw_path), profiles)
        except WeeyugaError as exc:
            results.append(GoldenResult(name, {}, str(exc)))
            continue
        if update:
            plan_path.write_text(json.dumps(actual, indent=2) + "\n", encoding="utf-8")
            results.append(GoldenResult(name, {}))
            continue
        expected = json.loads(plan_path.read_text(encoding="utf-8")) if plan_path.exists() else {}
        keys = sorted(set(expected) | set(actual))
        changes = {k: (expected.get(k), actual.get(k)) for k in keys if expected.get(k) != actual.get(k)}
        results.append(GoldenResult(name, changes))
    return RuleCheck(results)
