"""Runtimes: everything that differs between llama.cpp, Ollama and a server the user started.

Each runtime is one module here plus, when weeyuga launches it, its runtimes/<name>.yaml (the
knob -> flag/env/request table that plan.runtimes.build_command reads). A runtime owns: preparing it
(install or self-test, and the model), what it says once ready (version, digest), the request
target, making a call cold (restart, unload, or only "first call"), health, identifying a server
someone else started, and tune's measuring session. RUNTIMES is the registry, and the CLI's
choices come from it; outside this package no code compares a runtime's name.
"""

from __future__ import annotations

import httpx

from orchestrator.runtime.base import ManagedRuntime, Prepared, Runtime, byo_target
from orchestrator.runtime.llamacpp import LlamaCpp
from orchestrator.runtime.ollama import Ollama
from orchestrator.runtime.openai import OpenAICompatible

__all__ = ["ManagedRuntime", "Prepared", "Runtime", "RUNTIMES", "byo_target", "detect_engine", "engine_names",
           "managed_names", "managed_runtime", "runtime_for_engine"]

RUNTIMES: dict[str, Runtime] = {runtime.name: runtime for runtime in (LlamaCpp(), Ollama(), OpenAICompatible())}


def managed_runtime(name: str) -> ManagedRuntime:
    """A runtime weeyuga launches, by the name plans and the CLI use (llama.cpp, ollama)."""
    runtime = RUNTIMES[name]
    assert runtime.managed, f"{name} is not launched by weeyuga"  # plans only name managed runtimes (rules schema)
    return runtime  # type: ignore[return-value]


def runtime_for_engine(engine: str) -> Runtime:
    """By the engine part of a cell id (llamacpp, ollama, openai)."""
    return next(runtime for runtime in RUNTIMES.values() if runtime.engine == engine)


def managed_names() -> list[str]:
    """Runtimes weeyuga can install and launch itself."""
    return [name for name, runtime in RUNTIMES.items() if runtime.managed]


def engine_names() -> list[str]:
    return [runtime.engine for runtime in RUNTIMES.values()]


def detect_engine(base_url: str, timeout_s: float = 2.0) -> str:
    """For bring-your-own targets: the first runtime whose own path answers; else a plain OpenAI server."""
    with httpx.Client(timeout=timeout_s) as client:
        for runtime in RUNTIMES.values():
            if runtime.identify_path is None:
                continue
            try:
                if client.get(base_url + runtime.identify_path).status_code == 200:
                    return runtime.engine
            except httpx.HTTPError:
                continue
    return OpenAICompatible.engine
