"""The Docker sandbox against a fake engine (tests/fakes/docker_engine.py): the container spec,
the exec wrapper and user, the wall timeout, reaping, the choice, the image build decisions and
profiles/sandbox.yaml. The real engine is in test_integration_docker.py."""

from __future__ import annotations

import json
import os

import pytest

from orchestrator.core import datafiles
from orchestrator.evaluate.agent import load_tasks
from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.evaluate.sandbox.docker import choice
from orchestrator.evaluate.sandbox.docker.choice import DockerReadiness, choose_sandbox, run_sandbox
from orchestrator.evaluate.sandbox.docker.config import CONFIG_PATH, load_config
from orchestrator.evaluate.sandbox.docker.engine import (COMMAND_WRAPPER, LABEL_KIND, LABEL_OWNER, Container, container_spec,
                                                owner_label, reap_leftovers)
from orchestrator.evaluate.sandbox.docker import engine as engine_module
from orchestrator.evaluate.sandbox.docker.engine import wait_removed
from orchestrator.evaluate.sandbox.docker.image import build_image, dockerfile, image_labels
from orchestrator.evaluate.sandbox.docker.sandbox import DOCKER, DockerSandbox
from tests.fakes.docker_engine import FakeContainer, FakeEngine, FakeImage

CONFIG = load_config()
TASK = load_tasks(ids=("py-slugify",))[0]


def test_the_sandbox_file_validates_and_bad_ones_name_the_file(tmp_path):
    assert CONFIG.tag == f"weeyuga-sandbox:{CONFIG.version}" and {"python3", "nodejs", "g++"} <= set(CONFIG.packages)
    text = CONFIG_PATH.read_text()
    for broken, field in ((text.replace('user: "65534:65534"', 'user: "0:0"'), "user"),
                          (text.replace("  pids: 256", "  pids: 0"), "pids"),
                          (text + "registry_token: x\n", "registry_token")):
        path = tmp_path / "sandbox.yaml"
        path.write_text(broken)
        with pytest.raises(BadInput) as caught:
            datafiles.load(path, "sandbox")
        assert str(path) in str(caught.value) and field in str(caught.value)


def test_the_container_has_no_network_limits_a_read_only_root_and_one_writable_mount(tmp_path):
    spec = container_spec(CONFIG, tmp_path, "agent", "123:4.00")
    limits = CONFIG.limits
    assert spec["network_mode"] == "none" and spec["read_only"] is True
    assert spec["mem_limit"] == spec["memswap_limit"] == f"{limits['memory_mb']}m"  # no swap beyond the limit
    assert spec["pids_limit"] == limits["pids"] and spec["nano_cpus"] == int(limits["cpus"] * 1e9)
    assert spec["volumes"] == {str(tmp_path): {"bind": str(tmp_path), "mode": "rw"}}
    assert list(spec["tmpfs"]) == ["/tmp"] and f"size={limits['tmp_mb']}m" in spec["tmpfs"]["/tmp"]
    assert {u["Name"]: u["Hard"] for u in spec["ulimits"]} == {
        "fsize": limits["file_size_mb"] * 2**20, "core": 0, "nofile": limits["open_files"]}
    assert spec["cap_drop"] == ["ALL"] and spec["security_opt"] == ["no-new-privileges"]
    assert spec["labels"] == {LABEL_KIND: "agent", LABEL_OWNER: "123:4.00"}
    assert spec["auto_remove"] and spec["init"] and spec["command"] == ["sleep", str(limits["lifetime_s"])]
    assert "privileged" not in spec and "ports" not in spec


