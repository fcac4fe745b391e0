"""Shared fixtures. Unit tests get a private weeyuga cache; integration tests share the real one."""

from __future__ import annotations

import os

import pytest

from orchestrator import paths, records, run

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
def validated_ledger_lines():
    """Every ledger line a test's run writes is checked against its schema as it is written."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(records, "validate_on_write", True)
        yield


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
