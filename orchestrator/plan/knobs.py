"""The plan's knobs, read once from profiles/knobs.yaml: their order, types, ranges, help, and which of
them decide applies before the model fit, `rules check` replays and `weeyuga tune` writes. The CLI's
override flags, decide's override checks, the plan's order and the tunable set all derive from here."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput
from orchestrator.core.paths import data_dir

DURATION = re.compile(r"(?:[0-9]{1,9}(?:ms|s|m|h))+|[0-9]{1,9}|-1")


@dataclass(frozen=True)
class Knob:
    name: str
    type: str  # integer | number | duration | choice | string
    stage: str  # rules | fit
    golden: bool
    tunable: bool
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | str | None = None  # a tuple, or "runtimes" (the registry's managed runtimes)
    help: str | None = None
    runtime_default: bool = False  # the rules leave it None: the runtime's own default (no flag given)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def problem(self, value: Any) -> str | None:
        """Why `value` is not a value of this knob, or None. Choices read from the registry are the CLI's to check."""
        if self.type in ("integer", "number"):
            numeric = (int,) if self.type == "integer" else (int, float)
            if not isinstance(value, numeric) or isinstance(value, bool) or not math.isfinite(value):
                return f"must be {'an integer' if self.type == 'integer' else 'a number'} from {self.low:,g} to {self.high:,g}"
            if not self.low <= value <= self.high:
                return f"must be from {self.low:,g} to {self.high:,g}"
        elif self.type == "duration":
            if not isinstance(value, str) or not DURATION.fullmatch(value):
                return "is not a duration such as 30m, 2400h, 0 or -1"
        elif self.type == "choice" and isinstance(self.choices, tuple):
            if value not in self.choices:
                return f"must be one of {', '.join(self.choices)}"
        elif not isinstance(value, str):
            return "must be a string"
        return None


@functools.cache
def knob_table() -> tuple[Knob, ...]:
    doc = datafiles.load(data_dir("profiles") / "knobs.yaml", "knobs")
    knobs = tuple(Knob(k["name"], k["type"], k["stage"], k["golden"], k["tunable"], k.get("min"), k.get("max"),
                       tuple(k["choices"]) if isinstance(k.get("choices"), list) else k.get("choices"), k.get("help"),
                       k.get("runtime_default", False))
                  for k in doc["knobs"])
    names = [k.name for k in knobs]
    if len(set(names)) != len(names):
        raise BadInput(f"{data_dir('profiles') / 'knobs.yaml'}: a knob is listed twice")
    return knobs


def knob_names() -> list[str]:
    """Every knob, in plan order."""
    return [k.name for k in knob_table()]


def knob(name: str) -> Knob:
    return next(k for k in knob_table() if k.name == name)


def rules_stage_knobs() -> list[str]:
    """Overrides decide applies before fitting a model (the rest the fit decides)."""
    return [k.name for k in knob_table() if k.stage == "rules"]


def golden_knobs() -> list[str]:
    return [k.name for k in knob_table() if k.golden]


def tunable_knobs() -> list[str]:
    return [k.name for k in knob_table() if k.tunable]


def launch_knobs() -> list[str]:
    """Knobs the rules leave to the runtime's own default unless a user or a tuned profile sets them."""
    return [k.name for k in knob_table() if k.runtime_default]


def check_override(name: str, value: Any) -> None:
    """A user's override: a knob of the table with a value in its range, or one line of bad input."""
    if name not in knob_names():
        raise BadInput(f"override {name!r}: not a plan knob (knobs: {', '.join(knob_names())})")
    problem = knob(name).problem(value)
    if problem:
        raise BadInput(f"override {name}={value!r}: {problem}")
