"""ProcessSandbox: a scrubbed environment, rlimits, a wall timeout that kills the whole group,
and network isolation recorded as probed, never assumed."""

from __future__ import annotations

import os
import socket
import sys
import time

import pytest

from orchestrator.evaluate.agent import ProcessSandbox, load_tasks
from orchestrator.evaluate.sandbox.process import Limits, network_isolation_works
from orchestrator.evaluate.agent.tasks import memory_limit_mb

TASK = {task.id: task for task in load_tasks()}["py-slugify"]


@pytest.fixture
def sandbox():
    made = ProcessSandbox(Limits(cpu_s=20, file_size_mb=1, open_files=64, memory_mb=1024))
    made.prepare(TASK)
    yield made
    made.destroy()


def python(sandbox: ProcessSandbox, code: str, timeout_s: float = 30):
    return sandbox.run([sys.executable, "-c", code], timeout_s)


def test_prepare_copies_seed_and_pristine_tests_but_no_solution(sandbox):
    names = sorted(p.relative_to(sandbox.workspace).as_posix() for p in sandbox.workspace.rglob("*"))
    assert names == ["slug.py", "tests", "tests/test_slug.py"]
    assert "NotImplementedError" in sandbox.read_file("slug.py").decode()
    assert sandbox.scratch not in sandbox.workspace.parents


def test_the_environment_is_scrubbed(sandbox, monkeypatch):
    for name, value in {"HTTP_PROXY": "http://proxy:3128", "GITHUB_TOKEN": "ghp_x", "OPENAI_API_KEY": "sk-x"}.items():
        monkeypatch.setenv(name, value)
    result = python(sandbox, "import os; print(sorted(os.environ)); print(os.environ['HOME'])")
    assert result.exit_code == 0
    assert "PROXY" not in result.output and "TOKEN" not in result.output and "API_KEY" not in result.output
    assert os.path.expanduser("~") not in result.output.splitlines()[-1]


def test_the_wall_timeout_kills_the_whole_process_group(sandbox):
    started = time.monotonic()
    result = python(sandbox, "import subprocess, time\n"
                             "child = subprocess.Popen(['sleep', '60'])\n"
                             "open('child.pid', 'w').write(str(child.pid))\n"
                             "time.sleep(60)\n", timeout_s=2)
    assert result.timed_out and result.exit_code is None and time.monotonic() - started < 15
    assert "ran longer than 2 s" in result.output
    child = int(sandbox.read_file("child.pid"))
    assert wait_until_dead(child)


def wait_until_dead(pid: int, within_s: float = 5.0) -> bool:
    """Gone, or a zombie waiting for whoever adopted it to reap it (PID 1 in a container)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_rlimits_cap_file_size_and_core_dumps(sandbox):
    result = python(sandbox, "import resource\n"
                             "print(resource.getrlimit(resource.RLIMIT_CORE), resource.getrlimit(resource.RLIMIT_NOFILE))\n"
                             "open('big.bin', 'wb').write(b'x' * (3 * 2**20))\n")
    assert result.exit_code != 0
    assert "(0, 0) (64, 64)" in result.output
    assert (sandbox.workspace / "big.bin").stat().st_size <= 2**20


def test_memory_limits_only_where_the_runtime_allows():
    assert memory_limit_mb("python") and memory_limit_mb("cpp")
    assert memory_limit_mb("javascript") is None  # V8 reserves more address space than any sane RLIMIT_AS


def test_network_isolation_is_recorded_as_probed(sandbox):
    """What the sandbox records is what happens: where `unshare -rn` works the code cannot reach the
    host's loopback; where it does not, net_isolated is false and the connection goes through (no skip)."""
    assert sandbox.net_isolated == network_isolation_works()
    assert ProcessSandbox(isolate_network=False).net_isolated is False
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        result = python(sandbox, f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)")
    if sandbox.net_isolated:
        assert result.exit_code != 0 and ("refused" in result.output or "unreachable" in result.output)
    else:
        assert result.exit_code == 0, result.output
