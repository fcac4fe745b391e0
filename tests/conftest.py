"""Shared fixtures. Unit tests get a private weeyuga cache; integration tests share the real one."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator import contention, paths, records, run
from orchestrator.procs import run_captured
from tests.fakes.processes import FakeProcessTable

# The load average every test sees unless it sets its own (only the load gate's tests do):
# quiet, so that a busy host (other jobs, a CPU hog) cannot trip run.check_gates.
PINNED_LOAD = (0.5, 0.5, 0.5)

# Captured before any fixture redirects it: the llama-server build and the GGUFs are
# expensive, so integration tests (and repeated CI runs) reuse the user's real cache.
REAL_CACHE = paths.cache_dir()


@pytest.fixture(autouse=True)
def private_weeyuga_dirs(tmp_path, monkeypatch, request):
    if request.node.get_closest_marker("integration"):
        monkeypatch.setenv("WEEYUGA_CACHE", str(REAL_CACHE))
        monkeypatch.setenv("WEEYUGA_STATE", str(tmp_path / "state"))
    else:
        monkeypatch.setenv("WEEYUGA_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("WEEYUGA_STATE", str(tmp_path / "state"))
    yield


@pytest.fixture(scope="session", autouse=True)
def pinned_load_average():
    """For the whole session, so module-scoped fixtures that run the suites see it too; integration
    tests as well: their subject is the runtime, not the host's load."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run, "host_load", lambda: PINNED_LOAD)
        yield


@pytest.fixture(scope="session", autouse=True)
def pinned_process_table():
    """Contention and live-run checks read a quiet, empty process table, never the host's (tests that
    measure contention inject their own): other jobs on the host cannot flag a test's phases."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(contention, "process_table", FakeProcessTable())
        yield


@pytest.fixture(scope="session", autouse=True)
def validated_ledger_lines():
    """Every ledger line a test's run writes is checked against its schema as it is written."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(records, "validate_on_write", True)
        yield


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; Playwright never downloads a browser here


def install_chromium() -> str | None:
    """apt-get install chromium (CI runs as root with Debian's archive); None, or why it failed."""
    if not shutil.which("apt-get"):
        return "no apt-get on this machine"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    result = None
    for argv in (["apt-get", "install", "-y", "chromium"], ["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        try:
            result = run_captured(argv, timeout=1200, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(argv)}: {exc}"
        if argv[1] == "install" and result.returncode == 0:
            return None
    return f"apt-get install -y chromium exited {result.returncode}: {result.stderr.strip()[-300:]}"


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Headless Chromium for browser tests, installed when missing. Without it a browser test fails
    under CI=true (never skips) and skips elsewhere, saying why."""
    problem = None
    if not CHROMIUM.exists():
        problem = install_chromium()
    if problem is None and not CHROMIUM.exists():
        problem = f"{CHROMIUM} is still missing after apt-get install chromium"
    if problem is None:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is missing: python3 -m pip install -e '.[test]'"
    if problem:
        (pytest.fail if in_ci() else pytest.skip)(f"headless Chromium unavailable: {problem}")
    return CHROMIUM
