"""`weeyuga auto` planning (unit) and the whole pipeline on the real llama-server (integration)."""

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from types import SimpleNamespace

import psutil
import pytest

from orchestrator.flows import auto
from orchestrator.flows.auto import PhaseEstimate, execute, install_fallback, plan_auto, plan_with_fallback
from orchestrator.flows.budget import plan_speed
from orchestrator.cli import main
from orchestrator.runtime.launch import pid_dir
from orchestrator.plan.decide import decide
from orchestrator.runtime.install import RuntimeInstall
from orchestrator.runtime.launch import build_command, load_runtime
from orchestrator.core.paths import REPO_ROOT
from orchestrator.plan.probe import Hardware
from orchestrator.plan.profiles import load_profiles
from orchestrator.plan.rulecheck import GOLDEN_DIR
from orchestrator.runtime import llamacpp as llamacpp_runtime
from orchestrator.publish.report import REQUIRED_FILES
from tests.fakes.openai_server import start_in_thread
from tests.test_integration_llama import llama_server, smollm2  # noqa: F401  (session fixtures)
from tests.children import weeyuga_argv

PROFILES = load_profiles()
CPU_BOX = GOLDEN_DIR / "linux-vps-cpu-4c-8gb.json"
CUDA_BOX = GOLDEN_DIR / "linux-rtx3060-12gb.json"


def test_phases_fit_the_time_budget_and_hello_always_runs():
    estimates = [PhaseEstimate("hello", 18, 500), PhaseEstimate("5q", 5, 30), PhaseEstimate("20q", 20, 400),
                 PhaseEstimate("edge_suite", 5, 50)]
    runs, speed = plan_speed({5: estimates}, 600, None)
    assert runs == 5 and speed.runs == ["hello", "5q", "edge_suite"] and "time budget" in speed.skipped["20q"]


def test_missing_planned_model_falls_back_to_embedded_default_as_a_recorded_deviation():
    plan = plan_with_fallback(Hardware.load(CPU_BOX), PROFILES, {})
    assert plan.model == PROFILES.embedded_default
    model_dev = next(d for d in plan.deviations if d.knob == "model")
    assert model_dev.source == "fallback" and "weeyuga model get" in model_dev.overrode
    assert plan_with_fallback(Hardware.load(CPU_BOX), PROFILES, {"model": "gemma3-270m"}).model == "gemma3-270m"


