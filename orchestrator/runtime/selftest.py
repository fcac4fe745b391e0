"""Prove that a llama-server runs on this CPU before any plan trusts it.

A native build is a promise about one CPU: on a Sapphire Rapids guest llama.cpp's AMX path
crashed on the first graph compute while every test had passed on an EPYC. So each binary is
self-tested on every CPU it meets (a launch on the embedded default model, a sanity call and a
timed call), and when it fails the fallbacks of `runtimes/llama.cpp.yaml` `self_test` are tried:
runtime flags on the same binary first, rebuilds only when nothing built so far passes. Of the
variants that pass, the first (the default build as configured) is kept unless another decodes
faster by more than the noise of repeated timed calls (the spread of either variant's samples):
one sample's 3.6% would otherwise put `--no-repack` on every run as a deviation.

The verification is keyed by a fingerprint of the CPU (model name, ISA flags, machine) and the
backend, and stored in the build's `build-info.json` (a foreign binary's record lives in
`<cache>/runtimes/verified/`), so a cache copied to another machine is verified again there.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import httpx

from orchestrator.plan.decide import Deviation
from orchestrator.core import datafiles
from orchestrator.core.atomic import write_json_atomic
from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.runtime.install import (RuntimeInstall, build_llama_cpp, cached_builds, cached_install, locate_llama_server,
                      read_build_info, runtimes_root)
from orchestrator.plan.runtimes import load_runtime, self_test_command
from orchestrator.runtime.launch import LaunchError, RunningRuntime, free_port
from orchestrator.runtime.models import sha256_file
from orchestrator.core.paths import state_dir
from orchestrator.plan.probe import cpu_identity
from orchestrator.core.progress import Progress, quiet

RUNTIME = "llama.cpp"


@dataclass(frozen=True)
class SelfTest:
    """One variant's self-test: did it serve a sane answer, and how fast did it decode?"""

    variant: str
    build: str
    args: list[str]
    passed: bool
    outcome: str  # passed | crashed | exited | oom | timeout | port_in_use | model_unreadable | bad_answer | http_error | skipped
    detail: str
    tokens_per_sec: float | None = None  # the median of the server's own decode rates on the timed calls
    answer: str | None = None
    seconds: float = 0.0
    samples: list[float] | None = None  # each timed call's decode rate: their spread is the noise

    @property
    def spread(self) -> float:
        """(max - min) / median of the samples: how far apart two runs of the same variant land."""
        if not self.samples or not self.tokens_per_sec:
            return 0.0
        return (max(self.samples) - min(self.samples)) / self.tokens_per_sec


@dataclass(frozen=True)
class Verification:
    """What the self-test decided for this CPU and backend: the variant to run, and the evidence."""

    fingerprint: dict[str, Any]
    chosen: SelfTest | None
    tried: list[SelfTest]
    verified_at_utc: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "Verification":
        chosen = doc.get("chosen")
        return cls(doc["fingerprint"], SelfTest(**chosen) if chosen else None,
                   [SelfTest(**t) for t in doc.get("tried", [])], doc.get("verified_at_utc", ""))


def cpu_fingerprint(backend: str, identity: tuple[str, list[str]] | None = None) -> dict[str, Any]:
    """Model name + ISA flags + machine + backend; `id` keys the verification record."""
    brand, flags = identity or cpu_identity()
    flags_digest = hashlib.sha256(" ".join(sorted(set(flags))).encode()).hexdigest()
    facts = {"cpu": brand, "machine": platform.machine(), "flags_sha256": flags_digest, "backend": backend}
    facts["id"] = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
    return facts


# ---------------------------------------------------------------------------------------
# One variant's self-test


def _chat(client: httpx.Client, base_url: str, prompt: str, max_tokens: int, ignore_eos: bool) -> dict[str, Any]:
    body = {"model": "self-test", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0.0, "stream": False, "cache_prompt": False}
    if ignore_eos:
        body["ignore_eos"] = True  # llama-server: decode exactly max_tokens, so the rate is comparable
    response = client.post(base_url + "/v1/chat/completions", json=body)
    response.raise_for_status()
    return response.json()


