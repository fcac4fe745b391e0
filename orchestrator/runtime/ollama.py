"""Ollama: found or installed by install.py, launched as `ollama serve` from runtimes/ollama.yaml,
pulls its model by tag once ready, and unloads it (keep_alive 0) for every cold call."""

from __future__ import annotations

from typing import Any, Callable

import httpx

from orchestrator.runtime import ollama_api as ollama_api
from orchestrator.plan.decide import Plan
from orchestrator.runtime.install import RuntimeInstall, install_ollama, locate_ollama
from orchestrator.plan.profiles import Profiles
from orchestrator.core.progress import Progress
from orchestrator.core.runspec import Cell, Target
from orchestrator.runtime.base import Prepared, defined_prompt_cache_switch, server_facts


class Ollama:
    name = engine = api = "ollama"
    managed = True
    identify_path = "/api/version"


    def model_on_machine(self, plan: Plan, profiles: Profiles) -> bool:
        return True  # Ollama pulls by tag at launch; nothing to fall back from

    def locate(self, plan: Plan) -> RuntimeInstall | None:
        return locate_ollama()

    def dry_run_facts(self, plan: Plan, profiles: Profiles, install: RuntimeInstall | None) -> tuple[str | None, Any, str]:
        return None, None, "install Ollama (official steps)"

    def install_fallback(self, plan: Plan, install: RuntimeInstall | None) -> dict[str, Any] | None:
        return None  # one Ollama serves every backend it finds

    def install(self, backend: str | None, progress: Progress, rebuild: bool = False, retest: bool = False) -> RuntimeInstall:
        return install_ollama()

    def prepare(self, plan: Plan, profiles: Profiles, progress: Progress, model_path: str | None = None) -> Prepared:
        spec = profiles.model(plan.model)
        tag = spec.ollama_tag or plan.model
        return Prepared(install_ollama(), None, tag,
                        {"model": tag, "quant": plan.quant, "size_bytes": int(spec.quant(plan.quant).size_gb * 2**30),
                         "source": "ollama"})

    def after_ready(self, running: Any, prepared: Prepared, progress: Progress) -> dict[str, Any]:
        ollama_api.pull(running.base_url, prepared.model_name, progress)
        return {**prepared.model_record, "digest": ollama_api.digest(running.base_url, prepared.model_name)}

    def target(self, cell_id: str, running: Any, plan: Plan, prepared: Prepared) -> Target:
        return Target(Cell(cell_id, self.engine, prepared.model_name, running.base_url, self.api),
                      pid=lambda: running.pid, request_fields=running.command.request_fields,
                      options=running.command.request_options, keep_alive=plan.keep_alive, loaded_fresh=True,
                      crash_note=running.crash_note, unload=self.unloader(running.base_url, prepared.model_name))

    def unloader(self, base_url: str, model: str) -> Callable[[], None] | None:
        return lambda: ollama_api.unload(base_url, model)

    def health(self, cell: Cell, timeout_s: float = 2.0) -> str | None:
        try:
            tags = httpx.get(f"{cell.base_url}/api/tags", timeout=timeout_s)
            if tags.status_code != 200:
                return f"ollama /api/tags answered HTTP {tags.status_code}"
            models = tags.json().get("models", [])
            names = {m.get("name") for m in models} | {m.get("model") for m in models}
        except httpx.HTTPError as exc:
            return f"unreachable: {cell.base_url} ({type(exc).__name__})"
        except (ValueError, AttributeError, TypeError):  # not JSON, or not the JSON an Ollama /api/tags sends
            return f"{cell.base_url} answered something that is not the JSON expected"
        return None if cell.model in names else f"model {cell.model} is not pulled (ollama pull {cell.model})"

    def facts(self, cell: Cell, timeout_s: float = 2.0) -> dict[str, Any]:
        def fill(facts: dict[str, Any]) -> None:
            facts["engine_version"] = httpx.get(f"{cell.base_url}/api/version", timeout=timeout_s).json().get("version")
            facts["model_digest"] = ollama_api.digest(cell.base_url, cell.model)

        return server_facts(fill)

    def prompt_cache_switch(self) -> tuple[str | None, str | None]:
        return defined_prompt_cache_switch(self.name)
