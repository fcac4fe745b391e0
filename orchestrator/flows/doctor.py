"""`weeyuga doctor`: is everything `auto` needs here? One line per check, with the fix."""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass

from orchestrator.runtime.install import locate_llama_server, locate_ollama
from orchestrator.runtime.selftest import recorded_verification
from orchestrator.runtime.launch import HOST
from orchestrator.runtime.models import cached_model
from orchestrator.core.paths import cache_dir
from orchestrator.plan.probe import Hardware, load_nvml
from orchestrator.plan.profiles import load_profiles
from orchestrator.measure.run import LOAD_AVG_LIMIT, load_average
from orchestrator.evaluate.sandbox.contain import HOW_TO_CONTAIN, Containment, probe_containment
from orchestrator.evaluate.sandbox.docker import choice as sandbox_choice
from orchestrator.evaluate.sandbox.docker.choice import DockerReadiness

MIN_FREE_DISK_GB = 2.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def self_test_check(server) -> Check:
    """The variant this CPU's self-test chose and its speed; never tests anything itself."""
    record = recorded_verification(server)
    if record is None:
        return Check("self-test", False, "llama-server has not proven itself on this CPU yet: run "
                     "`weeyuga runtime install llama.cpp` (auto does it too; about a minute)")
    if record.chosen is None:
        failed = "; ".join(f"{t.variant} {t.outcome}" for t in record.tried)
        return Check("self-test", False, f"every variant failed on this CPU ({failed}): run `weeyuga runtime install "
                     "llama.cpp --rebuild` and report the output if it fails again")
    flags = " ".join(record.chosen.args) or "no extra flags"
    failed = [f"{t.variant} {t.outcome}" for t in record.tried if not t.passed and t.outcome != "skipped"]
    return Check("self-test", True, f"variant {record.chosen.variant} ({flags}) verified {record.verified_at_utc}, "
                 f"{record.chosen.tokens_per_sec} tok/s" + (f"; failed here: {', '.join(failed)}" if failed else ""))


def run_checks(hw: Hardware) -> list[Check]:
    profiles = load_profiles()
    checks = []
    server = locate_llama_server()
    if server:
        checks.append(Check("runtime", True, f"llama-server {server.version or ''} ({server.source}) at {server.binary}"))
        checks.append(self_test_check(server))
    else:
        tools = [t for t in ("cmake", "c++") if shutil.which(t) is None]
        fix = (f"install {' and '.join(tools)}, then run `weeyuga runtime install llama.cpp` (builds in minutes)"
               if tools else "run `weeyuga runtime install llama.cpp` (auto does this itself; it takes minutes)")
        checks.append(Check("runtime", False, f"no llama-server yet: {fix}"))
    ollama = locate_ollama()
    checks.append(Check("ollama", True, f"ollama {ollama.version} at {ollama.binary}" if ollama
                        else "not installed (optional: weeyuga uses llama.cpp unless the plan or --runtime says ollama)"))
    default = profiles.model(profiles.embedded_default)
    model = cached_model(default, default.default_quant)
    checks.append(Check("model", model is not None, f"{default.id} cached at {model.path}" if model
                        else f"{default.id} not cached: run `weeyuga model get {default.id}` (auto fetches it, ~100 MB)"))
    try:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
        checks.append(Check("port", True, f"can listen on {HOST}"))
    except OSError as exc:
        checks.append(Check("port", False, f"cannot listen on {HOST} ({exc.strerror}): check firewall or sandbox rules"))
    target = cache_dir()
    probe_at = target if target.exists() else target.parent if target.parent.exists() else os.path.expanduser("~")
    free_gb = shutil.disk_usage(probe_at).free / 2**30
    checks.append(Check("disk", free_gb >= MIN_FREE_DISK_GB, f"{free_gb:.1f} GB free for {target}" +
                        ("" if free_gb >= MIN_FREE_DISK_GB else f": free at least {MIN_FREE_DISK_GB:.0f} GB or set WEEYUGA_CACHE")))
    load = load_average()
    if load is None:
        checks.append(Check("load", True, "load average unavailable on this system"))
    else:
        checks.append(Check("load", load[0] <= LOAD_AVG_LIMIT, f"load average {load[0]:.2f}" + (
            "" if load[0] <= LOAD_AVG_LIMIT else f" is above {LOAD_AVG_LIMIT}: close heavy programs and wait, or pass --force-load")))
    nvidia = [g for g in hw.gpu if g.vendor == "nvidia"]
    if nvidia:
        ok = load_nvml() is not None
        checks.append(Check("gpu", ok, f"{nvidia[0].name}, driver {nvidia[0].driver}" if ok else
                            "an NVIDIA GPU is present but NVML does not answer: install or repair the NVIDIA driver"))
    else:
        checks.append(Check("gpu", True, "no NVIDIA GPU: " + (", ".join(g.name for g in hw.gpu) or "CPU plan")))
    checks += sandbox_checks(sandbox_choice.docker_readiness(), probe_containment())
    return checks


def sandbox_checks(docker: DockerReadiness, process: Containment) -> list[Check]:
    """Docker is optional: without it the process sandbox contains agent tasks and codeexec. Only where
    neither contains them is it a FIX: auto then runs speed and quality and skips that code."""
    if docker.engine is None:
        checks = [Check("docker", True, f"not in use: {docker.reason}")]
    else:
        used = "--sandbox auto uses it" if docker.ready else "the process sandbox is used until then"
        checks = [Check("docker", True, docker.engine), Check("sandbox", True, f"{docker.reason}; {used}")]
    if process.contained:
        checks.append(Check("contain", True, f"process sandbox: {process.detail}"))
    elif not docker.ready:
        checks.append(Check("contain", False, f"nothing contains model-written code here ({process.detail}): "
                                              f"{HOW_TO_CONTAIN}; until then auto skips the agent tasks and codeexec"))
    return checks
