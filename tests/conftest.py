"""Shared fixtures. Unit tests get a private weeyuga cache; integration tests share the real one."""

from __future__ import annotations

import os

import pytest

from orchestrator import paths

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


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
