"""ProcessSandbox: contained by bwrap (conftest installs bubblewrap), a scrubbed environment,
rlimits, a wall timeout that kills the whole group; the file tools' view of the workspace; stale
attempt folders; and what runs where nothing contains code. The audit's escape probes are in
test_sandbox_escapes.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.core import datafiles
from orchestrator.core.procs import spawn_options
from orchestrator.core.runspec import RunOptions
from orchestrator.evaluate.agent import Budgets, load_tasks, run_agent_tasks
from orchestrator.evaluate.agent.tasks import memory_limit_mb
from orchestrator.evaluate.agent.tools import Toolbox
from orchestrator.evaluate.sandbox import contain
from orchestrator.evaluate.sandbox.base import SandboxEscape
from orchestrator.evaluate.sandbox.contain import (Containment, ContainedFolder, Limits, NoContainment, bwrap_prefix,
                                                   probe_containment, process_config, reap_stale_attempts,
                                                   sandbox_exec_profile, uncontained)
from orchestrator.evaluate.sandbox.docker.choice import DockerReadiness, choose_sandbox, run_sandbox
from orchestrator.evaluate.sandbox.process import ProcessSandbox
from orchestrator.flows.auto import plan_auto, without_model_code
from orchestrator.flows.doctor import sandbox_checks
from orchestrator.measure.phases.quality import QualityPhase
from orchestrator.plan.probe import Hardware
from orchestrator.plan.profiles import load_profiles
from orchestrator.plan.rulecheck import GOLDEN_DIR
from tests.fakes.agent_model import ScriptedModel

TASK = {task.id: task for task in load_tasks()}["py-slugify"]
NOT_READY = lambda: DockerReadiness(False, None, "no engine", "weeyuga-sandbox:1", None, None)  # noqa: E731
BUDGETS = Budgets(context_tokens=100_000, steps_per_pass=4, passes=1, max_tokens=256, command_timeout_s=60, max_stale=2)
NOTHING = Containment("none", False, "bwrap is not installed (apt-get install bubblewrap)")


@pytest.fixture
def sandbox():
    made = ProcessSandbox(Limits(cpu_s=20, file_size_mb=1, open_files=64, memory_mb=1024))
    made.prepare(TASK)
    yield made
    made.destroy()


def python(sandbox: ProcessSandbox, code: str, timeout_s: float = 30):
    return sandbox.run([sys.executable, "-c", code], timeout_s)


def test_this_machine_contains_code_with_bwrap():
    """The test session installs bubblewrap; without containment these tests fail, never skip."""
    found = probe_containment()
    assert (found.method, found.contained, found.net_isolated, found.strength) == ("bwrap", True, True, "namespaces"), found.detail


def test_prepare_copies_seed_and_pristine_tests_but_no_solution(sandbox):
    names = sorted(p.relative_to(sandbox.workspace).as_posix() for p in sandbox.workspace.rglob("*"))
    assert names == ["slug.py", "tests", "tests/test_slug.py"]
    assert "NotImplementedError" in sandbox.read_file("slug.py").decode()
    assert sandbox.scratch not in sandbox.workspace.parents
    assert sandbox.kind == "process" and sandbox.net_isolated


def test_the_environment_is_scrubbed(sandbox, monkeypatch):
    for name, value in {"HTTP_PROXY": "http://proxy:3128", "GITHUB_TOKEN": "ghp_x", "OPENAI_API_KEY": "sk-x"}.items():
        monkeypatch.setenv(name, value)
    result = python(sandbox, "import os; print(sorted(os.environ)); print(os.environ['HOME'])")
    assert result.exit_code == 0, result.output
    assert "PROXY" not in result.output and "TOKEN" not in result.output and "API_KEY" not in result.output
    assert os.path.expanduser("~") not in result.output.splitlines()[-1]


def test_the_wall_timeout_kills_the_command_and_everything_it_started(sandbox):
    started = time.monotonic()
    result = python(sandbox, "import subprocess, time\n"
                             "child = subprocess.Popen(['sleep', '60'])\n"
                             "time.sleep(60)\n", timeout_s=2)
    assert result.timed_out and result.exit_code is None and time.monotonic() - started < 15
    assert "ran longer than 2 s" in result.output
    assert not sleepers(sandbox.base)


def sleepers(base: Path) -> list[int]:
    """Host processes still running in this attempt folder (the pid namespace hides their inner pids)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "cwd").startswith(str(base)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_rlimits_cap_file_size_processes_and_core_dumps(sandbox):
    result = python(sandbox, "import resource\n"
                             "print(resource.getrlimit(resource.RLIMIT_CORE), resource.getrlimit(resource.RLIMIT_NOFILE))\n"
                             "print('nproc', resource.getrlimit(resource.RLIMIT_NPROC)[0] > 0)\n"
                             "open('big.bin', 'wb').write(b'x' * (3 * 2**20))\n")
    assert result.exit_code != 0
    assert "(0, 0) (64, 64)" in result.output
    if os.geteuid() == 0:  # the command runs as nobody, so RLIMIT_NPROC holds
        assert "nproc True" in result.output and "RLIM_INFINITY" not in result.output
    assert (sandbox.workspace / "big.bin").stat().st_size <= 2**20


def test_memory_limits_only_where_the_runtime_allows():
    assert memory_limit_mb("python") and memory_limit_mb("cpp")
    assert memory_limit_mb("javascript") is None  # V8 reserves more address space than any sane RLIMIT_AS


def test_the_hosts_loopback_is_unreachable(sandbox):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        result = python(sandbox, f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)")
    assert result.exit_code != 0 and ("refused" in result.output or "unreachable" in result.output)


def test_the_bwrap_command_line_shows_only_what_it_must(tmp_path, monkeypatch):
    config = process_config()
    base = tmp_path / "attempt"
    argv = bwrap_prefix("/usr/bin/bwrap", base, base / "workspace", (base / "workspace" / "tests",), config)
    pairs = {(argv[i], argv[i + 1]) for i in range(len(argv) - 1)}
    for flag in ("--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net", "--unshare-ipc"):
        assert flag in argv
    assert ("--bind", str(base)) in pairs and ("--ro-bind", str(base / "workspace" / "tests")) in pairs
    assert ("--tmpfs", "/tmp") in pairs and ("--remount-ro", "/tmp") in pairs and ("--proc", "/proc") in pairs
    writable = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--bind"]
    assert writable == [str(base)]
    mounted = [argv[i + 1] for i, arg in enumerate(argv) if arg in ("--bind", "--ro-bind")]
    for hidden in (os.path.expanduser("~"), "/root", "/home", "/run", "/var", str(Path.cwd())):
        assert hidden not in mounted
    monkeypatch.setattr(contain, "running_as_root", lambda: True)
    as_root = bwrap_prefix("/usr/bin/bwrap", base, base / "workspace", (), config)
    assert "--unshare-user" not in as_root  # root is dropped to nobody instead of mapped to root in a namespace
    assert f"--reuid={config.uid}" in as_root and "--bounding-set=-all" in as_root and "--no-new-privs" in as_root
    monkeypatch.setattr(contain, "running_as_root", lambda: False)
    assert "--unshare-user" in bwrap_prefix("/usr/bin/bwrap", base, base / "workspace", (), config)


def test_the_macos_profile_denies_by_default_and_writes_only_the_attempt_folder(tmp_path):
    profile = sandbox_exec_profile(tmp_path, ("/usr", "/bin"))
    lines = profile.splitlines()
    assert lines[:2] == ["(version 1)", "(deny default)"] and "(deny network*)" in lines
    writes = [line for line in lines if "file-write*" in line]
    assert writes == [f'(allow file-read* file-write* (subpath "{tmp_path}"))']
    assert os.path.expanduser("~") + '"' not in profile


def test_the_file_tools_refuse_nul_bytes_and_hard_links_to_outside_files(sandbox, tmp_path):
    toolbox = Toolbox(sandbox, TASK, 30, gated_done=True)
    outside = tmp_path / "outside.txt"
    outside.write_text("host secret")
    os.link(outside, sandbox.workspace / "slug.py.bak")
    os.unlink(sandbox.workspace / "slug.py")
    os.link(outside, sandbox.workspace / "slug.py")  # as model-written code with --sandbox none could plant it
    for name, arguments in [("read_file", {"path": "slug.py"}), ("write_file", {"path": "slug.py", "content": "x"}),
                            ("read_file", {"path": "slug\0.py"}), ("list_dir", {"path": "tests\0"}),
                            ("write_file", {"path": "slug.py\0", "content": "x"})]:
        outcome = toolbox.call(name, json.dumps(arguments))
        assert outcome.error and outcome.text.startswith("ERROR:"), (name, arguments, outcome.text)
        assert "host secret" not in outcome.text
    assert outside.read_text() == "host secret"
    os.unlink(sandbox.workspace / "slug.py.bak")  # two links, both inside the workspace: its own file
    os.unlink(outside)
    assert sandbox.read_file("slug.py") == b"host secret"
    with pytest.raises(SandboxEscape, match="not a regular file"):
        os.mkfifo(sandbox.workspace / "pipe.py")
        sandbox.read_file("pipe.py")


def test_a_write_replaces_the_file_and_never_writes_through_a_link(sandbox):
    os.link(sandbox.workspace / "slug.py", sandbox.workspace / "twin.py")  # both inside: allowed
    sandbox.write_file("slug.py", b"new")
    assert sandbox.read_file("slug.py") == b"new" and b"NotImplementedError" in sandbox.read_file("twin.py")


def test_attempt_folders_of_a_dead_owner_are_removed_at_the_next_start(tmp_path):
    owner = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom orchestrator.evaluate.sandbox.process import ProcessSandbox\n"
                              "print(ProcessSandbox().base, flush=True); time.sleep(600)"],
                             stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent, **spawn_options())
    try:
        base = Path(owner.stdout.readline().strip())
        assert base.is_dir() and base.name.startswith(f"weeyuga-agent-{owner.pid}_")
        assert base not in reap_stale_attempts(base.parent)  # its owner lives
        owner.kill()
        owner.wait()
        assert base in reap_stale_attempts(base.parent) and not base.exists()
    finally:
        owner.kill()
        owner.wait()
    mine = ProcessSandbox()
    assert mine.base not in reap_stale_attempts(mine.base.parent)
    mine.destroy()


