"""Against the real llama-server (built from PyPI's sdist) and the real SmolLM2 GGUF.

With CI=true nothing here may skip: a runtime that cannot be installed fails the run.
"""

import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from orchestrator.plan.decide import decide
from orchestrator.runtime.launch import LaunchError, launch
from orchestrator.runtime.models import check_gguf, get_model
from orchestrator.core.paths import REPO_ROOT
from orchestrator.plan.probe import Hardware
from orchestrator.plan.profiles import load_profiles
from orchestrator.plan.rulecheck import GOLDEN_DIR
from orchestrator.runtime.selftest import cpu_fingerprint, verified_llama_server
from tests.conftest import REAL_CACHE
from tests.children import script_argv, weeyuga_argv

pytestmark = pytest.mark.integration
PROFILES = load_profiles()
MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def llama_server():
    os.environ.setdefault("WEEYUGA_CACHE", str(REAL_CACHE))
    return verified_llama_server("cpu", progress=lambda m, f: print(f"  {m}", flush=True) if f in (None, 0) else None)


@pytest.fixture(scope="session")
def smollm2():
    return get_model(PROFILES.model(MODEL))


@pytest.fixture
def plan():
    hw = Hardware.load(GOLDEN_DIR / "linux-vps-cpu-4c-8gb.json")
    return decide(hw, PROFILES, {"model": MODEL, "threads": min(2, os.cpu_count() or 1), "num_ctx": 2048})


def stopped(pid: int) -> bool:
    """gone(pid); a process that is not is killed before the test fails, so that it never outlives the test."""
    if gone(pid):
        return True
    os.kill(pid, signal.SIGKILL)
    return False


def gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_the_runtime_proved_itself_on_this_cpu(llama_server):
    """The self-test ran on this machine's CPU and is recorded in build-info.json with its evidence."""
    info = json.loads((Path(llama_server.binary).parent.parent / "build-info.json").read_text())
    record = info["verified"][cpu_fingerprint(llama_server.backend or "cpu")["id"]]
    chosen = record["chosen"]
    assert chosen["passed"] and chosen["tokens_per_sec"] > 0 and chosen["answer"].strip()
    assert tuple(chosen["args"]) == llama_server.variant_args
    assert record["tried"][0]["variant"] == "native", "the build as configured is always tried first"
    print(f"self-test on this CPU: {[(t['variant'], t['outcome'], t['tokens_per_sec']) for t in record['tried']]}")


def test_install_locates_cached_build_with_build_info(llama_server):
    assert Path(llama_server.binary).exists() and llama_server.fit_params_binary
    assert llama_server.version, "llama-server --version printed no version"


def test_model_is_verified_gguf(smollm2):
    check_gguf(Path(smollm2.path))
    assert smollm2.sha256 == PROFILES.model(MODEL).quant().sha256


def test_launch_health_version_completion_restart_stop(llama_server, smollm2, plan, tmp_path):
    with launch(plan, llama_server.binary, smollm2.path, tmp_path / "llama.log",
                variant_args=llama_server.variant_args) as running:
        assert running.engine_version and "build" in running.engine_version
        assert httpx.get(running.base_url + "/health").status_code == 200
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16, "temperature": 0.1}
        reply = httpx.post(running.base_url + "/v1/chat/completions", json=body, timeout=60).json()
        assert reply["choices"][0]["message"]["content"]
        assert reply["usage"]["completion_tokens"] > 0 and reply["timings"]["predicted_per_second"] > 0
        first_pid = running.pid
        running.restart()
        assert running.pid != first_pid and gone(first_pid)
        assert httpx.get(running.base_url + "/health").status_code == 200
        pid = running.pid
    assert gone(pid)
    assert "--host 127.0.0.1" in (tmp_path / "llama.log").read_text()


def test_no_orphan_after_parent_is_sigkilled(llama_server, smollm2, plan, tmp_path, spawn):
    script = textwrap.dedent(f"""
        import sys, json, time
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from pathlib import Path
        from orchestrator.plan.decide import Plan
        from orchestrator.runtime.launch import launch
        plan = Plan.from_dict(json.loads({json.dumps(json.dumps(plan.to_dict()))}))
        with launch(plan, {llama_server.binary!r}, {smollm2.path!r}, Path({str(tmp_path / "log")!r}),
                    variant_args={llama_server.variant_args!r}) as running:
            print(running.pid, flush=True)
            time.sleep(120)
        """)
    parent = spawn(script_argv(script), stdout=subprocess.PIPE, text=True)
    server_pid = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    assert stopped(server_pid), "llama-server outlived a SIGKILLed parent"


def test_cli_launch_stops_cleanly_on_sigint(llama_server, smollm2, tmp_path, spawn):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = spawn(weeyuga_argv("launch", "--model", MODEL, "--num-ctx", "2048", "--log", str(tmp_path / "log")),
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=env)
    line = proc.stdout.readline()
    assert "serving smollm2-135m-instruct at http://127.0.0.1:" in line, line + proc.stderr.read()
    pid = int(line.split("(pid ")[1].split(",")[0])
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert stopped(pid)


@pytest.mark.parametrize("content", [b"GGUF" + b"\x00" * 64, b"not a model at all"])
def test_corrupt_model_is_refused_and_nothing_left_running(llama_server, plan, tmp_path, content):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    if not content.startswith(b"GGUF"):
        with pytest.raises(Exception, match="not a GGUF file"):
            check_gguf(bad)
    with pytest.raises(LaunchError) as info:
        with launch(plan, llama_server.binary, str(bad), tmp_path / "log", timeout_s=30,
                    variant_args=llama_server.variant_args):
            pass
    assert info.value.kind in ("model_unreadable", "exited")
    assert "last log lines" in str(info.value)


def test_missing_model_file(llama_server, plan, tmp_path):
    with pytest.raises(LaunchError) as info:
        with launch(plan, llama_server.binary, str(tmp_path / "nope.gguf"), tmp_path / "log", timeout_s=30,
                    variant_args=llama_server.variant_args):
            pass
    assert info.value.kind in ("model_unreadable", "exited")