def _sane_answer(doc: dict[str, Any]) -> tuple[str | None, str]:
    """(answer, problem): a broken kernel answers nothing, one repeated character, or no timings."""
    try:
        text = doc["choices"][0]["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        return None, "the answer has no choices[0].message"
    timings = doc.get("timings") if isinstance(doc.get("timings"), dict) else {}
    stripped = text.strip()
    if not stripped:
        return text, "the answer is empty"
    if len(set(stripped)) < 3:
        return text, f"the answer is one repeated character: {stripped[:40]!r}"
    wordy = sum(ch.isalpha() or ch.isspace() for ch in stripped) / len(stripped)
    if wordy < 0.5:
        return text, f"the answer is mostly not text: {stripped[:40]!r}"
    if not (timings.get("predicted_n") or 0) > 0:
        return text, "the server reported no timings for the answer"
    return text, ""


def _failure_detail(exc: LaunchError) -> str:
    """What happened and the log's last line, without the command line (it is in the record's args)."""
    last = exc.log_tail.strip().splitlines()[-1:]
    return "; ".join([exc.what, *(f"last log line: {line.strip()}" for line in last)])[:600]


def _decode_rate(doc: dict[str, Any]) -> float | None:
    rate = (doc.get("timings") or {}).get("predicted_per_second")
    return float(rate) if isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0 else None


def self_test(binary: str, model_path: str, variant: dict[str, Any], backend: str, log_path: Path) -> SelfTest:
    """Launch `binary` with the variant's flags on the model, ask once for sense and once for speed."""
    defn = load_runtime(RUNTIME)
    spec = defn.self_test
    args = list(variant.get("args", []))
    port = free_port()
    command = self_test_command(defn, binary, port, model_path, 0 if backend == "cpu" else spec["gpu_layers"], tuple(args))
    runtime = RunningRuntime(defn, command, port, log_path, "self-test")
    started = time.monotonic()

    def result(passed: bool, outcome: str, detail: str, **more: Any) -> SelfTest:
        return SelfTest(variant["id"], variant["build"], args, passed, outcome, detail,
                        seconds=round(time.monotonic() - started, 2), **more)

    try:
        runtime.start()
        runtime.wait_ready(spec["timeout_s"])
        with httpx.Client(timeout=spec["timeout_s"]) as client:
            sanity = _chat(client, runtime.base_url, spec["prompt"], spec["answer_tokens"], ignore_eos=False)
            answer, problem = _sane_answer(sanity)
            if problem:
                return result(False, "bad_answer", problem, answer=answer)
            rates = [_decode_rate(_chat(client, runtime.base_url, spec["prompt"], spec["speed_tokens"], ignore_eos=True))
                     for _ in range(spec["speed_samples"])]
        if None in rates:
            return result(False, "bad_answer", "a timed call reported no decode rate", answer=answer)
        rate = statistics.median(rates)
        return result(True, "passed", f"{rate:.1f} tok/s decode (median of {len(rates)}, server timing)",
                      tokens_per_sec=round(rate, 2), answer=answer[:120], samples=[round(r, 2) for r in rates])
    except LaunchError as exc:
        return result(False, exc.kind, _failure_detail(exc))
    except (httpx.HTTPError, ValueError) as exc:
        died = runtime.exit_failure()  # a crash mid-call shows up as a dropped connection
        if died is not None:
            return result(False, died.kind, _failure_detail(died))
        return result(False, "http_error", f"{type(exc).__name__}: {exc}"[:600])
    finally:
        runtime.stop()


# ---------------------------------------------------------------------------------------
# Choosing the variant that runs on this CPU


Builder = Callable[[str, tuple[str, ...]], RuntimeInstall]
Tester = Callable[[str, str, dict[str, Any], str, Path], SelfTest]


def _store_path(install: RuntimeInstall) -> Path:
    """Our builds keep their record in build-info.json; a foreign binary's is keyed by its sha256."""
    if install.source in ("cache", "built"):
        return Path(install.binary).parent.parent / "build-info.json"
    return runtimes_root() / "verified" / f"{sha256_file(Path(install.binary))[:16]}.json"


def _read_record(path: Path, fingerprint_id: str) -> Verification | None:
    doc = read_build_info(path.parent) if path.name == "build-info.json" else _read_json(path)
    record = (doc.get("verified") or {}).get(fingerprint_id)
    try:
        return Verification.from_dict(record) if isinstance(record, dict) else None
    except (KeyError, TypeError):
        return None  # a record from another weeyuga version: verify again


def _read_json(path: Path) -> dict:
    """A foreign binary's record, or {} when it is missing or damaged (verify again)."""
    try:
        doc = datafiles.read_json(path)
    except BadInput:
        return {}
    return doc if isinstance(doc, dict) else {}


def _write_record(path: Path, verification: Verification) -> None:
    """Add this CPU's verification to the record. A damaged build-info.json is left as it is: rewriting it
    with only `verified` would drop the build's facts (backend, version) from every later manifest."""
    doc = read_build_info(path.parent) if path.name == "build-info.json" else _read_json(path)
    if path.name == "build-info.json" and not doc:
        return
    verified = doc.get("verified") if isinstance(doc.get("verified"), dict) else {}
    doc["verified"] = {**verified, verification.fingerprint["id"]: verification.to_dict()}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, doc)


