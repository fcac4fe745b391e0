"""The Docker sandbox against a real engine (conftest's `docker_engine` installs, starts and
builds what is missing; under CI=true these tests fail when Docker cannot be had, never skip)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from orchestrator.evaluate.agent import Budgets, load_tasks, run_agent_tasks
from orchestrator.evaluate.agent.gate import run_gate
from orchestrator.core.procs import spawn_options
from orchestrator.evaluate.sandbox.code import ProcessCodeRunner
from orchestrator.evaluate.sandbox.process import ProcessSandbox
from orchestrator.evaluate.sandbox.docker.choice import choose_sandbox, run_sandbox
from orchestrator.evaluate.sandbox.docker.engine import labelled_containers, reap_leftovers
from orchestrator.evaluate.sandbox.docker.sandbox import DockerCodeRunner, DockerSandbox
from tests.conftest import REAL_DOCKER_READINESS
from tests.fakes.agent_model import ScriptedModel, solution_files, solver_turns
from tests.test_agent_gate import sandboxes
from tests.test_quality_sandbox import GOOD, judge

pytestmark = pytest.mark.integration

TASKS = {task.id: task for task in load_tasks()}
BUDGETS = Budgets(context_tokens=100_000, steps_per_pass=8, passes=3, max_tokens=256, command_timeout_s=60, max_stale=2)
SLUG = solution_files("py-slugify")["slug.py"]


@pytest.fixture
def docker_sandbox(docker_engine):
    yield from sandboxes(lambda: DockerSandbox(docker_engine))


def solve(task_id: str, factory, turns=None) -> tuple[dict, list[dict]]:
    records: list[dict] = []
    run_agent_tasks([TASKS[task_id]], ScriptedModel(turns or solver_turns(task_id)), "ralph", BUDGETS, factory,
                    on_record=records.append, toolchain_check=lambda language: None)
    return [r for r in records if r["record"] == "agent_run"][0], [r for r in records if r["record"] == "agent_pass"]


def all_removed(client, within_s: float = 60) -> bool:
    """Killed containers are deleted by the engine (auto-remove) a few seconds later on vfs."""
    deadline = time.monotonic() + within_s
    while labelled_containers(client):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


@pytest.mark.parametrize("task_id", sorted(TASKS))
def test_the_scripted_solver_gets_the_same_verdict_in_docker_as_in_the_process_sandbox(task_id, docker_engine):
    """Every satisfiable task completes in Docker, the unsatisfiable one does not, and both
    sandboxes agree on the outcome and the last gate's counts."""
    docker_run, docker_passes = solve(task_id, lambda: DockerSandbox(docker_engine))
    process_run, process_passes = solve(task_id, ProcessSandbox)
    expected = "stagnated" if TASKS[task_id].kind == "unsatisfiable" else "completed"
    assert docker_run["outcome"] == expected, docker_run["reason"]
    assert (docker_run["sandbox"], docker_run["net_isolated"]) == ("docker", True)
    assert docker_run["outcome"] == process_run["outcome"]
    last = [(p["gate_passed"], p["tests_passed"], p["tests_failed"]) for p in (docker_passes[-1], process_passes[-1])]
    assert last[0] == last[1]


def test_os_exit_zero_and_tampered_tests_never_pass_and_are_recorded(docker_engine, docker_sandbox):
    cheat = "import os\nos._exit(0)\n\ndef slugify(title):\n    return ''\n"
    final, passes = solve("py-slugify", lambda: DockerSandbox(docker_engine),
                          [[("write_file", {"path": "slug.py", "content": cheat})], [("done", {"summary": "ok"})]] * 3)
    assert final["outcome"] in ("stagnated", "budget") and "no report" in passes[0]["gate_reason"]
    sandbox = docker_sandbox("py-slugify")
    sandbox.write_file("slug.py", SLUG.encode())
    # From inside the container: the code rewrites the tests; the gate restores them before each run.
    sandbox.run(["/usr/bin/python3", "-c", "open('tests/test_slug.py', 'w').write('def test_ok(): pass\\n')"], 30)
    sandbox.write_file("tests/test_slug.py", b"def test_ok():\n    assert True\n")
    gate = run_gate(sandbox, TASKS["py-slugify"], timeout_s=60)
    assert gate.passed and gate.tests_passed == 5  # the pristine five tests, not the forged one


def test_the_code_sees_neither_the_host_nor_the_network(docker_sandbox, tmp_path):
    sandbox = docker_sandbox("py-slugify")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    probe = ("import os, socket\n"
             f"print('host repo visible:', os.path.exists({str(tmp_path)!r}) or os.path.exists('/work'))\n"
             "for target in [('127.0.0.1', %d), ('1.1.1.1', 53)]:\n"
             "    try:\n        socket.create_connection(target, timeout=3); print('connected', target)\n"
             "    except OSError as exc:\n        print('refused', target, exc.errno)\n"
             "for path in ['/etc/evil', '/usr/lib/evil', '../evil']:\n"
             "    try:\n        open(path, 'w').write('x'); print('wrote', path)\n"
             "    except OSError as exc:\n        print('cannot write', path, exc.strerror)\n"
             "print('uid', os.getuid())\n") % port
    try:
        result = sandbox.run(["/usr/bin/python3", "-c", probe], 30)
    finally:
        listener.close()
    assert result.exit_code == 0, result.output
    assert "host repo visible: False" in result.output and "connected" not in result.output
    assert "wrote /etc/evil" not in result.output and "wrote /usr/lib/evil" not in result.output
    assert "uid 0" not in result.output


