"""Runtime definitions (runtimes/<name>.yaml, data) and the pure command builder a plan becomes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.core import datafiles
from orchestrator.plan.decide.plan import Plan
from orchestrator.core.errors import BadInput
from orchestrator.core.paths import data_dir

HOST = "127.0.0.1"


@dataclass(frozen=True)
class RuntimeDefinition:
    name: str
    binary: str
    serve_args: list[str]
    pinned_args: list[str]
    serve_env: dict[str, str]
    health_path: str
    version_args: list[str]
    knobs: dict[str, dict[str, str]]
    oom_markers: list[str]
    load_failure_markers: list[str]
    port_in_use_markers: list[str]
    effective_knobs: dict[str, str]
    crash_markers: list[str] = field(default_factory=list)
    self_test: dict[str, Any] = field(default_factory=dict)
    prompt_cache: dict[str, str] = field(default_factory=dict)  # {request: field} or {unsupported: why}
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)  # extra programs from the same build
    serves: dict[str, Any] = field(default_factory=dict)  # {requires_model_field: a ModelSpec field, or None}
    tune: dict[str, str] = field(default_factory=dict)  # {session: fresh_server|reload, ngl_bounds: fit_params|none}
    tune_axes: dict[str, dict[str, Any]] = field(default_factory=dict)  # axis -> {why, values, gate?, requires?}
    tune_quality: dict[str, Any] = field(default_factory=dict)  # the KLD tool, reference and budgets

    def serves_model(self, spec: Any) -> bool:
        """Whether this runtime can run a catalogue model at all (decide's candidates)."""
        needed = self.serves.get("requires_model_field")
        return needed is None or bool(getattr(spec, needed))

    def effective_values(self, log_text: str) -> dict[str, int]:
        """Knob values the runtime reports choosing by itself, read from its log (last mention wins)."""
        found = {}
        for knob, pattern in self.effective_knobs.items():
            matches = re.findall(pattern, log_text)
            if matches:
                found[knob] = int(matches[-1])
        return found


def load_runtime(name: str, directory: Path | None = None) -> RuntimeDefinition:
    path = (directory or data_dir("runtimes")) / f"{name}.yaml"
    if not path.exists():
        raise BadInput(f"unknown runtime {name!r}: no {path}")
    doc = datafiles.load(path, "runtime")
    return RuntimeDefinition(
        name=doc["name"], binary=doc["binary"], serve_args=doc["serve_args"], pinned_args=doc.get("pinned_args", []),
        serve_env=doc.get("serve_env", {}),
        health_path=doc["health_path"], version_args=doc.get("version_args", []), knobs=doc["knobs"],
        oom_markers=doc["oom_markers"], load_failure_markers=doc.get("load_failure_markers", []),
        port_in_use_markers=doc.get("port_in_use_markers", []), effective_knobs=doc.get("effective_knobs", {}),
        crash_markers=doc.get("crash_markers", []), self_test=doc.get("self_test", {}),
        prompt_cache=doc.get("prompt_cache", {}),
        tools=doc.get("tools", {}), serves=doc["serves"], tune=doc["tune"],
        tune_axes=doc.get("tune_axes", {}), tune_quality=doc.get("tune_quality", {}),
    )


@dataclass(frozen=True)
class LaunchCommand:
    argv: list[str]
    env: dict[str, str]
    request_fields: dict[str, Any]  # top-level fields of every OpenAI-compatible request
    request_options: dict[str, Any]  # Ollama native `options`
    unsupported: dict[str, str]  # knob -> why this runtime ignores it


def serve_argv(defn: RuntimeDefinition, binary: str, port: int, model_path: str | None, model_id: str) -> list[str]:
    """The binary and its serve args, placeholders filled: every launch starts so (on 127.0.0.1)."""
    values = {"host": HOST, "port": str(port), "model_path": model_path or "", "model_id": model_id}
    return [binary] + [arg.format(**values) for arg in defn.serve_args]


def self_test_command(defn: RuntimeDefinition, binary: str, port: int, model_path: str, gpu_layers: int,
                      variant_args: tuple[str, ...] = ()) -> LaunchCommand:
    """The self-test's launch: the serve and pinned args, the definition's own context and GPU-layer flags at
    the self-test's values (runtimes/<name>.yaml `self_test`), and the variant's flags last."""
    flags = defn.knobs
    argv = [*serve_argv(defn, binary, port, model_path, "self-test"), *defn.pinned_args,
            flags["num_ctx"]["flag"], str(defn.self_test["ctx"]), flags["ngl"]["flag"], str(gpu_layers), *variant_args]
    return LaunchCommand(argv, {}, {}, {}, {})


def build_command(defn: RuntimeDefinition, plan: Plan, binary: str, port: int, model_path: str | None,
                  model_id: str, leave_to_runtime: frozenset[str] = frozenset(),
                  variant_args: tuple[str, ...] = ()) -> LaunchCommand:
    """Pure: the argv, environment and per-request fields a plan means for this runtime.

    Knobs in `leave_to_runtime` are not passed (and neither are the pinned args), so the runtime
    picks them itself: how `weeyuga tune` measures the runtime's defaults. `variant_args` are the
    flags the binary's self-test on this CPU found it needs (runtime/selftest.py); they always go last.
    """
    argv = serve_argv(defn, binary, port, model_path, model_id)
    values = {"host": HOST, "port": str(port), "model_path": model_path or "", "model_id": model_id}
    if not leave_to_runtime:
        argv += defn.pinned_args
    env = {k: v.format(**values) for k, v in defn.serve_env.items()}
    fields: dict[str, Any] = {}
    options: dict[str, Any] = {}
    unsupported: dict[str, str] = {}
    for knob, mapping in defn.knobs.items():
        value = getattr(plan, knob)
        if knob in leave_to_runtime or value is None:  # None: the runtime's own default
            continue
        if "unsupported" in mapping:
            unsupported[knob] = mapping["unsupported"]
            continue
        if "flag" in mapping:
            scaled = value * getattr(plan, mapping["scale_by"]) if "scale_by" in mapping else value
            argv += [mapping["flag"], str(data_dir("runtimes") / mapping["file"].format(value=value)) if "file" in mapping
                     else str(scaled)]
        if "env" in mapping:
            env[mapping["env"]] = str(value)
        if "request" in mapping:
            fields[mapping["request"]] = value
        if "option" in mapping:
            options[mapping["option"]] = value
    return LaunchCommand(argv + list(variant_args), env, fields, options, unsupported)
