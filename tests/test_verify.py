"""The self-test and its fallbacks, against a FAKE llama-server that crashes unless a given flag or
build option is present (tests/fakes/llama_server.py), and the exit classifier on recorded tails."""

import json
import signal

import pytest

from orchestrator.core.errors import WeeyugaError
from orchestrator.runtime.install import runtimes_root
from orchestrator.runtime.launch import classify_failure, describe_exit, load_runtime
from orchestrator.runtime.selftest import (cpu_fingerprint, recorded_verification, self_test, variant_deviation,
                                 verified_llama_server)
from tests.fakes import llama_server as fake

AMX_CPU = ("Intel(R) Xeon(R) Platinum 8480+", ["sse4_2", "avx2", "avx512f", "amx_tile", "amx_int8", "amx_bf16"])
EPYC_CPU = ("AMD EPYC 9654 96-Core Processor", ["sse4_2", "avx2", "avx512f"])
DEFN = load_runtime("llama.cpp")

SEGV_TAIL = """load_tensors: CPU_REPACK model buffer size = 60.00 MiB
#0  0x00007f3a2c1d4e10 in ggml_backend_amx_mul_mat () from libggml-cpu.so
#1  0x00007f3a2c1a0b22 in ggml_graph_compute_thread ()
"""


@pytest.mark.parametrize("tail,code,kind", [
    (SEGV_TAIL, -signal.SIGSEGV, "crashed"),
    ("system_info: n_threads = 2\n", -signal.SIGILL, "crashed"),
    ("ggml/src/ggml.c:1234: GGML_ASSERT(n_dims > 0) failed\n", -signal.SIGABRT, "crashed"),
    ("ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 9000000000\n", -signal.SIGABRT, "oom"),
    ("couldn't bind HTTP server socket, hostname: 127.0.0.1, port: 8080\n", 1, "port_in_use"),
    ("gguf_init_from_file_impl: invalid magic characters\n", 1, "model_unreadable"),
    ("srv  main: exiting\n", 1, "exited"),
    (SEGV_TAIL, 1, "exited"),  # backtrace-looking text without a crash signal is not a crash
])
def test_classifier_on_recorded_tails_and_signals(tail, code, kind):
    assert classify_failure(DEFN, tail, code) == kind


def test_crash_description_names_the_signal_and_keeps_the_frames():
    kind, what = describe_exit(DEFN, -signal.SIGSEGV, SEGV_TAIL)
    assert kind == "crashed"
    assert "killed by SIGSEGV" in what and "ggml_backend_amx_mul_mat" in what
    assert "CPU_REPACK" not in what, "only backtrace-like lines are kept"


def seed_native_build(**behaviour):
    """A FAKE cached native build, as `weeyuga runtime install` leaves one."""
    build = runtimes_root() / "llama.cpp-1.0-cpu"
    fake.install(build, [], **behaviour)
    (build / "build-info.json").write_text(json.dumps(
        {"package_version": "1.0", "backend": "cpu", "build_id": "native", "llama_cpp_version": "1 (fake)"}))
    return build


class FakeBuilder:
    """Stands in for a rebuild: writes a FAKE build with the fallback's cmake flags."""

    def __init__(self, **behaviour):
        self.behaviour = behaviour
        self.built: list[str] = []

    def __call__(self, build_id, flags):
        from orchestrator.runtime.install import RuntimeInstall

        self.built.append(build_id)
        directory = runtimes_root() / f"llama.cpp-1.0-cpu+{build_id}"
        program = fake.install(directory, list(flags), **self.behaviour)
        info = {"package_version": "1.0", "backend": "cpu", "build_id": build_id}
        (directory / "build-info.json").write_text(json.dumps(info))
        return RuntimeInstall("llama.cpp", str(program), "1 (fake)", "cpu", "built", info, build_id)


def verify(builder, identity=AMX_CPU, **kwargs):
    return verified_llama_server("cpu", model_path="/models/fake.gguf", identity=identity, build=builder, **kwargs)


def test_no_repack_flag_is_the_first_fallback_and_needs_no_rebuild():
    behaviour = {"ok_args": ["--no-repack"], "ok_flags": ["-mno-amx-tile"]}
    seed_native_build(**behaviour)
    builder = FakeBuilder(**behaviour)
    install = verify(builder)
    assert install.variant_args == ("--no-repack",)
    assert builder.built == [], "a runtime flag that works spares the 8-minute rebuild"
    tried = {t["variant"]: t for t in install.self_test["tried"]}
    assert tried["native"]["outcome"] == "crashed" and "SIGSEGV" in tried["native"]["detail"]
    assert tried["no-repack"]["passed"] and tried["no-repack"]["tokens_per_sec"] == 50.0
    deviation = variant_deviation(install)
    assert deviation.knob == "runtime_args" and deviation.value == ["--no-repack"] and deviation.source == "self_test"
    assert "native crashed" in deviation.overrode