@pytest.mark.parametrize("euid, expected", [(0, CONFIG.user), (1000, "1000:")])
def test_commands_never_run_as_root(euid, expected, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    user = CONFIG.exec_user()
    assert user.startswith(expected) and not user.startswith("0:")


@pytest.fixture
def engine():
    return FakeEngine({"stdout": b"5 passed\n", "stderr": b"", "exit": 0})


def test_one_container_per_attempt_and_commands_through_the_wrapper(engine, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_x")
    sandbox = DockerSandbox(engine, CONFIG)
    sandbox.prepare(TASK)
    argv = sandbox.resolve_program(("{python}", "-m", "pytest", "--junitxml={report}"), {"report": "/r.xml"})
    assert argv == [CONFIG.python, "-m", "pytest", "--junitxml=/r.xml"]  # the image's Python, not ours
    first = sandbox.run(argv, 30)
    second = sandbox.run(argv, 30)
    assert (first.exit_code, first.output, first.timed_out) == (0, "5 passed\n", False) and second.exit_code == 0
    assert len(engine.runs) == 1 and engine.runs[0]["volumes"] == {str(sandbox.base): {"bind": str(sandbox.base), "mode": "rw"}}
    call = engine.api.execs[0]
    assert call["cmd"] == ["/bin/sh", "-c", COMMAND_WRAPPER, "sh", *argv]
    assert call["user"] == CONFIG.exec_user() and call["workdir"] == str(sandbox.workspace)
    assert "GITHUB_TOKEN" not in call["environment"] and call["environment"]["HOME"].startswith(str(sandbox.scratch))
    base = sandbox.base
    sandbox.destroy()
    assert not base.exists() and not engine.running  # killed; the engine deletes it (auto-remove)


def test_a_command_past_its_wall_time_kills_the_container_and_the_next_starts_a_new_one(monkeypatch):
    engine = FakeEngine("hang")
    sandbox = DockerSandbox(engine, CONFIG)
    sandbox.prepare(TASK)
    try:
        result = sandbox.run(["/usr/bin/python3", "-c", "while True: pass"], 0.3)
        assert result.timed_out and result.exit_code is None and "ran longer than 0.3 s" in result.output
        assert not engine.running
        engine.exec_script = {"stdout": b"ok", "exit": 0}
        assert sandbox.run(["true"], 5).exit_code == 0 and len(engine.runs) == 2
    finally:
        sandbox.destroy()


def test_a_container_that_stopped_between_commands_is_replaced(engine):
    sandbox = DockerSandbox(engine, CONFIG)
    sandbox.prepare(TASK)
    try:
        assert sandbox.run(["true"], 5).exit_code == 0
        engine.running.clear()  # it reached its lifetime, or the engine restarted
        assert sandbox.run(["true"], 5).exit_code == 0 and len(engine.runs) == 2
    finally:
        sandbox.destroy()


def test_weeyuga_waits_at_exit_until_the_engine_has_deleted_its_containers(engine, tmp_path, monkeypatch):
    """`agent run --sandbox docker` must not exit while its containers still exist."""
    from docker.errors import NotFound

    container = Container(engine, CONFIG, tmp_path, "agent")
    container.ensure_started()
    lookups = []

    def still_there_twice(container_id):
        lookups.append(container_id)
        if len(lookups) < 3:
            return object()  # killed, not yet deleted (auto-remove takes seconds on vfs)
        raise NotFound("gone")

    monkeypatch.setattr(engine.containers, "get", still_there_twice)
    container.remove()
    assert not lookups and container.container is None  # removing does not wait for each container
    wait_removed()  # registered with atexit
    assert len(lookups) == 3 and not engine_module._KILLED


def test_leftovers_whose_owner_is_gone_are_reaped_once_per_engine_at_the_first_start(engine, tmp_path):
    alive = FakeContainer(engine, "a" * 64, {"labels": {LABEL_KIND: "agent", LABEL_OWNER: owner_label()}})
    dead = FakeContainer(engine, "d" * 64, {"labels": {LABEL_KIND: "agent", LABEL_OWNER: f"{2**22 + 7}:1.00"}})
    unlabelled = FakeContainer(engine, "e" * 64, {"labels": {LABEL_KIND: "codeexec"}})
    engine.listed = [alive, dead, unlabelled]
    assert reap_leftovers(engine) == ["d" * 12, "e" * 12]
    assert engine.removed == ["d" * 64, "e" * 64]
    fresh = FakeEngine()
    fresh.listed = [FakeContainer(fresh, "d" * 64, dead.spec)]
    for _ in range(2):
        container = Container(fresh, CONFIG, tmp_path, "agent")
        container.ensure_started()
        container.remove()
    assert fresh.removed == ["d" * 64]  # reaped at the first start only


def ready(digest="sha256:" + "c" * 64):
    return DockerReadiness(True, "Docker 20.10", "weeyuga-sandbox:1 ready", CONFIG.tag, digest, "debootstrap trixie")


def unready():
    return DockerReadiness(False, None, "the Docker engine is not reachable: no socket", CONFIG.tag, None, None)


def test_the_choice_auto_docker_process_and_what_it_records():
    assert choose_sandbox("process", unready).kind == "process"
    picked = choose_sandbox("auto", ready)
    assert picked.record() == {"kind": "docker", "requested": "auto", "reason": "Docker is ready: weeyuga-sandbox:1 ready",
                               "image": CONFIG.tag, "digest": "sha256:" + "c" * 64, "built_from": "debootstrap trixie",
                               "strength": "container", "containment": DOCKER.detail}
    fallback = choose_sandbox("auto", unready)
    assert fallback.kind == "process" and "not reachable: no socket" in fallback.reason
    assert fallback.strength == "namespaces"
    with pytest.raises(BadInput, match="--sandbox docker: the Docker engine is not reachable"):
        choose_sandbox("docker", unready)
    with pytest.raises(BadInput, match="not one of"):
        choose_sandbox("vm", ready)


def test_a_run_sandbox_from_its_record_and_a_changed_image_refused(engine, monkeypatch):
    assert run_sandbox({}).agent_factory().kind == "process"
    engine.stored_images[CONFIG.tag] = FakeImage("sha256:" + "9" * 64, image_labels(CONFIG, "debootstrap"))
    monkeypatch.setattr(choice, "connect", lambda: engine)
    record = choose_sandbox("docker", lambda: ready("sha256:" + "9" * 64)).record()
    made = run_sandbox(record)
    assert made.toolchain_check("cpp") is None and made.code_runner.net_isolated
    with pytest.raises(WeeyugaError, match="start a new run"):
        run_sandbox({**record, "digest": "sha256:" + "1" * 64})


def test_a_current_image_is_reused_and_a_registry_build_replaces_a_stale_one(engine):
    engine.stored_images[CONFIG.tag] = FakeImage("sha256:" + "1" * 64, image_labels(CONFIG, "debootstrap"))
    cached = build_image(engine, CONFIG, registry_check=lambda *a: pytest.fail("no build needed"))
    assert cached.method == "cached" and not engine.builds
    engine.stored_images[CONFIG.tag] = FakeImage("sha256:" + "2" * 64, {})  # no config label: stale
    engine.labels_for_build = image_labels(CONFIG, f"dockerfile FROM {CONFIG.registry_base}")
    built = build_image(engine, CONFIG, registry_check=lambda *a: True)
    assert built.method == "registry" and built.image.current and built.image.built_from.startswith("dockerfile")
    assert engine.images_removed == ["sha256:" + "2" * 64]
    text = dockerfile(CONFIG)
    assert text.startswith(f"FROM {CONFIG.registry_base}\n") and " ".join(CONFIG.packages) in text
    assert CONFIG.image_sha256 in text


def test_offline_without_debootstrap_or_root_is_one_line(engine, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda *a, **k: None)
    with pytest.raises(WeeyugaError, match="debootstrap is not installed"):
        build_image(engine, CONFIG, "offline")


def test_cli_sandbox_status_says_why_auto_falls_back(capsys):
    from orchestrator.cli import main

    assert main(["sandbox", "status"]) == 1  # the engine is pinned off in unit tests (conftest)
    out = capsys.readouterr().out
    assert "engine: not reachable" in out and "--sandbox auto uses: process" in out


def solve_by_cli(tmp_path, sandbox: str):
    """`weeyuga agent run --sandbox <sandbox>` on py-slugify against the fake server answering with the
    scripted solver; the run folder and its manifest's `sandbox`."""
    from tests.fakes.agent_model import solver_turns
    from tests.fakes.openai_server import start_in_thread
    from tests.test_agent_phase import agent_cli

    server, state, url = start_in_thread()
    try:
        state.tool_turns = solver_turns("py-slugify")
        assert agent_cli(url, tmp_path, "--tasks", "py-slugify", "--sandbox", sandbox, "--passes", "1") == 0
    finally:
        server.shutdown()
    (run_dir,) = [p.parent for p in tmp_path.rglob("run.jsonl")]
    return run_dir, json.loads((run_dir / "manifest.json").read_text())["sandbox"]


def test_cli_agent_run_records_the_process_sandbox_in_the_manifest(tmp_path):
    _, recorded = solve_by_cli(tmp_path, "auto")
    assert (recorded["kind"], recorded["requested"], recorded["image"]) == ("process", "auto", None)
    assert "pinned off" in recorded["reason"]


def test_waiting_at_exit_is_quiet_when_the_engine_is_already_gone(engine, tmp_path, monkeypatch):
    import requests

    container = Container(engine, CONFIG, tmp_path, "codeexec")
    container.ensure_started()
    container.remove()

    def engine_gone(container_id):
        raise requests.exceptions.ConnectionError("Connection aborted.")

    monkeypatch.setattr(engine.containers, "get", engine_gone)
    wait_removed()
    assert not engine_module._KILLED