def test_dry_run_prints_plan_steps_and_writes_nothing(tmp_path, capsys):
    assert main(["auto", "--dry-run", "--yes", "--hardware", str(CPU_BOX), "--submitter-handle", "ci",
                 "--submissions-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for needle in ("plan for linux-epyc-4c-8gb", "phases (estimated):", "launch: ", "--host 127.0.0.1", "dry run"):
        assert needle in out
    assert not any(tmp_path.iterdir())


@pytest.fixture
def no_build_tools(tmp_path, monkeypatch):
    """A machine without nvcc and without any llama-server: PATH holds nothing."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("WEEYUGA_LLAMA_SERVER", raising=False)


def test_dry_run_of_a_cuda_plan_without_nvcc_shows_the_cpu_fallback(no_build_tools, tmp_path, capsys):
    assert main(["auto", "--dry-run", "--yes", "--hardware", str(CUDA_BOX), "--submitter-handle", "ci",
                 "--submissions-dir", str(tmp_path / "subs")]) == 0
    out = capsys.readouterr().out
    assert "install fallback: backend cpu instead of cuda: nvcc is not installed" in out


def test_install_fallback_for_each_kind_of_runtime():
    plan = decide(Hardware.load(CUDA_BOX), PROFILES, {"model": PROFILES.embedded_default})
    built_cpu = RuntimeInstall("llama.cpp", "/x/llama-server", "b1", "cpu", "built", {"requested_backend": "cuda"})
    assert install_fallback(plan, built_cpu) == {
        "knob": "backend", "value": "cpu", "replaced": "cuda", "source": "fallback", "kind": "install_fallback",
        "why": "nvcc was not found, so llama-server was built for cpu"}
    on_path = install_fallback(plan, RuntimeInstall("llama.cpp", "/usr/bin/llama-server", "b1", None, "path"))
    assert on_path["value"] == "unverified" and "could not be verified" in on_path["why"] and "/usr" not in on_path["why"]
    assert install_fallback(plan, RuntimeInstall("llama.cpp", "/x", "b1", "cuda", "cache")) is None
    cpu_plan = decide(Hardware.load(CPU_BOX), PROFILES, {"model": PROFILES.embedded_default})
    assert install_fallback(cpu_plan, built_cpu) is None


def test_cuda_plan_whose_install_is_cpu_records_install_fallback_in_manifest_and_run_md(no_build_tools, tmp_path,
                                                                                         monkeypatch):
    """execute() with the install, model fetch and launch faked: the FAKE server plays llama-server."""
    server, _, url = start_in_thread()
    hw = Hardware.load(CUDA_BOX)
    auto_plan = plan_auto(hw, PROFILES, {"model": PROFILES.embedded_default}, ["hello"], 1, 15, tmp_path / "subs",
                          "ci", None)
    plan = auto_plan.plan
    assert plan.backend == "cuda"
    tried = [{"variant": "native", "build": "native", "args": [], "passed": False, "outcome": "crashed",
              "detail": "crashed (killed by SIGILL) during startup", "tokens_per_sec": None, "answer": None, "seconds": 1.0},
             {"variant": "no-repack", "build": "native", "args": ["--no-repack"], "passed": True, "outcome": "passed",
              "detail": "90 tok/s", "tokens_per_sec": 90.0, "answer": "Red.", "seconds": 3.0}]
    verified = {"fingerprint": {"id": "f" * 16}, "chosen": tried[1], "tried": tried, "verified_at_utc": "2026-01-01T00:00:00Z"}
    monkeypatch.setattr(llamacpp_runtime, "verified_llama_server", lambda backend, progress: RuntimeInstall(
        "llama.cpp", "/x/llama-server", "b1", "cpu", "built", {"backend": "cpu", "requested_backend": backend},
        variant_args=("--no-repack",), self_test=verified))
    monkeypatch.setattr(llamacpp_runtime, "get_model", lambda spec, quant, path, progress: SimpleNamespace(
        path="model.gguf", sha256="0" * 64, size_bytes=1, source="test"))

    @contextlib.contextmanager
    def fake_launch(plan, binary, model_path, log_path, variant_args):
        command = build_command(load_runtime("llama.cpp"), plan, binary, 0, model_path, plan.model,
                                variant_args=variant_args)
        yield SimpleNamespace(engine_version="FAKE", base_url=url, pid=None, ready_ms=[1.0], restart=lambda: 0.0,
                              command=command, crash_note=lambda: None)

    monkeypatch.setattr(auto, "launch", fake_launch)
    said = []
    try:
        result = execute(auto_plan, PROFILES, 1, "ci", {"force_load": True}, ["weeyuga", "auto"], on_launch=said.append)
    finally:
        server.shutdown()
    assert result.status == "complete" and said[0].startswith("install fallback: backend cpu instead of cuda")
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    fallback = [d for d in manifest["deviations"] if d["kind"] == "install_fallback"]
    assert fallback == [{"knob": "backend", "value": "cpu", "replaced": "cuda", "source": "fallback",
                         "kind": "install_fallback", "why": "nvcc was not found, so llama-server was built for cpu"}]
    assert manifest["runtime"]["backend"] == "cpu" and manifest["runtime"]["build"]["requested_backend"] == "cuda"
    assert manifest["budget_plan"]["phases"] == ["hello"] and manifest["budget_plan"]["axes"][1]["skipped"] == {
        "quality": "not named in --phases"}
    flags = [d for d in manifest["deviations"] if d["knob"] == "runtime_args"]
    assert flags[0]["value"] == ["--no-repack"] and flags[0]["source"] == "self_test"
    assert "native crashed" in flags[0]["overrode"]
    assert manifest["runtime"]["argv"][-1] == "--no-repack" and manifest["runtime"]["self_test"]["chosen"] == "no-repack"
    md = (result.run_dir / "run.md").read_text()
    assert "- **backend** = 'cpu' instead of 'cuda' (fallback) — nvcc was not found, so llama-server was built for cpu" in md
    assert "runtime_args" in md


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
def test_auto_end_to_end_interrupted_and_resumed(llama_server, smollm2, tmp_path, spawn):
    args = weeyuga_argv("auto", "--yes", "--phases", "hello,5q", "--runs", "1", "--submitter-handle", "ci",
                        "--device-tag", "ci-box", "--submissions-dir", str(tmp_path), "--force-load")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = spawn(args, cwd=REPO_ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
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
    resumed = spawn(args + ["--resume", run_id], cwd=REPO_ROOT, env=env, text=True,
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


@pytest.mark.integration
def test_auto_runs_speed_quality_and_agent_into_one_ledger_and_one_headline(llama_server, smollm2, tmp_path, capsys):
    """The real llama-server and SmolLM2 at tiny caps: a budget too small for anything makes auto size each
    named axis to its smallest set, and all three land in one ledger, one headline and metadata.json."""
    code = main(["auto", "--yes", "--phases", "hello,quality,agent", "--time-budget", "0.5", "--smoke", "--num-predict", "64",
                 "--submitter-handle", "ci", "--device-tag", "ci-box", "--submissions-dir", str(tmp_path), "--force-load"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "quality (" in out and "agent (" in out and "decode rate" in out
    (run_dir,) = tmp_path.glob("ci/ci-box/run-*")
    records = [json.loads(line) for line in (run_dir / "run.jsonl").read_text().splitlines()]
    phases = {r["phase"] for r in records if r["type"] == "call"}
    assert phases == {"hello", "quality", "agent"}
    assert any(r["type"] == "quality" for r in records) and any(r["type"] == "agent_run" for r in records)
    assert records[0]["options"]["agent"]["workflow"] == "two-try"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [a["axis"] for a in manifest["budget_plan"]["axes"]] == ["speed", "quality", "agent"]
    (headline,) = json.loads((run_dir / "metadata.json").read_text())["headline"]
    assert headline["speed"]["decode_tokens_per_sec"] and headline["quality"]["scenarios"] >= 1
    assert headline["agent"]["workflow"] == "two-try" and headline["agent"]["tasks"] + headline["agent"]["skipped"] == 1
    md = (run_dir / "run.md").read_text()
    block = md[md.index("## Headline"):md.index("## Speed per cell and phase")]
    assert "| ci-box:" in block and " / " in block and "toolcall" in block and "not run" not in block