def test_rebuild_without_amx_when_no_runtime_flag_helps_and_portable_is_not_built():
    behaviour = {"ok_flags": ["-mno-amx-tile"]}
    seed_native_build(**behaviour)
    builder = FakeBuilder(**behaviour)
    install = verify(builder)
    assert builder.built == ["no-amx"]
    assert install.build_id == "no-amx" and install.variant_args == ()
    assert install.binary.endswith("llama.cpp-1.0-cpu+no-amx/bin/llama-server")
    outcomes = [(t["variant"], t["outcome"]) for t in install.self_test["tried"]]
    assert outcomes == [("native", "crashed"), ("no-repack", "crashed"), ("no-amx", "passed")]


def test_a_cpu_without_amx_skips_the_amx_rebuild_and_goes_portable():
    behaviour = {"ok_flags": ["GGML_NATIVE=OFF"], "signal": "SIGILL"}
    seed_native_build(**behaviour)
    builder = FakeBuilder(**behaviour)
    install = verify(builder, identity=EPYC_CPU)
    assert builder.built == ["portable"]
    assert install.build_id == "portable"
    assert [t["variant"] for t in install.self_test["tried"]] == ["native", "no-repack", "portable"]
    assert "SIGILL" in install.self_test["tried"][0]["detail"]


def test_when_several_variants_pass_the_fastest_is_kept(monkeypatch):
    seed_native_build(always_ok=True, tokens_per_sec=40.0)
    speeds = {"native": 40.0, "no-repack": 55.0}

    def measured(binary, model, variant, backend, log):
        result = self_test(binary, model, variant, backend, log)
        from dataclasses import replace
        return replace(result, tokens_per_sec=speeds[variant["id"]])

    install = verify(FakeBuilder(), test=measured)
    assert install.variant_args == ("--no-repack",)
    assert install.self_test["chosen"]["tokens_per_sec"] == 55.0
    assert "decoded fastest" in variant_deviation(install).overrode


def test_the_record_is_reused_on_this_cpu_and_redone_on_another():
    build = seed_native_build(ok_args=["--no-repack"])
    verify(FakeBuilder())
    info = json.loads((build / "build-info.json").read_text())
    assert cpu_fingerprint("cpu", AMX_CPU)["id"] in info["verified"], "keyed by CPU fingerprint and backend"

    def must_not_run(*args):
        raise AssertionError("a verified CPU is not tested again")

    assert verify(FakeBuilder(), test=must_not_run).variant_args == ("--no-repack",)
    with pytest.raises(AssertionError, match="not tested again"):
        verify(FakeBuilder(), test=must_not_run, retest=True)
    other_cpu = ("Intel(R) Xeon(R) Processor", AMX_CPU[1])
    with pytest.raises(AssertionError, match="not tested again"):
        verify(FakeBuilder(), identity=other_cpu, test=must_not_run)


def test_every_variant_failing_is_one_clear_error():
    seed_native_build()
    with pytest.raises(WeeyugaError) as failure:
        verify(FakeBuilder())
    message = str(failure.value)
    assert "failed its self-test on this CPU" in message
    for variant in ("native", "no-repack", "no-amx", "portable"):
        assert f"{variant}: crashed" in message


def test_a_crash_during_the_first_call_is_crashed_not_a_connection_error(tmp_path):
    program = fake.install(tmp_path / "b", [], crash_on="first_call")
    result = self_test(str(program), "/m.gguf", {"id": "native", "build": "native", "reason": "r"}, "cpu",
                       tmp_path / "log")
    assert result.outcome == "crashed" and "SIGSEGV" in result.detail and not result.passed


def test_a_garbage_answer_fails_the_self_test(tmp_path):
    program = fake.install(tmp_path / "b", [], always_ok=True, answer="!!!!!!!!!!!!")
    result = self_test(str(program), "/m.gguf", {"id": "native", "build": "native", "reason": "r"}, "cpu",
                       tmp_path / "log")
    assert result.outcome == "bad_answer" and "repeated character" in result.detail


def test_doctor_reads_the_record_without_testing(monkeypatch):
    seed_native_build(ok_args=["--no-repack"])
    install = verify(FakeBuilder())
    monkeypatch.setattr("orchestrator.runtime.selftest.cpu_identity", lambda: AMX_CPU)
    record = recorded_verification(install)
    assert record.chosen.variant == "no-repack"


