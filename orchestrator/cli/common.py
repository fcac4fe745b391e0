"""What every command shares: the one-line parser, bounded number types, the command registry,
knob overrides and run options, and reading hardware.json or probing."""

from __future__ import annotations

import argparse
import importlib
import json
import math
from pathlib import Path
from typing import Any, Callable

from orchestrator.core.methodology import methodology
from orchestrator.plan.knobs import DURATION, knob, knob_names, knob_table

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


class OneLineParser(argparse.ArgumentParser):
    """Usage errors are bad input like any other: one line on stderr, exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def bounded(kind: type, low: float, high: float) -> Callable[[str], Any]:
    """An argparse type: a finite int or float from low to high (NaN, -3 and 10^30 are refused)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"{text!r} must be from {low:,} to {high:,}")
        return value
    return parse


def keep_alive(text: str) -> str:
    """Ollama's keep-alive spelling: a duration such as 30m, 1h30m or 2400h, seconds, or -1 (forever)."""
    if not DURATION.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30m, 2400h, 0 or -1")
    return text


COUNT = bounded(int, 1, 1_000_000)
WARM_RUNS = bounded(int, 0, 1000)
MINUTES = bounded(float, 0.1, 7 * 24 * 60)
RUNS = methodology().runs_per_prompt


def command(name: str):
    def register(func):
        COMMANDS[name] = func
        return func
    return register


class LazyChoices:
    """argparse `choices` read when a command first needs them: importing what holds them (the runtimes
    registry: httpx and every runtime; tune's search) at startup would cost every command, `catalogue`
    too, most of a second. Give each such argument a `metavar`: argparse lists the choices of one
    without it while building the parser."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name  # a tuple of names, or a function returning them

    def names(self) -> list[str]:
        found = getattr(importlib.import_module(self.module), self.name)
        return list(found() if callable(found) else found)

    def __contains__(self, value: object) -> bool:
        return value in self.names()

    def __iter__(self):
        return iter(self.names())


MANAGED_RUNTIMES = LazyChoices("orchestrator.runtime", "managed_names")
ENGINES = LazyChoices("orchestrator.runtime", "engine_names")


def knob_type(name: str) -> Callable[[str], Any]:
    """The argparse type of a knob of profiles/knobs.yaml (its range is the table's)."""
    entry = knob(name)
    if entry.type in ("integer", "number"):
        kind = int if entry.type == "integer" else float
        return bounded(kind, kind(entry.low), kind(entry.high))
    return keep_alive if entry.type == "duration" else str


# Flags elsewhere that take a knob's value have the knob's range.
CONTEXT, SLOTS, TEMPERATURE = knob_type("num_ctx"), knob_type("num_parallel"), knob_type("temperature")


def add_knob_overrides(parser: argparse.ArgumentParser) -> None:
    """Plan knobs a user may set (profiles/knobs.yaml); each one set becomes a recorded deviation."""
    group = parser.add_argument_group("knob overrides (recorded as deviations)")
    for entry in knob_table():
        options: dict[str, Any] = {"help": entry.help} if entry.help else {}
        if entry.choices == "runtimes":
            options |= {"choices": MANAGED_RUNTIMES, "metavar": "RUNTIME"}
        elif entry.choices:
            options["choices"] = list(entry.choices)
        elif entry.type != "string":
            options["type"] = knob_type(entry.name)
        group.add_argument(entry.flag, **options)


def knob_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {n: getattr(args, n) for n in knob_names() if getattr(args, n, None) is not None}


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2))


def load_or_probe(hardware_path: str | None, device_tag: str | None = None):
    from orchestrator.plan.probe import Hardware, probe, validate_device_tag

    if hardware_path:
        hw = Hardware.load(Path(hardware_path))
        if device_tag:
            from dataclasses import replace
            hw = replace(hw, device_tag=validate_device_tag(device_tag))
        return hw
    return probe(device_tag=device_tag)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by `run` and `auto`."""
    p.add_argument("--phases", default="hello", help="comma-separated phases or 'all' (default: hello)")
    p.add_argument("--smoke", action="store_true", help="one item per phase, no warm repeats: checks the plumbing")
    p.add_argument("--probe", action="store_true", help="health-check the cells only")
    p.add_argument("--runs", type=WARM_RUNS, default=RUNS, help=f"warm calls per frozen prompt after the cold one (default {RUNS})")
    add_folder_options(p)


def add_folder_options(p: argparse.ArgumentParser) -> None:
    """Who ran it, where it is written, resume and the gates: every command that runs suites (run, auto, quality run, agent run)."""
    p.add_argument("--submitter-handle", help="your handle ([a-z0-9-]; default from git config user.name)")
    p.add_argument("--device-tag", help="default: derived by the probe")
    p.add_argument("--submissions-dir", help="default: this checkout's submissions/")
    p.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run: only missing calls are made")
    p.add_argument("--force-load", action="store_true", help="run even if the load average is above 4 (recorded)")
    p.add_argument("--for-publication", action="store_true", help="refuse a modified checkout or an unavailable cell")
    p.add_argument("--allow-dirty", action="store_true", help="with --for-publication: accept a modified checkout (recorded)")
