"""How `weeyuga tune` measures candidates on a runtime, chosen by its runtimes/<name>.yaml `tune` entry:
`fresh_server` launches a new server per candidate (llama.cpp: NGL, threads and slots are launch flags);
`reload` keeps one server and reloads the model per candidate with request options (Ollama)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from orchestrator.core.errors import WeeyugaError
from orchestrator.core.progress import Progress
from orchestrator.flows.tune.probers import ngl_bounds, ollama_prober, real_prober
from orchestrator.flows.tune.search import Measurement, TuneReport
from orchestrator.plan.decide import Plan
from orchestrator.plan.profiles import Profiles
from orchestrator.plan.runtimes import load_runtime
from orchestrator.runtime import ollama_api
from orchestrator.runtime.launch import launch


@dataclass(frozen=True)
class TuneSession:
    """What a measuring session needs besides the search itself."""

    plan: Plan
    profiles: Profiles
    binary: str
    model_path: str | None
    fit_binary: str | None  # llama-fit-params, for NGL bounds
    out_dir: Path
    nvml: Any
    most_slots: int | None
    variant_args: tuple[str, ...]


Search = Callable[..., TuneReport]
Said = Callable[[Measurement], None]


def fresh_server(session: TuneSession, progress: Progress, said: Said, search: Search) -> TuneReport:
    """A fresh server per candidate, between bounds read from the model and llama-fit-params."""
    plan = session.plan
    bounds = None
    if searches_ngl(plan) and load_runtime(plan.runtime).tune["ngl_bounds"] == "fit_params":
        progress("reading the model's layer count and llama-fit-params' estimate", None)
        margin_mb = int(session.profiles.rules["budget"]["vram_reserve_gb"] * 1024)
        bounds = ngl_bounds(plan, session.model_path, session.fit_binary, margin_mb)
    prober = real_prober(plan, session.binary, session.model_path, session.out_dir, session.nvml, said,
                         session.variant_args)
    return search(prober, bounds=bounds)


def reload(session: TuneSession, progress: Progress, said: Said, search: Search) -> TuneReport:
    """One server for the session; each candidate reloads the model with its request options."""
    plan = session.plan
    if session.most_slots:
        raise WeeyugaError("Ollama's slots are OLLAMA_NUM_PARALLEL, fixed per server: tune slots with llama.cpp")
    tag = session.profiles.model(plan.model).ollama_tag or plan.model
    with launch(plan, session.binary, None, session.out_dir / "tune-ollama.log") as running:
        ollama_api.pull(running.base_url, tag, progress)
        return search(ollama_prober(plan, running, tag, session.nvml, said))


SESSIONS: dict[str, Callable[[TuneSession, Progress, Said, Search], TuneReport]] = {
    "fresh_server": fresh_server,
    "reload": reload,
}


def searches_ngl(plan: Plan) -> bool:
    """NGL is the knob when the plan can put layers on a GPU; otherwise threads are."""
    return plan.backend != "cpu" and plan.layers_offloadable > 0 and plan.budget.usable_gpu_gb > 0
