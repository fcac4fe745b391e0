"""profiles/sandbox.yaml as a frozen dataclass."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from orchestrator.core import datafiles
from orchestrator.core.paths import data_dir

CONFIG_PATH = data_dir("profiles") / "sandbox.yaml"
IMAGE_FIELDS = ("version", "image", "packages", "programs", "offline", "registry")


@dataclass(frozen=True)
class SandboxConfig:
    version: int
    image: str
    packages: tuple[str, ...]
    python: str
    offline: dict[str, Any]
    registry_base: str
    limits: dict[str, Any]
    user: str
    image_sha256: str  # of what goes into the image: an image built from other packages or another base is stale

    @property
    def tag(self) -> str:
        return f"{self.image}:{self.version}"

    def exec_user(self) -> str:
        """Commands never run as root: as `user` when weeyuga is root (it hands the mounted folder
        over), else as the caller's own ids, so the files they write stay the caller's."""
        if os.geteuid() == 0:
            return self.user
        return f"{os.geteuid()}:{os.getegid()}"


@lru_cache(maxsize=None)
def load_config(path: Path = CONFIG_PATH) -> SandboxConfig:
    doc = datafiles.load(path, "sandbox")
    return SandboxConfig(
        version=doc["version"], image=doc["image"], packages=tuple(doc["packages"]), python=doc["programs"]["python"],
        offline=doc["offline"], registry_base=doc["registry"]["base"], limits=doc["limits"], user=doc["user"],
        image_sha256=hashlib.sha256(json.dumps({k: doc[k] for k in IMAGE_FIELDS}, sort_keys=True).encode()).hexdigest())
