"""The Docker engine through the `docker` package: the connection, the container spec, one
long-lived container whose commands run through exec, and the reaping of leftovers.

Every container carries LABEL_KIND and LABEL_OWNER (pid and start time of the weeyuga process that
made it). Removal is in `finally` on every path weeyuga controls, and weeyuga waits at exit until
the engine has deleted what it killed; a kill -9 leaves the container behind, and the next sandbox start (or `weeyuga sandbox status`) removes every labelled container
whose owner is gone. The container's init sleeps `lifetime_s` at most and the container removes
itself when it stops, so even an unreaped leftover ends.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core.errors import WeeyugaError
from orchestrator.evaluate.sandbox.docker.config import SandboxConfig
from orchestrator.evaluate.sandbox.contain import hand_over, owner_alive, owner_label

LABEL_KIND = "org.weeyuga.sandbox"  # agent | codeexec
LABEL_OWNER = "org.weeyuga.owner"  # "<pid>:<process start time>"
LABEL_BUILT_FROM = "org.weeyuga.built-from"  # on the image: how `sandbox build` made it
LABEL_CONFIG = "org.weeyuga.config-sha256"  # on the image: the profiles/sandbox.yaml it was built from
CONNECT_TIMEOUT_S = 10
API_TIMEOUT_S = 120
REMOVAL_WAIT_S = 30  # at exit, for the engine to delete killed containers (seconds each on vfs)
OUTPUT_KEEP_BYTES = 64 * 1024  # of each stream, head and tail, while a command runs
CONTAINER_PATH = "/usr/local/bin:/usr/bin:/bin"
# Runs each command, then kills whatever it left running as the sandbox user (never PID 1, which
# is root's init): the container's equivalent of the process sandbox killing the process group.
COMMAND_WRAPPER = '"$@"; code=$?; kill -9 -1 2>/dev/null; exit $code'


class EngineUnavailable(WeeyugaError):
    """The engine cannot be used; the message says why in one line."""


def connect(timeout_s: float = CONNECT_TIMEOUT_S) -> Any:
    """A client on DOCKER_HOST (default: the local unix socket) that answered a ping."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise EngineUnavailable(f"the docker Python package is missing ({exc}); pip install docker") from exc
    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
    except DockerException as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise EngineUnavailable(f"the Docker engine is not reachable: {reason}") from exc
    client.api.timeout = API_TIMEOUT_S
    return client


def labelled_containers(client: Any) -> list[Any]:
    """Every weeyuga sandbox container, as listed (sparse: one that is being removed cannot fail the listing)."""
    return client.containers.list(all=True, sparse=True, filters={"label": LABEL_KIND})


def reap_leftovers(client: Any) -> list[str]:
    """Remove every weeyuga sandbox container whose owner process is gone; their short ids."""
    from docker.errors import APIError, NotFound

    reaped = []
    for container in labelled_containers(client):
        if owner_alive((container.attrs.get("Labels") or {}).get(LABEL_OWNER, "")):
            continue
        try:
            container.remove(force=True)
        except NotFound:
            pass
        except APIError as exc:
            if exc.status_code != 409:  # 409: it is already being removed (auto-remove)
                raise
        reaped.append(container.short_id)
    return reaped


def container_spec(config: SandboxConfig, mount: Path, kind: str, owner: str) -> dict[str, Any]:
    """The keywords of `containers.run`: no network, memory (swap included), pids and CPU limits,
    rlimits as the process sandbox's, a read-only root with `mount` (at its host path, so paths in
    commands read the same on both sides) as the only writable mount besides a small /tmp, no
    capabilities, and labels for reaping. Its init (root, unreachable by the commands' user) only
    sleeps; commands are execs as `config.exec_user()`."""
    from docker.types import Ulimit

    limits = config.limits
    memory = f"{limits['memory_mb']}m"
    file_size = limits["file_size_mb"] * 2**20
    return {
        "image": config.tag, "command": ["sleep", str(limits["lifetime_s"])], "detach": True, "auto_remove": True,
        "init": True, "network_mode": "none", "read_only": True, "user": "0:0",
        "mem_limit": memory, "memswap_limit": memory, "pids_limit": limits["pids"],
        "nano_cpus": int(limits["cpus"] * 1e9),
        "ulimits": [Ulimit(name="fsize", soft=file_size, hard=file_size), Ulimit(name="core", soft=0, hard=0),
                    Ulimit(name="nofile", soft=limits["open_files"], hard=limits["open_files"])],
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={limits['tmp_mb']}m,mode=1777"},
        "volumes": {str(mount): {"bind": str(mount), "mode": "rw"}},
        "working_dir": str(mount), "environment": {"PATH": CONTAINER_PATH},
        "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
        "labels": {LABEL_KIND: kind, LABEL_OWNER: owner},
    }


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None  # None when the wall timeout killed the container
    stdout: bytes  # head and tail when it was longer than OUTPUT_KEEP_BYTES twice
    stderr: bytes
    timed_out: bool
    duration_s: float


