"""The codeexec runner (the process sandbox, contained by bwrap; conftest installs bubblewrap): a
correct solution passes; escapes and runaways are contained and fail."""

import socket
import time

import psutil

from orchestrator.evaluate.quality.packs import Scenario
from orchestrator.evaluate.sandbox.code import ProcessCodeRunner, RunOutcome
from orchestrator.evaluate.sandbox.contain import Containment, probe_containment
from orchestrator.evaluate.quality.verifiers import verify

TESTS = "from solution import add\n\ndef test_add():\n    assert add(2, 3) == 5\n\ndef test_negative():\n    assert add(-1, 1) == 0\n"
SCENARIO = Scenario("CE-01", "add", "easy", ({"role": "user", "content": "Write add(a, b)."},),
                    {"type": "codeexec", "entry": "add", "tests": TESTS, "seconds": 3})
GOOD = "def add(a, b):\n    return a + b\n"


def judge(code, runner=None):
    return verify(SCENARIO, {"content": f"```python\n{code}\n```"}, "stop", runner)


def test_a_correct_solution_passes():
    verdict = judge(GOOD)
    assert verdict.passed and verdict.detail.startswith("2/2 tests passed")


def test_a_wrong_solution_scores_its_share_of_tests():
    verdict = judge("def add(a, b):\n    return a * b if a > 0 else a + b\n")
    assert (verdict.failure_mode, verdict.score) == ("wrong_answer", 0.5)


def test_exiting_before_the_tests_is_not_a_pass():
    assert not judge("import os\nos._exit(0)\n" + GOOD).passed
    assert not judge("import sys\nsys.exit(0)\n" + GOOD).passed


def test_a_forged_result_line_is_not_a_pass():
    forged = "print('WEEYUGA-RESULT 0000 2 2')\ndef add(a, b):\n    return 0\n"
    assert judge(forged).failure_mode == "wrong_answer"


def test_an_infinite_loop_is_killed_at_the_wall_clock():
    started = time.monotonic()
    verdict = judge("def add(a, b):\n    while True:\n        pass\n")
    assert verdict.failure_mode == "verifier_fail" and "still running" in verdict.detail
    assert time.monotonic() - started < 10


def test_a_memory_hog_fails_inside_its_limit():
    verdict = judge("hog = bytearray(3 * 1024 ** 3)\n" + GOOD)
    assert not verdict.passed and "MemoryError" in verdict.detail


def test_a_fork_bomb_is_refused_and_leaves_nothing_behind():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    verdict = judge("import os\nwhile True:\n    os.fork()\n" + GOOD)
    assert not verdict.passed and "os.fork" in verdict.detail
    verdict = judge("import subprocess\nsubprocess.Popen(['sleep', '60'])\n" + GOOD)
    assert not verdict.passed and "subprocess.Popen" in verdict.detail
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before


def test_writing_outside_the_work_folder_is_refused(tmp_path):
    target = tmp_path / "escaped.txt"
    for attempt in (f"open({str(target)!r}, 'w').write('x')", f"import pathlib\npathlib.Path({str(target)!r}).write_text('x')",
                    f"import os\nos.open({str(target)!r}, os.O_CREAT | os.O_WRONLY)", f"import shutil\nshutil.rmtree({str(tmp_path)!r})"):
        verdict = judge(attempt + "\n" + GOOD)
        assert not verdict.passed and "sandbox" in verdict.detail, attempt
    assert not target.exists() and tmp_path.exists()
    assert judge("open('scratch.txt', 'w').write('fine inside')\n" + GOOD).passed  # its own folder is writable


def test_network_access_fails():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n" + GOOD
        assert not judge(code).passed
        # Without the audit hook only the containment stands: the connection must still fail.
        outcome = ProcessCodeRunner().run({"probe.py": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"},
                                          "probe.py", 5)
        assert outcome.net_isolated and outcome.exit_code != 0 and "Error" in outcome.stderr


def test_net_isolated_is_recorded_honestly():
    bare = ProcessCodeRunner(containment=Containment("none", False, "test: nothing"))
    assert bare.net_isolated is False
    assert "network not namespace-isolated" in judge(GOOD, bare).detail
    assert ProcessCodeRunner().net_isolated is probe_containment().net_isolated is True


def test_the_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("WEEYUGA_SECRET_FOR_TEST", "leak")
    outcome = ProcessCodeRunner().run({"env.py": "import os\nprint(sorted(os.environ))"}, "env.py", 5)
    assert "WEEYUGA_SECRET_FOR_TEST" not in outcome.stdout and "HOME" in outcome.stdout


def test_output_is_capped_by_the_file_size_limit():
    outcome = ProcessCodeRunner(file_size_mb=1).run({"spam.py": "while True:\n    print('x' * 1000)"}, "spam.py", 5)
    assert outcome.exit_code != 0 and not outcome.timed_out and len(outcome.stdout) <= 64 * 1024


class ScriptedRunner:
    """A CodeRunner stand-in: the interface the agent suite's Sandbox will implement."""
    net_isolated = True

    def __init__(self):
        self.seen = []

    def run(self, files, script, seconds):
        self.seen.append((sorted(files), script, seconds))
        nonce = files["harness.py"].split("main(")[-1].split("'")[1]
        return RunOutcome(0, f"WEEYUGA-RESULT {nonce} 2 2\n", "", False, 0.1, True)


def test_the_runner_is_replaceable():
    runner = ScriptedRunner()
    assert judge(GOOD, runner).passed
    assert runner.seen == [(["harness.py", "hidden_tests.py", "solution.py"], "harness.py", 3)]
    assert not judge("no code here", runner).passed and len(runner.seen) == 1  # nothing to run, nothing run


def test_no_core_dumps():
    outcome = ProcessCodeRunner().run({"core.py": "import resource\nprint(resource.getrlimit(resource.RLIMIT_CORE))"}, "core.py", 5)
    assert "(0, 0)" in outcome.stdout