def test_a_crash_mid_run_is_recorded_as_the_runtimes_death_without_local_paths(tmp_path):
    """A runtime that dies by a signal during a call: the call's error names the crash, not a dropped connection."""
    from orchestrator.plan.decide import decide
    from orchestrator.runtime.launch import launch
    from orchestrator.core.ledger import read_records
    from orchestrator.plan.probe import Hardware
    from orchestrator.plan.profiles import load_profiles
    from orchestrator.plan.rulecheck import GOLDEN_DIR
    from orchestrator.measure.run import Cell, RunOptions, Target, run_suites

    program = fake.install(tmp_path / "build", [], crash_on="first_call")
    plan = decide(Hardware.load(GOLDEN_DIR / "linux-vps-cpu-4c-8gb.json"), load_profiles(), {})
    with launch(plan, str(program), "/m.gguf", tmp_path / "runtime.log", timeout_s=20) as running:
        target = Target(Cell("node:llamacpp:m", "llamacpp", "m", running.base_url, "openai"),
                        crash_note=running.crash_note)
        run_suites([target], RunOptions(phases=["hello"], runs=1, force_load=True), tmp_path / "run", "run-1")
    errors = [r["error"] for r in read_records(tmp_path / "run" / "run.jsonl") if r["type"] == "call"]
    assert errors[0].startswith("runtime died: llama.cpp crashed (killed by SIGSEGV)")
    assert "ggml_backend_amx_mul_mat" in errors[0] and str(tmp_path) not in errors[0]


def passed_test(variant, samples):
    import statistics

    from orchestrator.runtime.selftest import SelfTest

    return SelfTest(variant, "native", [], True, "passed", "ok", tokens_per_sec=statistics.median(samples), samples=samples)


def test_the_default_variant_stays_unless_another_is_faster_beyond_the_noise():
    from orchestrator.runtime.selftest import prefer_default

    native = passed_test("native", [194.8, 199.0, 190.1])  # about 4.6% apart between its own samples
    # the EPYC case: 3.6% faster on its median is within the noise, so no flag (and no deviation) is added
    assert prefer_default([native, passed_test("no-repack", [201.9, 196.0, 203.0])]).variant == "native"
    assert prefer_default([native, passed_test("no-repack", [240.0, 238.5, 241.0])]).variant == "no-repack"
    assert prefer_default([passed_test("no-repack", [100.0, 101.0])]).variant == "no-repack"  # the only one that runs
    assert prefer_default([]) is None


def test_an_old_record_without_samples_still_reads():
    from orchestrator.runtime.selftest import SelfTest, Verification

    old = {"variant": "native", "build": "native", "args": [], "passed": True, "outcome": "passed", "detail": "90 tok/s",
           "tokens_per_sec": 90.0, "answer": "Red.", "seconds": 3.0}
    record = Verification.from_dict({"fingerprint": {"id": "x"}, "chosen": old, "tried": [old]})
    assert record.chosen == SelfTest(**old) and record.chosen.spread == 0.0


def test_a_damaged_build_info_is_never_rewritten_with_only_the_verification(tmp_path):
    from orchestrator.runtime import selftest

    info = tmp_path / "build-info.json"
    info.write_text("[" * 3000 + "]" * 3000)
    record = selftest.Verification({"id": "f" * 16}, None, [], "2026-12-06T00:00:00Z")
    selftest._write_record(info, record)
    assert info.read_text() == "[" * 3000 + "]" * 3000
    info.write_text(json.dumps({"package_version": "1.0", "backend": "cpu", "build_id": "native"}))
    selftest._write_record(info, record)
    written = json.loads(info.read_text())
    assert written["backend"] == "cpu" and list(written["verified"]) == ["f" * 16]


def test_the_self_test_launches_through_the_definitions_argv_builder():
    """Its flags come from runtimes/llama.cpp.yaml (serve args, pinned args, the knobs' own flags), none spelled here."""
    from orchestrator.plan.runtimes import HOST, load_runtime, self_test_command

    defn = load_runtime("llama.cpp")
    argv = self_test_command(defn, "/bin/llama-server", 8123, "/m.gguf", 0, ("--no-repack",)).argv
    assert argv[:3] == ["/bin/llama-server", "--host", HOST] and argv[-1] == "--no-repack"
    assert argv[argv.index(defn.knobs["num_ctx"]["flag"]) + 1] == str(defn.self_test["ctx"])
    assert argv[argv.index(defn.knobs["ngl"]["flag"]) + 1] == "0"
    assert all(arg in argv for arg in defn.pinned_args)