def test_without_containment_no_code_runs_unless_none_is_asked_for(monkeypatch):
    monkeypatch.setattr(contain, "probe_containment", lambda: NOTHING)
    with pytest.raises(NoContainment, match="install bubblewrap"):
        ContainedFolder()
    monkeypatch.undo()
    choice = choose_sandbox("auto", NOT_READY, lambda: NOTHING)
    assert (choice.kind, choice.runs_code, choice.strength) == ("unavailable", False, "none")
    assert "do not run" in choice.reason and "--sandbox none" in choice.reason and "no engine" in choice.reason
    assert choose_sandbox("process", NOT_READY, lambda: NOTHING).kind == "unavailable"
    chosen = choose_sandbox("none", NOT_READY, lambda: NOTHING)
    assert chosen.kind == "none" and chosen.runs_code and chosen.strength in ("network-only", "none")
    record = chosen.record()
    assert record["strength"] == chosen.strength and "uncontained" in record["reason"]
    made = run_sandbox(record).agent_factory()
    assert made.kind == "none" and not made.containment.contained
    made.destroy()
    skipped = run_sandbox(choose_sandbox("auto", NOT_READY, lambda: NOTHING).record())
    assert skipped.code_runner is None and "do not run" in skipped.skip_reason


def test_auto_and_process_record_the_strength_of_the_containment():
    choice = choose_sandbox("auto", NOT_READY)
    assert (choice.kind, choice.strength) == ("process", "namespaces") and "bubblewrap" in choice.containment
    made = run_sandbox(choice.record()).agent_factory()
    assert made.kind == "process"
    made.destroy()
    assert uncontained().strength in ("network-only", "none")


