"""A stand-in for the `docker` package's client: records what weeyuga asks of the engine
(containers.run keywords, execs, kills, removals, image builds) and answers from a script."""

from __future__ import annotations

import itertools
import threading
from typing import Any

from docker.errors import APIError, ImageNotFound, NotFound


class FakeResponse:
    def __init__(self, status_code: int) -> None:
        self.status_code, self.reason = status_code, "fake"


class FakeImage:
    def __init__(self, image_id: str, labels: dict[str, str], size: int = 400 * 2**20) -> None:
        self.id, self.labels, self.attrs = image_id, labels, {"Size": size}


class FakeContainer:
    def __init__(self, engine: "FakeEngine", container_id: str, spec: dict[str, Any]) -> None:
        self.engine, self.id, self.spec = engine, container_id, spec
        self.short_id = container_id[:12]
        self.attrs = {"Labels": spec.get("labels", {}), "State": "running"}
        self.killed = False

    def kill(self) -> None:
        if self.id not in self.engine.running:
            raise NotFound("no such container")
        self.killed = True
        self.engine.running.pop(self.id)
        self.engine.release.set()  # an exec stream ends when its container dies

    def remove(self, force: bool = False) -> None:
        self.engine.removed.append(self.id)
        self.engine.running.pop(self.id, None)


class FakeApi:
    def __init__(self, engine: "FakeEngine") -> None:
        self.engine, self.timeout, self.execs = engine, 60, []

    def exec_create(self, container_id: str, cmd: list[str], **options: Any) -> dict[str, str]:
        if container_id not in self.engine.running:
            raise APIError("container is not running", response=FakeResponse(409))
        self.execs.append({"container": container_id, "cmd": cmd, **options})
        return {"Id": f"exec{len(self.execs)}"}

    def exec_start(self, exec_id: str, stream: bool, demux: bool):
        script = self.engine.exec_script
        if script == "hang":
            return self.hang()
        return iter([(script.get("stdout"), script.get("stderr"))])

    def hang(self):
        """The stream of a command that runs until its container is killed."""
        self.engine.release.wait(30)
        yield from ()

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        if self.engine.exec_script == "hang" and not self.engine.release.is_set():
            return {"Running": True, "ExitCode": None}
        return {"Running": False, "ExitCode": 0 if self.engine.exec_script == "hang" else self.engine.exec_script.get("exit", 0)}


class FakeContainers:
    def __init__(self, engine: "FakeEngine") -> None:
        self.engine = engine

    def run(self, **spec: Any) -> FakeContainer:
        self.engine.runs.append(spec)
        container = FakeContainer(self.engine, f"{next(self.engine.ids):064x}", spec)
        self.engine.running[container.id] = container
        return container

    def get(self, container_id: str) -> FakeContainer:
        """A killed container is gone at once (the engine's auto-remove, done)."""
        if container_id not in self.engine.running:
            raise NotFound("no such container")
        return self.engine.running[container_id]

    def list(self, all: bool = False, sparse: bool = False, filters: dict | None = None) -> list[FakeContainer]:
        return list(self.engine.listed)


class FakeImages:
    def __init__(self, engine: "FakeEngine") -> None:
        self.engine = engine

    def get(self, tag: str) -> FakeImage:
        if tag not in self.engine.stored_images:
            raise ImageNotFound("no such image")
        return self.engine.stored_images[tag]

    def build(self, **options: Any) -> None:
        self.engine.builds.append(options)
        self.engine.stored_images[options["tag"]] = FakeImage("sha256:" + "b" * 64, self.engine.labels_for_build)

    def remove(self, image_id: str) -> None:
        self.engine.images_removed.append(image_id)


class FakeEngine:
    """`exec_script`: {"stdout", "stderr", "exit"} for every exec, or "hang" (runs until killed)."""

    def __init__(self, exec_script: Any = None) -> None:
        self.exec_script = exec_script or {"stdout": b"", "stderr": b"", "exit": 0}
        self.ids = itertools.count(1)
        self.runs: list[dict] = []
        self.running: dict[str, FakeContainer] = {}
        self.removed: list[str] = []
        self.listed: list[FakeContainer] = []
        self.stored_images: dict[str, FakeImage] = {}
        self.images_removed: list[str] = []
        self.builds: list[dict] = []
        self.labels_for_build: dict[str, str] = {}
        self.release = threading.Event()
        self.api = FakeApi(self)
        self.containers = FakeContainers(self)
        self.images = FakeImages(self)

    def version(self) -> dict[str, str]:
        return {"Version": "20.10-fake"}
