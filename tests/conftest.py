"""Shared fixtures. Unit tests get a private weeyuga cache; integration tests share the real one."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.measure import contention, run
from orchestrator.core import paths, records
from orchestrator.core.procs import run_captured
from orchestrator.evaluate.sandbox.contain import probe_containment
from orchestrator.evaluate.sandbox.docker import choice as sandbox_choice
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


def apt_install(packages: list[str]) -> str | None:
    """apt-get install (CI runs as root with Debian's archive); None, or why it failed."""
    if not shutil.which("apt-get"):
        return "no apt-get on this machine"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    result = None
    install = ["apt-get", "install", "-y", *packages]
    for argv in (install, ["apt-get", "update"], install):
        try:
            result = run_captured(argv, timeout=1200, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(argv)}: {exc}"
        if argv[1] == "install" and result.returncode == 0:
            return None
    return f"{' '.join(install)} exited {result.returncode}: {result.stderr.strip()[-300:]}"


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Headless Chromium for browser tests, installed when missing. Without it a browser test fails
    under CI=true (never skips) and skips elsewhere, saying why."""
    problem = None
    if not CHROMIUM.exists():
        problem = apt_install(["chromium"])
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


@pytest.fixture(scope="session", autouse=True)
def bubblewrap():
    """The process sandbox contains model-written code with bwrap: installed when missing (Debian's
    bubblewrap). Where it cannot be had, the tests that run code fail saying so (NoContainment)."""
    if not shutil.which("bwrap"):
        problem = apt_install(["bubblewrap"])
        if problem:
            print(f"bubblewrap unavailable: {problem}")
        probe_containment.cache_clear()
    yield


# Docker: unit tests never ask the engine (auto and doctor see "not ready"); the integration tests
# of the Docker sandbox take `docker_engine`, which installs, starts and builds what is missing.
REAL_DOCKER_READINESS = sandbox_choice.docker_readiness
DOCKERD_ARGV = ["dockerd", "--storage-driver=vfs", "--iptables=false", "--bridge=none"]  # runs in containers and VMs alike
DOCKERD_READY_S = 60


@pytest.fixture(scope="session", autouse=True)
def docker_pinned_unready():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sandbox_choice, "docker_readiness", lambda *args, **kwargs: sandbox_choice.DockerReadiness(
            False, None, "unit tests: the Docker engine is pinned off", "weeyuga-sandbox:test", None, None))
        yield


def start_dockerd(log_path: Path) -> tuple[subprocess.Popen | None, str | None]:
    """dockerd in its own process group, logging to `log_path`; (process, None) once it answers."""
    import time

    from orchestrator.evaluate.sandbox.docker.engine import EngineUnavailable, connect

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(DOCKERD_ARGV, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + DOCKERD_READY_S
    while time.monotonic() < deadline:
        try:
            connect(timeout_s=5)
            return proc, None
        except EngineUnavailable:
            if proc.poll() is not None:
                return None, f"dockerd exited {proc.returncode}; see {log_path}"
            time.sleep(0.5)
    stop_dockerd(proc)
    return None, f"dockerd did not answer within {DOCKERD_READY_S} s; see {log_path}"


def stop_dockerd(proc: subprocess.Popen) -> None:
    import signal

    from orchestrator.core.procs import kill_group

    kill_group(proc, signal.SIGTERM)  # dockerd stops its containers and containerd on SIGTERM
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.wait()


@pytest.fixture(scope="session")
def docker_engine():
    """A Docker engine with the current sandbox image, for the Docker sandbox's integration tests:
    docker.io and debootstrap installed when dockerd is missing, dockerd started when nothing
    answers (and stopped at the end), the image built once (its root filesystem cached under the
    real weeyuga cache, the image kept by the engine between runs). Fails under CI=true, never skips."""
    from orchestrator.core.errors import WeeyugaError
    from orchestrator.evaluate.sandbox.docker.config import load_config
    from orchestrator.evaluate.sandbox.docker.engine import EngineUnavailable, connect
    from orchestrator.evaluate.sandbox.docker.image import build_image

    started = None
    problem = None
    try:
        client = connect()
    except EngineUnavailable:
        client = None
        if not shutil.which("dockerd") or not shutil.which("debootstrap"):
            problem = apt_install(["docker.io", "debootstrap"])
        if problem is None:
            started, problem = start_dockerd(REAL_CACHE / "sandbox" / "dockerd.log")
        if problem is None:
            client = connect()
    if problem is None:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("WEEYUGA_CACHE", str(REAL_CACHE))
            try:
                build = build_image(client, load_config(), progress=lambda line: print(f"sandbox build: {line}"))
            except WeeyugaError as exc:
                problem = f"weeyuga sandbox build failed: {exc}"
    if problem:
        if started:
            stop_dockerd(started)
        (pytest.fail if in_ci() else pytest.skip)(f"Docker sandbox unavailable: {problem}")
    print(f"sandbox image {build.image.tag} {build.method} in {build.total_s:.1f} s")
    yield client
    client.close()
    if started:
        stop_dockerd(started)
