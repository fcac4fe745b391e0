"""Where weeyuga keeps its data, cache and the repository's data tables."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_dir(name: str) -> Path:
    """A top-level data folder of the checkout: profiles, suites, runtimes, submissions."""
    return REPO_ROOT / name


def submissions_root(explicit: str | None = None) -> Path:
    return Path(explicit) if explicit else data_dir("submissions")


def cache_dir() -> Path:
    """Builds and models live outside the repo so clones and CI runs reuse them."""
    explicit = os.environ.get("WEEYUGA_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "weeyuga"


def state_dir() -> Path:
    """Pidfiles and other per-user runtime state."""
    explicit = os.environ.get("WEEYUGA_STATE")
    return Path(explicit) if explicit else cache_dir() / "state"
