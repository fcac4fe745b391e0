"""Which sandbox a run uses (`--sandbox docker|process|auto`), recorded in the run's options and
manifest, and what the agent and quality phases build from that record."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.evaluate.sandbox.docker.config import SandboxConfig, load_config
from orchestrator.evaluate.sandbox.docker.engine import EngineUnavailable, connect
from orchestrator.evaluate.sandbox.docker.image import image_status

SANDBOX_CHOICES = ("process", "docker", "auto")


@dataclass(frozen=True)
class SandboxChoice:
    kind: str  # docker | process
    requested: str  # what the command asked for
    reason: str
    image: str | None = None
    digest: str | None = None
    built_from: str | None = None

    def record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DockerReadiness:
    ready: bool
    engine: str | None  # "Docker <version>" when it answered
    reason: str  # what is missing, or what is there
    image: str
    digest: str | None
    built_from: str | None


def docker_readiness(connect_fn: Callable[[], Any] = connect, config: SandboxConfig | None = None) -> DockerReadiness:
    """Whether the engine answers and holds a current image (what `auto` and `doctor` ask)."""
    config = config or load_config()
    try:
        client = connect_fn()
    except EngineUnavailable as exc:
        return DockerReadiness(False, None, str(exc), config.tag, None, None)
    engine = f"Docker {client.version().get('Version', '?')}"
    status = image_status(client, config)
    if not status.present:
        why = f"the image {config.tag} is not built (run `weeyuga sandbox build`)"
    elif not status.current:
        why = f"the image {config.tag} predates profiles/sandbox.yaml (run `weeyuga sandbox build`)"
    else:
        return DockerReadiness(True, engine, f"{config.tag} ({status.digest[:19]}, {status.built_from})", config.tag,
                               status.digest, status.built_from)
    return DockerReadiness(False, engine, why, config.tag, status.digest, status.built_from)


def choose_sandbox(requested: str, readiness: Callable[[], DockerReadiness] | None = None) -> SandboxChoice:
    """`process` as asked; `docker` when ready (bad input otherwise); `auto`: Docker when ready,
    the process sandbox otherwise, with the reason."""
    if requested not in SANDBOX_CHOICES:
        raise BadInput(f"--sandbox: {requested!r} is not one of {', '.join(SANDBOX_CHOICES)}")
    if requested == "process":
        return SandboxChoice("process", requested, "asked for the process sandbox")
    docker = (readiness or docker_readiness)()
    if docker.ready:
        return SandboxChoice("docker", requested, f"Docker is ready: {docker.reason}", docker.image, docker.digest,
                             docker.built_from)
    if requested == "docker":
        raise BadInput(f"--sandbox docker: {docker.reason}")
    return SandboxChoice("process", requested, f"Docker is not ready: {docker.reason}")


@dataclass(frozen=True)
class RunSandbox:
    """What the phases run model-written code in, from the run's recorded choice."""
    agent_factory: Callable[[], Any]  # a fresh agent Sandbox per task attempt
    toolchain_check: Callable[[str], str | None]
    code_runner: Any  # codeexec's CodeRunner; None: its default process runner


def run_sandbox(record: dict[str, Any] | None) -> RunSandbox:
    """The process sandbox unless the run chose Docker; a resume refuses an image that changed."""
    from orchestrator.evaluate.sandbox.process import ProcessSandbox
    from orchestrator.evaluate.agent.tasks import toolchain_missing

    if not record or record.get("kind") != "docker":
        return RunSandbox(ProcessSandbox, toolchain_missing, None)
    from orchestrator.evaluate.sandbox.docker.sandbox import DockerCodeRunner, DockerSandbox

    config = load_config()
    client = connect()
    status = image_status(client, config)
    if status.digest != record.get("digest"):
        raise WeeyugaError(f"the run chose the Docker sandbox {record.get('image')} ({record.get('digest')}); "
                           f"{config.tag} is now {status.digest or 'absent'}: start a new run")
    return RunSandbox(lambda: DockerSandbox(client, config), lambda language: None, DockerCodeRunner(client, config))