def test_a_fork_bomb_and_a_memory_hog_are_contained(docker_sandbox):
    sandbox = docker_sandbox("py-slugify")
    started = time.monotonic()
    bomb = sandbox.run(["/usr/bin/python3", "-c", "import os\nwhile True:\n    try:\n        os.fork()\n"
                        "    except OSError:\n        pass\n"], 10)
    assert bomb.exit_code != 0 and time.monotonic() - started < 40
    hog = sandbox.run(["/usr/bin/python3", "-c", "x = bytearray(8 * 1024 ** 3)\nprint('allocated')"], 30)
    assert hog.exit_code != 0 and not hog.timed_out and "allocated" not in hog.output
    after = sandbox.run(["/usr/bin/python3", "-c", "print('still usable')"], 30)  # a fresh container if the bomb took it
    assert after.exit_code == 0 and "still usable" in after.output


def test_a_command_that_never_ends_is_killed_with_everything_it_started(docker_sandbox, docker_engine):
    sandbox = docker_sandbox("py-slugify")
    started = time.monotonic()
    result = sandbox.run(["/usr/bin/python3", "-c", "import subprocess, time\nsubprocess.Popen(['sleep', '600'])\n"
                          "time.sleep(600)\n"], 2)
    assert result.timed_out and result.exit_code is None and "ran longer than 2 s" in result.output
    assert time.monotonic() - started < 20
    assert not [c for c in labelled_containers(docker_engine) if c.attrs["State"] == "running"]
    assert sandbox.run(["/usr/bin/python3", "-c", "print('next')"], 30).exit_code == 0


def test_leftovers_of_a_killed_owner_are_reaped_at_the_next_start(docker_engine):
    owner = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom orchestrator.evaluate.agent import load_tasks\n"
         "from orchestrator.evaluate.sandbox.docker.sandbox import DockerSandbox\n"
         "s = DockerSandbox(); s.prepare(load_tasks(ids=('py-slugify',))[0]); s.run(['true'], 30)\n"
         "print(s.container.container.id, flush=True); time.sleep(600)\n"],
        stdout=subprocess.PIPE, text=True, cwd=os.getcwd(), **spawn_options())
    try:
        container_id = owner.stdout.readline().strip()
        assert container_id, "the owner did not start its container"
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
        assert container_id in [c.id for c in labelled_containers(docker_engine)]  # kill -9: nothing ran to remove it
        reaped = reap_leftovers(docker_engine)
        assert container_id[:12] in reaped and container_id not in [c.id for c in labelled_containers(docker_engine)]
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


CODEEXEC_CASES = {"good": GOOD, "wrong": "def add(a, b):\n    return a * b if a > 0 else a + b\n",
                  "os._exit(0)": "import os\nos._exit(0)\n" + GOOD, "endless": "def add(a, b):\n    while True:\n        pass\n"}


def test_codeexec_gives_the_same_verdict_in_both_sandboxes(docker_engine):
    runner = DockerCodeRunner(docker_engine)
    for case, code in CODEEXEC_CASES.items():
        docker, process = judge(code, runner), judge(code, ProcessCodeRunner())
        assert (docker.passed, docker.failure_mode, docker.score) == (process.passed, process.failure_mode, process.score), case
    assert all_removed(docker_engine)  # a container per program, each removed


def test_auto_chooses_docker_when_ready_and_records_image_and_digest(docker_engine, monkeypatch):
    from orchestrator.evaluate.sandbox.docker import choice

    monkeypatch.setattr(choice, "docker_readiness", REAL_DOCKER_READINESS)
    picked = choose_sandbox("auto")
    assert picked.kind == "docker" and picked.digest.startswith("sha256:") and "debootstrap" in picked.built_from
    record = json.loads(json.dumps(picked.record()))
    sandbox = run_sandbox(record)
    made = sandbox.agent_factory()
    try:
        assert made.kind == "docker" and sandbox.toolchain_check("cpp") is None
    finally:
        made.destroy()


def test_cli_agent_run_with_sandbox_docker_records_the_image_in_the_manifest(docker_engine, monkeypatch, tmp_path):
    from orchestrator.evaluate.sandbox.docker import choice
    from tests.test_agent_phase import lines
    from tests.test_sandbox_docker import solve_by_cli

    monkeypatch.setattr(choice, "docker_readiness", REAL_DOCKER_READINESS)
    run_dir, sandbox = solve_by_cli(tmp_path, "docker")
    (run,) = lines(run_dir, "agent_run")
    assert (run["outcome"], run["sandbox"], run["net_isolated"]) == ("completed", "docker", True)
    assert (sandbox["kind"], sandbox["requested"]) == ("docker", "docker")
    assert sandbox["digest"] == docker_engine.images.get(sandbox["image"]).id and sandbox["built_from"].startswith("debootstrap")