class KeptOutput:
    """The first and last OUTPUT_KEEP_BYTES of a stream, so a flood of output costs no memory."""

    def __init__(self) -> None:
        self.head, self.tail, self.dropped = bytearray(), bytearray(), 0

    def add(self, chunk: bytes) -> None:
        room = OUTPUT_KEEP_BYTES - len(self.head)
        self.head += chunk[:room]
        self.tail += chunk[room:] if room > 0 else chunk
        if len(self.tail) > OUTPUT_KEEP_BYTES:
            self.dropped += len(self.tail) - OUTPUT_KEEP_BYTES
            del self.tail[:-OUTPUT_KEEP_BYTES]

    def value(self) -> bytes:
        gap = f"\n[… {self.dropped} bytes left out …]\n".encode() if self.dropped else b""
        return bytes(self.head) + gap + bytes(self.tail)


_REAPED_FOR: "weakref.WeakSet[Any]" = weakref.WeakSet()  # the clients this process has reaped leftovers with


class Container:
    """One sandbox container, started on first use and removed by `remove()` (call it in finally).
    A command that runs past its wall timeout kills the container; the next command starts a new one."""

    def __init__(self, client: Any, config: SandboxConfig, mount: Path, kind: str) -> None:
        self.client, self.config, self.mount, self.kind = client, config, mount, kind
        self.container: Any = None

    def ensure_started(self) -> None:
        if self.container is not None:
            return
        if self.client not in _REAPED_FOR:
            reap_leftovers(self.client)
            _REAPED_FOR.add(self.client)
        self.container = self.client.containers.run(**container_spec(self.config, self.mount, self.kind, owner_label()))

    def exec(self, argv: list[str], workdir: Path, env: dict[str, str], timeout_s: float) -> ExecResult:
        from docker.errors import APIError

        hand_over(self.mount, *(int(part) for part in self.config.exec_user().split(":")))
        api = self.client.api
        started = time.monotonic()
        command = ["/bin/sh", "-c", COMMAND_WRAPPER, "sh", *argv]
        options = {"stdout": True, "stderr": True, "stdin": False, "tty": False, "user": self.config.exec_user(),
                   "workdir": str(workdir), "environment": env}
        self.ensure_started()
        try:
            exec_id = api.exec_create(self.container.id, command, **options)["Id"]
        except APIError as exc:  # gone (404) or stopped (409), e.g. past its lifetime: a fresh one
            if exc.status_code not in (404, 409):
                raise
            self.container = None
            self.ensure_started()
            exec_id = api.exec_create(self.container.id, command, **options)["Id"]
        outputs = (KeptOutput(), KeptOutput())
        stream = api.exec_start(exec_id, stream=True, demux=True)

        def drain() -> None:
            with contextlib.suppress(OSError):  # a read timeout on a long silent command: polled below
                for out, err in stream:
                    for kept, chunk in zip(outputs, (out, err)):
                        if chunk:
                            kept.add(chunk)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        deadline = started + timeout_s
        reader.join(timeout_s)
        state = api.exec_inspect(exec_id)
        while state["Running"] and time.monotonic() < deadline:
            time.sleep(0.05)
            state = api.exec_inspect(exec_id)
        timed_out = state["Running"]
        if timed_out:
            self.remove()  # kills everything the command started; the stream then ends
        reader.join(30)
        code = None if timed_out else state["ExitCode"]
        return ExecResult(code, outputs[0].value(), outputs[1].value(), timed_out, time.monotonic() - started)

    def remove(self) -> None:
        """Kill the container; the engine deletes it (auto-remove) moments later, and weeyuga waits
        for that before it exits (`wait_removed`, at exit), not after every codeexec program."""
        from docker.errors import APIError, NotFound

        container, self.container = self.container, None
        if container is None:
            return
        try:
            container.kill()
        except NotFound:
            return
        except APIError as exc:
            if exc.status_code != 409:  # 409: it is not running (already stopping)
                raise
        _KILLED.append((self.client, container))


_KILLED: list[tuple[Any, Any]] = []  # (client, container) killed and maybe not yet deleted by the engine


def wait_removed(within_s: float = REMOVAL_WAIT_S) -> None:
    """Until every container this process killed is gone from the engine; a straggler is removed by force."""
    from docker.errors import APIError, NotFound

    deadline = time.monotonic() + within_s
    while _KILLED:
        client, container = _KILLED[0]
        try:
            client.containers.get(container.id)
        except (NotFound, APIError, OSError):  # OSError: the engine is gone (requests' errors are OSErrors)
            _KILLED.pop(0)
            continue
        if time.monotonic() > deadline:
            with contextlib.suppress(NotFound, APIError, OSError):
                container.remove(force=True)
            _KILLED.pop(0)
            continue
        time.sleep(0.1)


atexit.register(wait_removed)
