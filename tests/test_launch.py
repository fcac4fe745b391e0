import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from orchestrator.runtime import ollama_api as ollama
from orchestrator.plan.decide import decide
from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.plan.knobs import knob
from orchestrator.runtime.launch import (LaunchError, build_command, check_port_free, classify_failure, launch,
                                 load_runtime, reap_orphans, pid_dir)
from orchestrator.core.paths import REPO_ROOT
from orchestrator.plan.probe import Hardware
from orchestrator.plan.profiles import load_profiles
from orchestrator.plan.rulecheck import GOLDEN_DIR
from tests.fakes.ollama import DIGEST, FAKE_VERSION, start_in_thread

PROFILES = load_profiles()


def plan_for(machine="linux-gtx1060-6gb", **overrides):
    return decide(Hardware.load(GOLDEN_DIR / f"{machine}.json"), PROFILES, overrides)


def test_llama_cpp_argv_maps_every_knob():
    plan = plan_for(num_parallel=2, ngl=6, threads=4, num_ctx=4096)
    cmd = build_command(load_runtime("llama.cpp"), plan, "/opt/llama-server", 8080, "/m.gguf", plan.model)
    argv = cmd.argv
    assert argv[:5] == ["/opt/llama-server", "--host", "127.0.0.1", "--port", "8080"]
    pairs = {flag: value for flag, value in zip(argv, argv[1:]) if flag.startswith("-") and not value.startswith("-")}
    assert pairs["-ngl"] == "6" and pairs["--parallel"] == "2" and pairs["--threads"] == "4"
    assert pairs["-c"] == "8192", "total context is num_ctx x num_parallel"
    assert pairs["-m"] == "/m.gguf" and "--metrics" in argv and "--no-webui" in argv
    assert "--jinja" in argv, "tool calls need the model's chat template"
    assert cmd.request_fields == {"temperature": 0.1, "max_tokens": 2048}
    assert set(cmd.unsupported) == {"keep_alive", "max_loaded_models"}
    assert cmd.env == {}


def test_a_model_whose_file_carries_no_chat_template_is_served_with_the_catalogues_one():
    gemma = plan_for(model="gemma3-270m")
    assert gemma.chat_template == "gemma3" and gemma.reason("chat_template").rule_id == "models"
    argv = build_command(load_runtime("llama.cpp"), gemma, "/opt/llama-server", 8080, "/m.gguf", gemma.model).argv
    template = Path(argv[argv.index("--chat-template-file") + 1])
    assert template == REPO_ROOT / "runtimes" / "templates" / "gemma3.jinja" and template.is_file()
    smollm = plan_for(model="smollm2-135m-instruct")  # its file carries its own
    assert smollm.chat_template is None
    assert not any("chat-template" in a for a in build_command(load_runtime("llama.cpp"), smollm, "/opt/llama-server",
                                                               8080, "/m.gguf", "m").argv)
    chosen = plan_for(model="smollm2-135m-instruct", chat_template="gemma3")  # a user's choice is a deviation
    assert {d.knob: (d.value, d.source) for d in chosen.deviations}["chat_template"] == ("gemma3", "user")
    with pytest.raises(BadInput, match="chat_template.*must be one of gemma3"):
        plan_for(chat_template="nonesuch")
    ollama_cmd = build_command(load_runtime("ollama"), plan_for(runtime="ollama", model="smollm2-135m-instruct",
                                                                chat_template="gemma3"), "/usr/bin/ollama", 11500, None, "smollm2:135m")
    assert "Modelfile" in ollama_cmd.unsupported["chat_template"]  # an Ollama model carries its own


def test_every_chat_template_named_is_a_choice_with_its_file():
    choices = knob("chat_template").choices
    assert all((REPO_ROOT / "runtimes" / "templates" / f"{name}.jinja").is_file() for name in choices)
    assert {m.chat_template for m in PROFILES.models if m.chat_template} <= set(choices)


def test_ollama_env_and_request_options():
    plan = plan_for(runtime="ollama", num_parallel=2, keep_alive="5m", max_loaded_models=1)
    cmd = build_command(load_runtime("ollama"), plan, "/usr/bin/ollama", 11500, None, plan.model)
    assert cmd.argv == ["/usr/bin/ollama", "serve"]
    assert cmd.env == {"OLLAMA_HOST": "127.0.0.1:11500", "OLLAMA_NUM_PARALLEL": "2", "OLLAMA_MAX_LOADED_MODELS": "1",
                       "OLLAMA_KEEP_ALIVE": "5m", "OLLAMA_CONTEXT_LENGTH": "4096"}
    assert cmd.request_options == {"num_ctx": 4096, "num_gpu": plan.ngl, "num_thread": plan.threads,
                                   "num_predict": 2048, "temperature": 0.1}
    assert cmd.request_fields["keep_alive"] == "5m"