def test_auto_without_containment_drops_the_agent_phase_and_codeexec_saying_why(tmp_path):
    profiles = load_profiles()
    hw = Hardware.load(GOLDEN_DIR / "linux-vps-cpu-4c-8gb.json")
    planned = plan_auto(hw, profiles, {"model": profiles.embedded_default}, ["hello", "quality", "agent"], 1, 60,
                        tmp_path / "subs", "tester", None)
    assert "agent" in planned.phases
    unavailable = choose_sandbox("auto", NOT_READY, lambda: NOTHING).record()
    skipped = without_model_code(planned, unavailable)
    assert "agent" not in skipped.phases and "quality" in skipped.phases and "hello" in skipped.phases
    assert "install bubblewrap" in skipped.phase_notes["agent"] and "--sandbox none" in skipped.phase_notes["agent"]
    assert without_model_code(planned, choose_sandbox("none", NOT_READY).record()).phases == planned.phases
    quality = QualityPhase.from_options(RunOptions(phases=["quality"], quality={"mode": "full", "packs": ["math", "codeexec"]}))
    kinds = lambda sandbox: {key.prompt_id.split("/")[0] for unit in quality.units(  # noqa: E731
        ["c"], RunOptions(phases=["quality"], sandbox=sandbox)) for key in unit.keys}
    assert kinds(unavailable) == {"math"} and kinds({}) == {"math", "codeexec"}


