"""The audit's escape probes (#25 §1), as model-written code would try them, in the process sandbox
(bwrap; conftest installs bubblewrap) and in Docker (conftest's `docker_engine`). Each must fail to
escape. Under CI=true none of them skips: a sandbox that cannot be had fails its tests."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import time
from pathlib import Path

import pytest

from orchestrator.evaluate.agent import load_tasks
from orchestrator.evaluate.agent.gate import run_gate
from orchestrator.evaluate.agent.tools import Toolbox
from orchestrator.evaluate.sandbox.docker.sandbox import DockerSandbox
from orchestrator.evaluate.sandbox.process import ProcessSandbox
from tests.conftest import REAL_CACHE
from tests.fakes.agent_model import solution_files

pytestmark = pytest.mark.integration

TASK = {task.id: task for task in load_tasks()}["py-slugify"]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["process", "docker"])
def sandbox(request):
    made = ProcessSandbox() if request.param == "process" else DockerSandbox(request.getfixturevalue("docker_engine"))
    made.prepare(TASK)
    yield made
    made.destroy()


def probe(sandbox, code: str, timeout_s: float = 30):
    python = sandbox.resolve_program(("{python}",), {})[0]
    return sandbox.run([python, "-c", code], timeout_s)


def tries(paths: list[str], action: str) -> str:
    """Python that tries `action` (a format string over `p`) on each path and prints what happened."""
    return ("import os\n"
            f"for p in {paths!r}:\n"
            "    try:\n"
            f"        {action}\n"
            "        print('ESCAPED', p)\n"
            "    except (OSError, ValueError) as exc:\n"
            "        print('refused', p, type(exc).__name__)\n")


@pytest.fixture
def planted_secret():
    """A file in the home of the user weeyuga runs as, as ~/.ssh/id_rsa would be."""
    path = Path.home() / f".weeyuga-escape-probe-{secrets.token_hex(4)}"
    path.write_text("PLANTED-SECRET")
    path.chmod(0o600)
    yield path
    path.unlink(missing_ok=True)


def test_secrets_home_cache_and_repo_cannot_be_read(sandbox, planted_secret):
    targets = [str(planted_secret), "/etc/shadow", str(Path.home() / ".ssh" / "id_rsa"), str(REPO / "README.md"),
               str(TASK.tests_dir / "test_slug.py")]
    result = probe(sandbox, tries(targets, "print(open(p).read()[:40])") +
                   f"print('visible:', [p for p in {[str(REAL_CACHE), str(REPO), str(Path.home() / '.ssh')]!r} if os.path.exists(p)])\n")
    assert "ESCAPED" not in result.output and "PLANTED-SECRET" not in result.output, result.output
    assert "visible: []" in result.output, result.output


def test_nothing_is_written_outside_by_absolute_path_or_by_dotdot(sandbox, planted_secret):
    token = secrets.token_hex(4)
    host_targets = [planted_secret.parent / f".escape-{token}", sandbox.base.parent / f"escape-{token}",
                    REAL_CACHE / f"escape-{token}", REPO / f"escape-{token}", Path("/etc") / f"escape-{token}",
                    Path("/usr/lib") / f"escape-{token}"]
    relative = [f"../../escape-dotdot-{token}", f"../../../../../../tmp/escape-dotdot-{token}"]
    result = probe(sandbox, tries([str(p) for p in host_targets] + relative, "open(p, 'w').write('x')") +
                   tries([str(planted_secret)], "open(p, 'w').write('overwritten')"))
    for target in host_targets + [sandbox.base.parent / f"escape-dotdot-{token}", Path(f"/tmp/escape-dotdot-{token}")]:
        assert not target.exists(), (target, result.output)
    assert planted_secret.read_text() == "PLANTED-SECRET"


def test_the_pristine_tests_cannot_be_changed(sandbox):
    pristine = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in TASK.tests_dir.iterdir() if p.is_file()}
    forged = "def test_ok():\n    pass\n"
    result = probe(sandbox, tries([str(TASK.tests_dir / "test_slug.py"), "tests/test_slug.py"], f"open(p, 'w').write({forged!r})"))
    assert pristine == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in TASK.tests_dir.iterdir() if p.is_file()}
    if sandbox.kind == "process":  # tests/ is read-only inside the process sandbox; Docker restores it before each run
        assert "ESCAPED" not in result.output, result.output
    sandbox.write_file("slug.py", solution_files("py-slugify")["slug.py"].encode())
    gate = run_gate(sandbox, TASK, timeout_s=60)
    assert gate.passed and gate.tests_passed == TASK.expected_tests  # the pristine tests ran, not a forged one


def test_unix_sockets_outside_the_workspace_cannot_be_reached(sandbox, tmp_path):
    path = tmp_path / "host.sock"
    abstract = f"\0weeyuga-probe-{secrets.token_hex(4)}"
    listeners = []
    for address in (str(path), abstract):
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(address)
        listener.listen()
        listener.settimeout(0.5)
        listeners.append(listener)
    code = ("import socket\n"
            f"for address in {[str(path), abstract]!r}:\n"
            "    s = socket.socket(socket.AF_UNIX)\n"
            "    try:\n"
            "        s.connect(address); s.sendall(b'hello'); print('ESCAPED', repr(address))\n"
            "    except OSError as exc:\n"
            "        print('refused', repr(address), exc.errno)\n")
    try:
        result = probe(sandbox, code)
        accepted = []
        for listener in listeners:
            try:
                accepted.append(listener.accept())
            except OSError:
                pass
    finally:
        for listener in listeners:
            listener.close()
    assert "ESCAPED" not in result.output and not accepted, result.output


def test_a_setsid_double_forked_daemon_does_not_outlive_its_command(sandbox):
    code = ("import os, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        for i in range(600):\n"
            "            with open('daemon.log', 'a') as log:\n"
            "                log.write('.')\n"
            "            time.sleep(0.1)\n"
            "    os._exit(0)\n"
            "time.sleep(0.5)\n"
            "print('parent done')\n")
    result = probe(sandbox, code)
    assert "parent done" in result.output, result.output
    log = sandbox.workspace / "daemon.log"
    time.sleep(0.5)
    size = log.stat().st_size if log.exists() else 0
    time.sleep(1.5)
    assert (log.stat().st_size if log.exists() else 0) == size, "the daemon still writes after its command ended"


def test_a_hard_link_to_an_outside_file_is_neither_made_nor_followed(sandbox):
    result = probe(sandbox, tries(["/etc/passwd", "/etc/hostname"], "os.link(p, os.path.basename(p) + '.lnk')"))
    toolbox = Toolbox(sandbox, TASK, 30, gated_done=True)
    read = toolbox.call("read_file", json.dumps({"path": "passwd.lnk"}))
    write = toolbox.call("write_file", json.dumps({"path": "slug.py", "content": "def slugify(t):\n    return t\n"}))
    assert "root:x:0:0" not in read.text and read.error, (result.output, read.text)
    assert not write.error and "root:" in Path("/etc/passwd").read_text()


def test_a_fork_bomb_is_stopped_and_the_sandbox_stays_usable(sandbox):
    started = time.monotonic()
    bomb = probe(sandbox, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", timeout_s=10)
    assert bomb.exit_code != 0 and time.monotonic() - started < 60
    after = probe(sandbox, "print('still usable')")
    assert after.exit_code == 0 and "still usable" in after.output, after.output


def test_a_memory_hog_fails_inside_its_limit(sandbox):
    hog = probe(sandbox, "x = bytearray(8 * 1024 ** 3)\nprint('allocated')")
    assert hog.exit_code != 0 and not hog.timed_out and "allocated" not in hog.output
    assert probe(sandbox, "print('next')").exit_code == 0


def test_the_manifest_strength_is_what_contained_these_probes(sandbox):
    assert sandbox.containment.contained and sandbox.net_isolated
    assert sandbox.containment.strength == {"process": "namespaces", "docker": "container"}[sandbox.kind]
    assert os.path.isdir(sandbox.workspace)
