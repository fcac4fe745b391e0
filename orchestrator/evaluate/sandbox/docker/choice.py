"""Which sandbox a run uses (`--sandbox docker|process|auto|none`), recorded in the run's options and
manifest with its strength, and what the agent and quality phases build from that record.

Kinds: docker (a container), process (the process sandbox, contained by bwrap or sandbox-exec),
none (uncontained: only on `--sandbox none`), unavailable (nothing contains code here and none was
not asked for: model-written code does not run, and the agent tasks and codeexec are skipped)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.evaluate.sandbox.docker.config import SandboxConfig, load_config
from orchestrator.evaluate.sandbox.docker.engine import EngineUnavailable, connect
from orchestrator.evaluate.sandbox.docker.image import image_status
from orchestrator.evaluate.sandbox.docker.sandbox import DOCKER, DockerCodeRunner, DockerSandbox
from orchestrator.evaluate.agent.tasks import toolchain_missing
from orchestrator.evaluate.sandbox.code import ProcessCodeRunner
from orchestrator.evaluate.sandbox.contain import HOW_TO_CONTAIN, Containment, probe_containment, uncontained
from orchestrator.evaluate.sandbox.process import ProcessSandbox

SANDBOX_CHOICES = ("process", "docker", "auto", "none")


@dataclass(frozen=True)
class SandboxChoice:
    kind: str  # docker | process | none | unavailable
    requested: str  # what the command asked for
    reason: str
    image: str | None = None
    digest: str | None = None
    built_from: str | None = None
    strength: str = "none"  # container | namespaces | sandbox-exec | network-only | none (Containment.strength)
    containment: str = ""  # what contains the code, or why nothing does

    @property
    def runs_code(self) -> bool:
        return self.kind != "unavailable"

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


def choose_sandbox(requested: str, readiness: Callable[[], DockerReadiness] | None = None,
                   containment: Callable[[], Containment] = probe_containment) -> SandboxChoice:
    """`docker` when ready (bad input otherwise); `process` when this machine can contain code;
    `auto`: Docker when ready, else the process sandbox when it contains, else unavailable;
    `none`: uncontained, as asked. Unavailable says why and how to enable it."""
    if requested not in SANDBOX_CHOICES:
        raise BadInput(f"--sandbox: {requested!r} is not one of {', '.join(SANDBOX_CHOICES)}")
    if requested == "none":
        bare = uncontained()
        return SandboxChoice("none", requested, "asked to run model-written code uncontained (--sandbox none)",
                             strength=bare.strength, containment=bare.detail)
    docker = (readiness or docker_readiness)() if requested != "process" else None
    if docker and docker.ready:
        return SandboxChoice("docker", requested, f"Docker is ready: {docker.reason}", docker.image, docker.digest,
                             docker.built_from, DOCKER.strength, DOCKER.detail)
    if requested == "docker":
        raise BadInput(f"--sandbox docker: {docker.reason}")
    process = containment()
    before = f"Docker is not ready: {docker.reason}; " if docker else ""
    if process.contained:
        return SandboxChoice("process", requested, f"{before}the process sandbox contains it ({process.strength})",
                             strength=process.strength, containment=process.detail)
    return SandboxChoice("unavailable", requested, f"{before}no containment for model-written code here "
                         f"({process.detail}), so the agent tasks and codeexec do not run: {HOW_TO_CONTAIN}",
                         strength="none", containment=process.detail)


@dataclass(frozen=True)
class RunSandbox:
    """What the phases run model-written code in, from the run's recorded choice."""
    agent_factory: Callable[[], Any]  # a fresh agent Sandbox per task attempt
    toolchain_check: Callable[[str], str | None]
    code_runner: Any  # codeexec's CodeRunner; None where no code runs
    skip_reason: str | None = None  # why no model-written code runs in this run


def run_sandbox(record: dict[str, Any] | None) -> RunSandbox:
    """The recorded kind (an empty record: the process sandbox); a resume refuses a Docker image
    that changed, and a process sandbox that no longer contains is unavailable."""
    kind = (record or {}).get("kind") or "process"
    if kind == "none":
        bare = uncontained()
        return RunSandbox(lambda: ProcessSandbox(containment=bare), toolchain_missing, ProcessCodeRunner(containment=bare))
    if kind == "process" and probe_containment().contained:
        return RunSandbox(ProcessSandbox, toolchain_missing, ProcessCodeRunner())
    if kind != "docker":
        reason = (record or {}).get("reason") if kind == "unavailable" else f"no containment here ({probe_containment().detail}): {HOW_TO_CONTAIN}"
        return RunSandbox(unavailable, lambda language: None, None, reason)
    config = load_config()
    client = connect()
    status = image_status(client, config)
    if status.digest != record.get("digest"):
        raise WeeyugaError(f"the run chose the Docker sandbox {record.get('image')} ({record.get('digest')}); "
                           f"{config.tag} is now {status.digest or 'absent'}: start a new run")
    return RunSandbox(lambda: DockerSandbox(client, config), lambda language: None, DockerCodeRunner(client, config))


def unavailable() -> Any:
    raise WeeyugaError("no sandbox: model-written code does not run in this run")