def applicable_variants(cpu_flags: list[str]) -> list[dict[str, Any]]:
    flags = {f.lower() for f in cpu_flags}
    variants = load_runtime(RUNTIME).self_test["variants"]
    return [v for v in variants if set(v.get("requires_cpu_flags", [])) <= flags]


def choose_variant(existing: dict[str, RuntimeInstall], model_path: str, backend: str, fingerprint: dict[str, Any],
                   cpu_flags: list[str], build: Builder, test: Tester, progress: Progress = quiet,
                   log_dir: Path | None = None) -> tuple[Verification, dict[str, RuntimeInstall]]:
    """Self-test the variants in order; build a fallback only when nothing built so far passed.

    `existing` maps build ids to the binaries already there. A foreign binary (configured or on
    PATH) can only be tried with runtime flags: we do not rebuild what we did not build.
    """
    builds_spec = load_runtime(RUNTIME).self_test["builds"]
    installs = dict(existing)
    ours = all(i.source in ("cache", "built") for i in installs.values())
    tried: list[SelfTest] = []
    log_dir = log_dir or state_dir() / "logs"
    for variant in applicable_variants(cpu_flags):
        build_id = variant["build"]
        if build_id not in installs:
            if any(t.passed for t in tried):
                continue  # never spend a rebuild when a built variant already works
            if not ours or build_id not in builds_spec:
                tried.append(SelfTest(variant["id"], build_id, list(variant.get("args", [])), False, "skipped",
                                      f"not built by weeyuga, so no {build_id} rebuild"))
                continue
            progress(f"self-test: building the {build_id} fallback of llama-server", None)
            try:
                installs[build_id] = build(build_id, tuple(builds_spec[build_id]["cmake_flags"]))
            except WeeyugaError as exc:
                tried.append(SelfTest(variant["id"], build_id, list(variant.get("args", [])), False, "build_failed",
                                      str(exc).splitlines()[0][:600]))
                continue
        progress(f"self-test: {variant['id']} on this CPU", None)
        log = log_dir / f"self-test-{fingerprint['id']}-{variant['id']}.log"
        outcome = test(installs[build_id].binary, model_path, variant, backend, log)
        tried.append(replace(outcome, detail=f"{outcome.detail} ({variant['reason']})" if not outcome.passed
                             else outcome.detail))
    chosen = prefer_default([t for t in tried if t.passed])
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return Verification(fingerprint, chosen, tried, stamp), installs


def prefer_default(passed: list[SelfTest]) -> SelfTest | None:
    """The first variant that passed (the order of `variants`: the default build first), replaced only by
    one whose median rate beats it by more than the larger spread of the two variants' samples."""
    chosen = passed[0] if passed else None
    for other in passed[1:]:
        margin = max(chosen.spread, other.spread)
        if (other.tokens_per_sec or 0.0) > (chosen.tokens_per_sec or 0.0) * (1 + margin):
            chosen = other
    return chosen