@pytest.mark.parametrize("line,kind", [
    ("ggml_backend_cuda_buffer_type_alloc_buffer: allocating 5400.00 MiB on device 0: cudaMalloc failed: out of memory", "oom"),
    ("llama_model_load: error loading model: ... failed to allocate buffer", "oom"),
    ("gguf_init_from_file_impl: invalid magic characters: 'xxxx', expected 'GGUF'", "model_unreadable"),
    ("srv    load_model: failed to load model, '/tmp/x.gguf'", "model_unreadable"),
    ("couldn't bind HTTP server socket, hostname: 127.0.0.1, port: 8080", "port_in_use"),
    ("something else entirely", "exited"),
])
def test_failure_classification_from_log_lines(line, kind):
    assert classify_failure(load_runtime("llama.cpp"), f"noise\n{line}\nmore") == kind


def test_port_already_taken_is_refused():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(LaunchError) as info:
            check_port_free(sock.getsockname()[1])
        assert info.value.kind == "port_in_use"


def write_script(path: Path, body: str) -> str:
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


def fake_ollama_binary(tmp_path: Path) -> str:
    return write_script(tmp_path / "ollama", f"""
        import sys
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from tests.fakes.ollama import main
        sys.exit(main(sys.argv[1:]))
        """)


def test_fake_ollama_launched_with_plan_env_and_stopped(tmp_path):
    plan = plan_for(runtime="ollama", num_parallel=2, keep_alive="5m")
    with launch(plan, fake_ollama_binary(tmp_path), None, tmp_path / "ollama.log", timeout_s=20) as running:
        pid = running.pid
        env = httpx.get(running.base_url + "/fake/env").json()
        assert env["OLLAMA_HOST"] == f"127.0.0.1:{running.port}"
        assert env["OLLAMA_NUM_PARALLEL"] == "2" and env["OLLAMA_KEEP_ALIVE"] == "5m"
        assert running.engine_version == FAKE_VERSION
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not list(pid_dir().glob("*.json"))


def test_fake_ollama_pull_progress_digest_and_unload():
    server, state, url = start_in_thread()
    try:
        seen = []
        ollama.pull(url, "qwen3.5:0.8b", lambda m, f: seen.append(f))
        assert max(f for f in seen if f is not None) == 1.0 and ollama.digest(url, "qwen3.5:0.8b") == DIGEST
        with pytest.raises(WeeyugaError, match="does not exist"):
            ollama.pull(url, "missing:1b")
        httpx.post(url + "/api/generate", json={"model": "smollm2:135m"})
        assert ollama.loaded(url) == ["smollm2:135m"]
        ollama.unload(url, "smollm2:135m")
        assert ollama.loaded(url) == [] and state.requests[-1][1]["keep_alive"] == 0
    finally:
        server.shutdown()


def test_runtime_that_never_becomes_healthy_times_out_and_is_killed(tmp_path):
    binary = write_script(tmp_path / "llama-server", """
        import time
        while True: time.sleep(1)
        """)
    plan = plan_for("linux-vps-cpu-4c-8gb")
    with pytest.raises(LaunchError) as info:
        with launch(plan, binary, "/nonexistent.gguf", tmp_path / "log", timeout_s=1.5):
            pass
    assert info.value.kind == "timeout" and binary in str(info.value)
    assert not list(pid_dir().glob("*.json"))


def test_runtime_that_exits_reports_log_tail(tmp_path):
    binary = write_script(tmp_path / "llama-server", """
        import sys
        print("ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 9999999", flush=True)
        sys.exit(1)
        """)
    with pytest.raises(LaunchError) as info:
        with launch(plan_for("linux-vps-cpu-4c-8gb"), binary, "/m.gguf", tmp_path / "log", timeout_s=10):
            pass
    assert info.value.kind == "oom" and "failed to allocate" in str(info.value)


def test_reaper_kills_runtime_of_a_dead_weeyuga(tmp_path):
    # A stand-in weeyuga launches a sleeper with a pidfile, then dies without cleaning up.
    owner = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, os
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from orchestrator.runtime.launch.processes import write_pidfile
        import subprocess
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
        write_pidfile(child, ["sleeper"])
        print(child.pid, flush=True)
        os._exit(0)
        """)], stdout=subprocess.PIPE, text=True)
    child_pid = int(owner.stdout.readline())
    owner.wait()
    assert reap_orphans() == [child_pid]
    for _ in range(50):
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
        with __import__("contextlib").suppress(ChildProcessError):
            os.waitpid(child_pid, os.WNOHANG)
    else:
        pytest.fail("orphan survived the reaper")


def test_run_captured_kills_the_whole_group_on_timeout(tmp_path):
    from orchestrator.core.procs import run_captured

    marker = tmp_path / "grandchild.pid"
    script = f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); open({str(marker)!r}, 'w').write(str(p.pid)); time.sleep(60)"
    with pytest.raises(subprocess.TimeoutExpired):
        run_captured([sys.executable, "-c", script], timeout=1.5)
    grandchild = int(marker.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the grandchild outlived run_captured's timeout")
