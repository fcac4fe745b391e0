"""`weeyuga auto` planning (unit) and the whole pipeline on the real llama-server (integration)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from orchestrator.auto import PhaseEstimate, choose_phases, plan_with_fallback
from orchestrator.cli import main
from orchestrator.launch import pid_dir
from orchestrator.paths import REPO_ROOT
from orchestrator.probe import Hardware
from orchestrator.profiles import load_profiles
from orchestrator.rulecheck import GOLDEN_DIR
from orchestrator.report import REQUIRED_FILES
from tests.test_integration_llama import llama_server, smollm2  # noqa: F401  (session fixtures)

PROFILES = load_profiles()
CPU_BOX = GOLDEN_DIR / "linux-vps-cpu-4c-8gb.json"


def test_phases_fit_the_time_budget_and_hello_always_runs():
    estimates = [PhaseEstimate("hello", 18, 500), PhaseEstimate("5q", 5, 30), PhaseEstimate("20q", 20, 400),
                 PhaseEstimate("edge_suite", 5, 50)]
    chosen, notes = choose_phases(estimates, 600)
    assert chosen == ["hello", "5q", "edge_suite"] and "time budget" in notes["20q"]


def test_missing_planned_model_falls_back_to_embedded_default_as_a_recorded_deviation():
    plan = plan_with_fallback(Hardware.load(CPU_BOX), PROFILES, {})
    assert plan.model == PROFILES.embedded_default
    model_dev = next(d for d in plan.deviations if d.knob == "model")
    assert model_dev.source == "fallback" and "weeyuga model get" in model_dev.overrode
    assert plan_with_fallback(Hardware.load(CPU_BOX), PROFILES, {"model": "gemma3-270m-it"}).model == "gemma3-270m-it"


def test_dry_run_prints_plan_steps_and_writes_nothing(tmp_path, capsys):
    assert main(["auto", "--dry-run", "--yes", "--hardware", str(CPU_BOX), "--submitter-handle", "ci",
                 "--submissions-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for needle in ("plan for linux-epyc-4c-8gb", "phases (estimated):", "launch: ", "--host 127.0.0.1", "dry run"):
        assert needle in out
    assert not any(tmp_path.iterdir())


def test_bad_handle_is_one_line_exit_2(tmp_path, capsys):
    assert main(["auto", "--dry-run", "--yes", "--hardware", str(CPU_BOX), "--submitter-handle", "Bad/Name"]) == 2
    assert "submitter handle" in capsys.readouterr().err


def llama_servers_under(proc: subprocess.Popen) -> set[tuple[int, float]]:
    """(pid, start time) of the llama-servers this test's weeyuga started (its descendants), and no other."""
    found = set()
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:  # it has just exited
        return found
    for child in children:
        try:
            if "llama-server" in child.name():
                found.add((child.pid, child.create_time()))
        except psutil.Error:  # exited while we looked
            continue
    return found


def all_gone(servers: set[tuple[int, float]]) -> bool:
    """None of these processes runs any more (a reused pid is another process, and a zombie is gone)."""
    for pid, started in servers:
        try:
            process = psutil.Process(pid)
            if process.create_time() == started and process.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.Error:
            continue
    return True


@pytest.mark.integration
def test_auto_end_to_end_interrupted_and_resumed(llama_server, smollm2, tmp_path):
    args = [sys.executable, "-m", "orchestrator.cli", "auto", "--yes", "--phases", "hello,5q", "--runs", "1",
            "--submitter-handle", "ci", "--device-tag", "ci-box", "--submissions-dir", str(tmp_path), "--force-load"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, cwd=REPO_ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    ledger = None
    while time.monotonic() < deadline and ledger is None:
        found = list(tmp_path.glob("ci/ci-box/run-*/run.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= 4:
            ledger = found[0]
        time.sleep(0.05)
    servers = llama_servers_under(proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert ledger is not None and proc.returncode == 130, err
    assert "weeyuga auto --resume" in err
    assert servers and all_gone(servers)
    run_id = ledger.parent.name[len("run-"):]
    resumed = subprocess.Popen(args + ["--resume", run_id], cwd=REPO_ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    resumed_servers: set[tuple[int, float]] = set()
    outputs: list[str] = []
    reader = threading.Thread(target=lambda: outputs.extend(resumed.communicate(timeout=600)))
    reader.start()
    while reader.is_alive():  # note every llama-server the resumed weeyuga starts (one per cold call)
        resumed_servers |= llama_servers_under(resumed)
        time.sleep(0.05)
    stdout, stderr = outputs
    assert resumed.returncode == 0, stderr + stdout
    assert "privacy scan: clean" in stdout and f"weeyuga submit {ledger.parent}" in stdout
    for name in REQUIRED_FILES:
        assert (ledger.parent / name).exists(), name
    manifest = json.loads((ledger.parent / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed"] == 1 and manifest["runtime"]["managed"]
    assert manifest["runtime"]["self_test"]["chosen"] == llama_server.self_test["chosen"]["variant"]
    flag_deviations = [d for d in manifest["deviations"] if d["knob"] == "runtime_args"]
    assert [d["value"] for d in flag_deviations] == ([list(llama_server.variant_args)] if llama_server.variant_args else [])
    calls = [json.loads(l) for l in ledger.read_text().splitlines() if '"type": "call"' in l]
    assert len(calls) == 3 * 2 + 5 and len({(c["prompt_id"], c["run_idx"]) for c in calls}) == len(calls)
    assert resumed_servers and all_gone(resumed_servers)
    assert not list(pid_dir().glob("*.json")), "a runtime's pidfile outlived it"