def _summary(verification: Verification) -> str:
    return "; ".join(f"{t.variant}: {t.outcome} ({t.detail})" for t in verification.tried)


def _with_verification(install: RuntimeInstall, verification: Verification) -> RuntimeInstall:
    chosen = verification.chosen
    return replace(install, variant_args=tuple(chosen.args), self_test=verification.to_dict())


def verified_llama_server(backend: str = "cpu", progress: Progress = quiet, rebuild: bool = False,
                          retest: bool = False, model_path: str | None = None, identity: tuple[str, list[str]] | None = None,
                          build: Builder | None = None, test: Tester = self_test) -> RuntimeInstall:
    """A llama-server that has proven itself on this CPU, with the flags it needs.

    Found or built as `install_llama_cpp` does, then self-tested on the embedded default model
    unless this CPU and backend already have a record (`retest` ignores it). Raises when no variant runs.
    """
    identity = identity or cpu_identity()
    base = None if rebuild else locate_llama_server(backend)
    if base is None:
        base = build_llama_cpp(backend, progress=progress)
    fingerprint = cpu_fingerprint(base.backend or backend, identity)
    existing = _candidates(base)
    record = None if retest else _find_record(existing, fingerprint)
    if record is not None and record.chosen is not None and record.chosen.build in existing:
        return _with_verification(existing[record.chosen.build], record)
    if model_path is None:
        model_path = _embedded_model_path(progress)
    version = base.build_info.get("package_version")
    builder = build or (lambda build_id, flags: build_llama_cpp(backend, version, progress,
                                                              build_id=build_id, extra_cmake_flags=flags))
    verification, installs = choose_variant(existing, model_path, base.backend or backend, fingerprint, identity[1],
                                            builder, test, progress)
    for install in installs.values():
        _write_record(_store_path(install), verification)
    if verification.chosen is None:
        raise WeeyugaError(f"llama-server failed its self-test on this CPU ({fingerprint['cpu']}) in every variant: "
                           f"{_summary(verification)}; report this with `weeyuga doctor`'s output")
    return _with_verification(installs[verification.chosen.build], verification)


def _candidates(base: RuntimeInstall) -> dict[str, RuntimeInstall]:
    """The located binary and, for our cached builds, the fallback builds of the same version beside it."""
    found = {base.build_id: base}
    if base.source not in ("cache", "built"):
        return found
    version = base.build_info.get("package_version")
    for build_id in load_runtime(RUNTIME).self_test["builds"]:
        same_version = [b for b in cached_builds(base.backend, build_id) if version is None or f"-{version}-" in b.name]
        if build_id not in found and same_version:
            found[build_id] = cached_install(same_version[0])
    return found


def _find_record(installs: dict[str, RuntimeInstall], fingerprint: dict[str, Any]) -> Verification | None:
    for install in installs.values():
        record = _read_record(_store_path(install), fingerprint["id"])
        if record is not None:
            return record
    return None


def _embedded_model_path(progress: Progress) -> str:
    from orchestrator.runtime.models import get_model
    from orchestrator.plan.profiles import load_profiles

    profiles = load_profiles()
    return get_model(profiles.model(profiles.embedded_default), progress=progress).path


def recorded_verification(install: RuntimeInstall) -> Verification | None:
    """This CPU's record for a located binary, without testing anything (for `weeyuga doctor`)."""
    return _find_record(_candidates(install), cpu_fingerprint(install.backend or "cpu"))


def variant_deviation(install: RuntimeInstall) -> Deviation | None:
    """Flags the self-test added are a deviation from the plan's launch, with the evidence."""
    if not install.variant_args:
        return None
    verification = Verification.from_dict(install.self_test)
    failed = [t for t in verification.tried if not t.passed and t.outcome != "skipped"]
    why = "; ".join(f"{t.variant} {t.outcome}" for t in failed) or "it decoded fastest on this CPU"
    return Deviation(knob="runtime_args", value=list(install.variant_args), replaced=[],
                     overrode=f"self-test on this CPU chose {verification.chosen.variant}: {why}", source="self_test")
