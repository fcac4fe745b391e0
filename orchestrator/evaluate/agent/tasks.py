"""Agent tasks as data: suites/agent/<id>/ holds task.json, PROMPT.md, seed/ and tests/.

suites/agent/harness.json holds the default budgets, the toolchain probe per language and the
prompts. Reference solutions are test fixtures and never live here, so nothing in a task folder
can leak a solution into a sandbox.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from orchestrator.core import datafiles, procs
from orchestrator.core.errors import BadInput
from orchestrator.core.paths import data_dir

TASKS_DIR = data_dir("suites") / "agent"
HARNESS_FILES_DIR = TASKS_DIR / "_harness"
TESTS_FOLDER = "tests"  # where the pristine tests live in a workspace; never writable by the agent
PROBE_TIMEOUT_S = 30


@dataclass(frozen=True)
class AgentTask:
    id: str
    version: int
    language: str
    size: str
    kind: str
    title: str
    prompt: str
    editable: tuple[str, ...]
    harness: tuple[str, ...]
    test_command: tuple[tuple[str, ...], ...]
    report: str
    expected_tests: int
    folder: Path

    @property
    def seed_dir(self) -> Path:
        return self.folder / "seed"

    @property
    def tests_dir(self) -> Path:
        return self.folder / TESTS_FOLDER


def load_task(folder: Path) -> AgentTask:
    spec_path = folder / "task.json"
    spec = datafiles.load(spec_path, "agent-task")
    if spec["id"] != folder.name:
        raise BadInput(f"{spec_path}: field id: {spec['id']!r} differs from the folder name {folder.name!r}")
    for needed in ("seed", TESTS_FOLDER):
        if not (folder / needed).is_dir():
            raise BadInput(f"{folder / needed}: the task needs this folder")
    for name in spec.get("harness", []):
        if not (HARNESS_FILES_DIR / name).is_file():
            raise BadInput(f"{spec_path}: field harness: {HARNESS_FILES_DIR / name} does not exist")
    prompt = datafiles.read_bytes(folder / "PROMPT.md").decode("utf-8", errors="replace")
    return AgentTask(
        id=spec["id"], version=spec["version"], language=spec["language"], size=spec["size"], kind=spec["kind"],
        title=spec["title"], prompt=prompt, editable=tuple(spec["editable"]), harness=tuple(spec.get("harness", [])),
        test_command=tuple(tuple(step) for step in spec["test_command"]), report=spec["report"],
        expected_tests=spec["expected_tests"], folder=folder,
    )


def load_tasks(root: Path = TASKS_DIR, ids: tuple[str, ...] = (), languages: tuple[str, ...] = ()) -> tuple[AgentTask, ...]:
    """Every task under `root` (folders starting with `_` are shared files), filtered by id and
    language; an id asked for that does not exist is bad input."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    known = {p.name for p in folders}
    missing = [task_id for task_id in ids if task_id not in known]
    if missing:
        raise BadInput(f"{root}: no agent task named {', '.join(missing)} (known: {', '.join(sorted(known))})")
    tasks = [load_task(p) for p in folders if not ids or p.name in ids]
    return tuple(t for t in tasks if not languages or t.language in languages)


@lru_cache(maxsize=None)
def harness_config(path: Path = TASKS_DIR / "harness.json") -> dict[str, Any]:
    return datafiles.load(path, "agent-harness")


def resolve_program(argv: tuple[str, ...], substitutions: dict[str, str]) -> list[str] | None:
    """The argv with placeholders filled and the program made absolute (the sandbox's PATH is
    minimal); None when the program is not installed."""
    filled = [fill(arg, {"python": sys.executable, **substitutions}) for arg in argv]
    program = filled[0] if Path(filled[0]).is_absolute() else shutil.which(filled[0])
    if program is None:
        return None
    return [program, *filled[1:]]


def fill(text: str, substitutions: dict[str, str]) -> str:
    for key, value in substitutions.items():
        text = text.replace("{" + key + "}", value)
    return text


@lru_cache(maxsize=None)
def toolchain_missing(language: str) -> str | None:
    """Why the language's toolchain cannot run tasks here, or None when it can. Probed once."""
    toolchain = harness_config()["toolchains"].get(language)
    if toolchain is None:
        return f"no toolchain entry for {language} in suites/agent/harness.json"
    argv = resolve_program(tuple(toolchain["probe"]), {})
    if argv is None:
        return f"{toolchain['probe'][0]} not found on PATH (needs {toolchain['needs']})"
    try:
        result = procs.run_captured(argv, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(toolchain['probe'])} failed: {exc} (needs {toolchain['needs']})"
    if result.returncode != 0:
        return f"{' '.join(toolchain['probe'])} exited {result.returncode} (needs {toolchain['needs']})"
    return None


def memory_limit_mb(language: str) -> int | None:
    return harness_config()["toolchains"].get(language, {}).get("memory_mb")
