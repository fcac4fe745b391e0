"""The Runtime protocol (see runtimes/__init__.py) and what runtimes share."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import httpx

from orchestrator.plan.decide import Deviation, Plan
from orchestrator.plan.runtimes import load_runtime
from orchestrator.core.errors import WeeyugaError
from orchestrator.runtime.install import RuntimeInstall
from orchestrator.plan.profiles import Profiles
from orchestrator.core.progress import Progress
from orchestrator.core.runspec import Cell, Target


@dataclass(frozen=True)
class Prepared:
    """A runtime ready to launch for a plan: its binary (self-tested) and the model it will serve."""

    install: RuntimeInstall
    model_path: str | None  # a file to pass at launch; None when the runtime fetches by name
    model_name: str  # what the runtime calls the model in requests
    model_record: dict[str, Any]  # the manifest's entry for it
    deviation: Deviation | None = None  # a flag the self-test forced on this CPU


class Runtime(Protocol):
    """What every runtime answers, launched by weeyuga or not."""

    name: str  # in plans, rule tables and the CLI
    engine: str  # in cell ids and ledger lines
    api: str  # client.WIRE_FORMATS key
    managed: bool  # weeyuga installs and launches it (then it is also a ManagedRuntime)
    identify_path: str | None  # a path only this runtime answers: how a server someone started is recognised

    def unloader(self, base_url: str, model: str) -> Callable[[], None] | None:
        """How to make the next call cold without a restart, if this runtime can."""

    def health(self, cell: Cell, timeout_s: float = 2.0) -> str | None:
        """None when the cell can serve; otherwise the reason it is skipped."""

    def facts(self, cell: Cell, timeout_s: float = 2.0) -> dict[str, Any]:
        """Engine version and model digest or file as the server reports them (meta line)."""

    def prompt_cache_switch(self) -> tuple[str | None, str | None]:
        """(the request field that turns reuse of a cached prompt prefix on or off, None) or (None, why the API has none)."""


class ManagedRuntime(Runtime, Protocol):
    """A runtime weeyuga installs, self-tests and launches from runtimes/<name>.yaml (which also says
    which models it serves and how `weeyuga tune` measures it)."""

    def model_on_machine(self, plan: Plan, profiles: Profiles) -> bool:
        """Nothing to download before the run (else auto falls back to the embedded default)."""

    def locate(self, plan: Plan) -> RuntimeInstall | None:
        """The installed runtime, without installing anything (the dry run)."""

    def dry_run_facts(self, plan: Plan, profiles: Profiles, install: RuntimeInstall | None) -> tuple[str | None, Any, str]:
        """(the cached model file, the recorded self-test, what installing takes) for `auto --dry-run`."""

    def install_fallback(self, plan: Plan, install: RuntimeInstall | None) -> dict[str, Any] | None:
        """The deviation when the install cannot serve the planned backend."""

    def install(self, backend: str | None, progress: Progress, rebuild: bool = False, retest: bool = False) -> RuntimeInstall:
        """Install (or find) and self-test it: `weeyuga runtime NAME`."""

    def prepare(self, plan: Plan, profiles: Profiles, progress: Progress, model_path: str | None = None) -> Prepared:
        """Install and self-test the runtime, fetch the model: everything before the launch."""

    def after_ready(self, running: Any, prepared: Prepared, progress: Progress) -> dict[str, Any]:
        """What happens once the server answers (Ollama pulls the model); the model's manifest entry then."""

    def target(self, cell_id: str, running: Any, plan: Plan, prepared: Prepared) -> Target:
        """The request target for a runtime weeyuga launched."""


def models_endpoint_health(cell: Cell, timeout_s: float = 2.0) -> str | None:
    """An OpenAI-compatible server is healthy when /v1/models answers."""
    try:
        response = httpx.get(f"{cell.base_url}/v1/models", timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"unreachable: {cell.base_url} ({type(exc).__name__})"
    if response.status_code != 200:
        return f"{cell.base_url}/v1/models answered HTTP {response.status_code}"
    return None


def server_facts(fill: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """The engine version and model digest that `fill` reads from the server; what it cannot read stays None."""
    facts: dict[str, Any] = {"engine_version": None, "model_digest": None}
    try:
        fill(facts)
    except (httpx.HTTPError, ValueError, AttributeError, WeeyugaError):
        pass  # an engine that does not say is recorded as unknown, not guessed
    return facts


@functools.cache
def defined_prompt_cache_switch(runtime_name: str) -> tuple[str | None, str | None]:
    """A launched runtime's switch, from its runtimes/<name>.yaml `prompt_cache` entry."""
    entry = load_runtime(runtime_name).prompt_cache
    return entry.get("request"), entry.get("unsupported")


def byo_target(runtime: Runtime, cell_id: str, model: str, base_url: str, pid: Callable[[], int | None]) -> Target:
    """A cell on a server someone else started: cold only if the runtime can unload."""
    return Target(Cell(cell_id, runtime.engine, model, base_url, runtime.api), pid=pid,
                  unload=runtime.unloader(base_url, model))
