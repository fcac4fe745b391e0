"""The GPU kit (issue #29): its parts with fakes, and the whole kit rehearsed on the CPU."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import gguf
import psutil
import pytest

from benchmarks.gpu.kit import partial_free_bytes
from benchmarks.gpu.random_gguf import SHAPES, write_random_gguf
from orchestrator.core.errors import BadInput
from orchestrator.core.procs import run_captured
from orchestrator.plan.probe import load_nvml
from orchestrator.plan.probe.recorded_nvml import ENV, RecordedNVML
from orchestrator.plan.profiles import local_model_spec

REPO = Path(__file__).resolve().parent.parent
SUMMARY_FIELDS = {"device", "model_shape", "free_vram_mb", "tuned_ngl", "tuned_tokens_per_sec", "sweep_best_ngl",
                  "sweep_best_tokens_per_sec", "fit_on_ngl", "fit_on_tokens_per_sec", "fit_params_ngl", "tune_launches",
                  "sweep_launches", "vram_peak_mb", "vram_estimate_mb", "bandwidth_fraction", "run_folder"}


def tokenizer_gguf(path: Path) -> Path:
    """A GGUF holding only a small tokenizer (what random_gguf copies)."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"t{i}" for i in range(64)])
    writer.add_token_types([1] * 64)
    writer.add_bos_token_id(1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_scaled_shapes_stay_valid(name):
    for scale in (1, 8, 32, 64):
        shape = SHAPES[name].scaled(scale)
        assert shape.embedding % shape.heads == 0 and shape.heads % shape.kv_heads == 0
        assert shape.embedding % 32 == 0 and shape.feed_forward % 32 == 0 and shape.layers >= 2


def test_a_random_gguf_is_a_model_weeyuga_can_plan(tmp_path):
    shape = SHAPES["llama-8b"].scaled(32)
    facts = write_random_gguf(tmp_path / "m.gguf", shape, tokenizer_gguf(tmp_path / "tok.gguf"))
    spec = local_model_spec(tmp_path / "m.gguf")
    assert (spec.layers, spec.heads, spec.kv_heads, spec.default_quant) == (shape.layers, shape.heads, shape.kv_heads, "Q4_0")
    assert spec.quant().file_size_bytes == facts["bytes"] == (tmp_path / "m.gguf").stat().st_size
    assert spec.params_b == pytest.approx(facts["parameters"] / 1e9, abs=1e-3)
    reader = gguf.GGUFReader(tmp_path / "m.gguf")
    scales = reader.get_tensor(1).data  # blk.0.attn_q.weight: every Q4_0 block's fp16 scale is finite
    assert reader.fields["tokenizer.ggml.tokens"].contents()[:2] == ["t0", "t1"]
    assert len(scales) > 0


def test_a_recorded_nvml_stands_in_for_the_real_one(tmp_path, monkeypatch):
    recording = tmp_path / "nvml.json"
    recording.write_text(json.dumps({"driver": "580", "boards": [
        {"name": "NVIDIA H100 80GB HBM3", "total_bytes": 80 * 2**30, "free_bytes": 6 * 2**30, "bus_width_bits": 5120,
         "mem_clock_mhz": 2619}]}))
    monkeypatch.setenv(ENV, str(recording))
    nvml = load_nvml()
    assert isinstance(nvml, RecordedNVML)
    board = nvml.nvmlDeviceGetHandleByIndex(0)
    assert nvml.nvmlDeviceGetMemoryInfo(board).free == 6 * 2**30
    assert nvml.nvmlDeviceGetMemoryBusWidth(board) == 5120
    with pytest.raises(RuntimeError):
        nvml.nvmlDeviceGetComputeRunningProcesses(board)


def test_a_bad_recording_is_one_line_of_bad_input(tmp_path, monkeypatch):
    (tmp_path / "nvml.json").write_text("{\"boards\": [{}]}")
    monkeypatch.setenv(ENV, str(tmp_path / "nvml.json"))
    with pytest.raises(BadInput, match="not an NVML recording"):
        load_nvml()


def test_decide_plans_a_partial_offload_for_a_local_gguf_on_a_recorded_gpu(tmp_path, monkeypatch):
    shape = SHAPES["llama-32b"].scaled(8)
    facts = write_random_gguf(tmp_path / "big.gguf", shape, tokenizer_gguf(tmp_path / "tok.gguf"))
    recording = tmp_path / "nvml.json"
    recording.write_text(json.dumps({"boards": [{"name": "NVIDIA H100 80GB HBM3", "total_bytes": 80 * 2**30,
                                                 "free_bytes": partial_free_bytes(facts["bytes"]),
                                                 "bus_width_bits": 5120, "mem_clock_mhz": 2619}]}))
    env = {**os.environ, ENV: str(recording), "WEEYUGA_CACHE": str(tmp_path / "cache")}
    probe = run_captured([sys.executable, "-m", "orchestrator.cli", "probe", "--out", str(tmp_path / "hw.json"),
                          "--no-bandwidth"], timeout=120, env=env, cwd=REPO)
    assert probe.returncode == 0, probe.stderr
    hardware = json.loads((tmp_path / "hw.json").read_text())
    assert hardware["gpu"][0]["name"] == "NVIDIA H100 80GB HBM3"
    hardware["gpu"][0]["vram_free_gb"] = partial_free_bytes(facts["bytes"]) / 1e9  # unrounded: the model is small
    (tmp_path / "hw.json").write_text(json.dumps(hardware))
    done = run_captured([sys.executable, "-m", "orchestrator.cli", "decide", "--hardware", str(tmp_path / "hw.json"),
                         "--model-path", str(tmp_path / "big.gguf"), "--json"], timeout=120, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["model"] == "local-big" and plan["backend"] == "cuda"
    assert 0 < plan["ngl"] < plan["layers_offloadable"]
    assert any(d["knob"] == "model" and d["source"] == "user" for d in plan["deviations"])


@pytest.mark.integration
def test_the_kit_rehearses_every_step_on_the_cpu(tmp_path):
    """benchmarks/gpu/kit.py --rehearsal: a CPU build, a recorded H100 whose free memory fits the big model only
    partly, shapes / 32; every step runs and writes its summary, and no llama-server is left behind."""
    out = tmp_path / "out"
    env = {**os.environ, "WEEYUGA_GPU_OUT": str(out)}
    done = run_captured([sys.executable, str(REPO / "benchmarks" / "gpu" / "kit.py"), "--rehearsal",
                         "--work", str(tmp_path / "work")], timeout=1500, env=env, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summaries = {p.name: json.loads(p.read_text()) for p in out.glob("summary-*.json")}
    assert set(summaries) == {"summary-tune-partial-offload.json", "summary-auto-full-offload.json"}
    for summary in summaries.values():
        assert SUMMARY_FIELDS <= set(summary)
    tune = summaries["summary-tune-partial-offload.json"]
    assert tune["tuned_ngl"] is not None and tune["sweep_launches"] >= 2 and tune["tune_launches"] >= 2
    assert tune["fit_params_ngl"] is not None and tune["vram_estimate_mb"] > 0
    auto = summaries["summary-auto-full-offload.json"]
    assert auto["run_folder"] and (out / "run-folder.tar.gz").exists()
    assert len(list(out.iterdir())) <= 8  # what the device tool brings back
    work = str(tmp_path / "work")
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if any(work in part for part in (p.info["cmdline"] or []))]
    assert left == []
