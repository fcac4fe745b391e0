"""`openai`: an OpenAI-compatible server the user started and runs (vLLM, MLX, LM Studio, a remote
llama-server): `weeyuga run --target-url`. weeyuga neither installs, launches nor restarts it, so
its first call is recorded as process_warm, never cold."""

from __future__ import annotations

from typing import Any, Callable

from orchestrator.core.runspec import Cell
from orchestrator.runtime.base import models_endpoint_health, server_facts


class OpenAICompatible:
    name = engine = api = "openai"
    managed = False
    identify_path = None  # the fallback when no other runtime recognises the server

    def unloader(self, base_url: str, model: str) -> Callable[[], None] | None:
        return None

    def health(self, cell: Cell, timeout_s: float = 2.0) -> str | None:
        return models_endpoint_health(cell, timeout_s)

    def facts(self, cell: Cell, timeout_s: float = 2.0) -> dict[str, Any]:
        return server_facts(lambda facts: None)  # a server that does not say is recorded as unknown

    def prompt_cache_switch(self) -> tuple[str | None, str | None]:
        return None, "the OpenAI API has no prompt-cache switch; the server decides (a llama-server is recognised as llamacpp)"
