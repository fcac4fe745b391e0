"""codeexec: the answer's Python function, run against hidden unit tests in the sandbox.

The code is the last fenced block (```python, or any fence), else the whole answer. A harness
imports it under an audit hook, runs every `test_*` of the scenario's hidden tests and prints
one result line carrying a per-run nonce; the verdict passes only when that line says every
test ran and passed and the process exited 0. Code that exits early (`os._exit(0)`), loops,
eats memory, forks or writes outside its folder never produces that line.
"""

from __future__ import annotations

import ast
import re
import secrets
from typing import Any

from orchestrator.evaluate.quality.packs import Scenario
from orchestrator.evaluate.sandbox.code import CodeRunner, ProcessCodeRunner
from orchestrator.evaluate.quality.verdict import NO_ANSWER_FOUND, VERIFIER_FAIL, WRONG_ANSWER, Verdict, answer_text, fail, fenced_blocks, ok

VERSION = 1
DEFAULT_SECONDS = 10.0
RESULT_MARK = "WEEYUGA-RESULT"

# Runs in the sandbox. The nonce keeps a printed line from passing for the result (not a secret from hostile code).
HARNESS = r'''
import os, sys, traceback
ROOT = os.path.realpath(os.getcwd())
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
REFUSED = ("os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.kill", "os.killpg",
           "subprocess.Popen", "pty.spawn", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo",
           "ctypes.", "sys.settrace", "sys.setprofile", "gc.get_referrers", "gc.get_objects")
PATH_EVENTS = ("os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.symlink", "os.link", "os.truncate", "os.chmod",
               "os.chown", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move")

def inside(path):
    try:
        real = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return False
    return real == ROOT or real.startswith(ROOT + os.sep)

def guard(event, args):
    if event.startswith(REFUSED):
        raise PermissionError("sandbox: " + event + " is not allowed")
    if event == "open" and not isinstance(args[0], int):
        mode, flags = args[1] or "", args[2] or 0
        if (flags & WRITE_FLAGS or any(c in str(mode) for c in "wax+")) and not inside(args[0]):
            raise PermissionError("sandbox: writing outside the work folder")
    if event in PATH_EVENTS and not all(inside(a) for a in args if isinstance(a, (str, bytes, os.PathLike))):
        raise PermissionError("sandbox: " + event + " outside the work folder")

def main(nonce, entry):
    sys.path.insert(0, ROOT)
    sys.addaudithook(guard)
    try:
        import solution
    except BaseException:
        print("import failed: " + traceback.format_exc(limit=2).strip().splitlines()[-1], file=sys.stderr)
        return
    if not callable(getattr(solution, entry, None)):
        print("no function " + entry + " in the answer", file=sys.stderr)
        return
    import hidden_tests
    names = [n for n in dir(hidden_tests) if n.startswith("test_") and callable(getattr(hidden_tests, n))]
    passed = 0
    for name in sorted(names):
        try:
            getattr(hidden_tests, name)()
            passed += 1
        except BaseException as exc:
            print(name + " failed: " + (type(exc).__name__ + " " + str(exc))[:200], file=sys.stderr)
    sys.stdout.flush()
    print("\n%s %s %d %d" % ("''' + RESULT_MARK + r'''", nonce, passed, len(names)))

main(NONCE, ENTRY)
'''


def extract_code(text: str) -> str:
    blocks = fenced_blocks(text)
    python = [body for lang, body in blocks if lang in ("python", "py", "python3")]
    return (python or [body for _, body in blocks] or [text])[-1].strip()


def check(scenario: Scenario, message: dict[str, Any], runner: CodeRunner | None = None) -> Verdict:
    entry = scenario.verifier["entry"]
    code = extract_code(answer_text(message))
    if not code:
        return fail(NO_ANSWER_FOUND, "no code in the answer")
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return fail(NO_ANSWER_FOUND, f"no Python code: {exc.msg} (line {exc.lineno})")
    if not any(isinstance(node, ast.FunctionDef) and node.name == entry for node in tree.body):
        return fail(NO_ANSWER_FOUND, f"no top-level function {entry}()")
    nonce = secrets.token_hex(16)
    harness = HARNESS.replace("main(NONCE, ENTRY)", f"main({nonce!r}, {entry!r})")
    files = {"solution.py": code, "hidden_tests.py": scenario.verifier["tests"], "harness.py": harness}
    outcome = (runner or default_runner()).run(files, "harness.py", scenario.verifier.get("seconds", DEFAULT_SECONDS))
    where = "" if outcome.net_isolated else " (network not namespace-isolated)"  # only uncontained (--sandbox none)
    if outcome.timed_out:
        return fail(VERIFIER_FAIL, f"code still running after {outcome.wall_s:.1f}s; killed{where}")
    result = re.findall(rf"^{RESULT_MARK} {nonce} (\d+) (\d+)$", outcome.stdout, re.M)
    problems = "; ".join(outcome.stderr.strip().splitlines()[-3:]) or f"exit code {outcome.exit_code}"
    if not result or outcome.exit_code != 0:
        return fail(VERIFIER_FAIL, f"tests did not complete: {problems}{where}")
    passed, total = map(int, result[-1])
    if total == 0:
        return fail(VERIFIER_FAIL, "no tests ran")  # a pack error, but never a pass
    if passed < total:
        return fail(WRONG_ANSWER, f"{passed}/{total} tests passed: {problems}", passed / total)
    return ok(f"{passed}/{total} tests passed{where}", 1.0)


_DEFAULT: list[CodeRunner] = []


def default_runner() -> CodeRunner:
    """One ProcessCodeRunner per process, contained as probed (NoContainment where nothing contains code)."""
    if not _DEFAULT:
        _DEFAULT.append(ProcessCodeRunner())
    return _DEFAULT[0]