def test_doctor_asks_for_containment_only_where_nothing_contains_code():
    unready = NOT_READY()
    assert [c.ok for c in sandbox_checks(unready, probe_containment())] == [True, True]
    missing = sandbox_checks(unready, NOTHING)[-1]
    assert (missing.name, missing.ok) == ("contain", False) and "apt-get install bubblewrap" in missing.detail
    ready = DockerReadiness(True, "Docker 27", "weeyuga-sandbox:1 ready", "weeyuga-sandbox:1", "sha256:" + "c" * 64, "x")
    assert all(c.ok for c in sandbox_checks(ready, NOTHING))


def test_a_nul_byte_in_a_tool_path_is_the_models_error_and_the_run_goes_on():
    records: list[dict] = []
    turns = [[("read_file", {"path": "slug\0.py"}), ("write_file", {"path": "\0", "content": "x"})]]
    summary = run_agent_tasks([TASK], ScriptedModel(turns), "ralph", BUDGETS, ProcessSandbox, on_record=records.append,
                              toolchain_check=lambda language: None)
    final = [r for r in records if r["record"] == "agent_run"]
    assert len(final) == 1 and final[0]["tool_errors"] == 2 and summary.results[0].outcome != "fault"


def test_a_harness_failure_is_a_recorded_fault_and_the_next_task_runs(monkeypatch):
    monkeypatch.setattr(contain, "probe_containment", lambda: NOTHING)
    records: list[dict] = []
    summary = run_agent_tasks([TASK, TASK], ScriptedModel([]), "ralph", BUDGETS, ProcessSandbox, on_record=records.append,
                              toolchain_check=lambda language: None)
    assert [r.outcome for r in summary.results] == ["fault", "fault"]
    assert "install bubblewrap" in records[-1]["reason"] and records[-1]["sandbox"] is None
    datafiles.validate(records[-1], "agent-record", "fault")


def test_where_no_sandbox_contains_code_every_task_is_recorded_skipped_with_the_reason():
    reason = choose_sandbox("auto", NOT_READY, lambda: NOTHING).reason
    records: list[dict] = []
    summary = run_agent_tasks([TASK], ScriptedModel([]), "ralph", BUDGETS, run_sandbox({"kind": "unavailable", "reason": reason}).agent_factory,
                              on_record=records.append, skip_reason=reason)
    assert [r.outcome for r in summary.results] == ["skipped"] and records[0]["reason"] == f"no sandbox: {reason}"
    datafiles.validate(records[0], "agent-record", "skipped")
