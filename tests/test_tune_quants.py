"""`tune --quants` (#28 §2) with injected make/KLD/probe, the KLD tool's argv and output, the frozen
text's hash check, the F16 source made with the gguf package, and the CLI's bad input."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.flows.tune import Candidate, Kld, Measurement, parse_quants, render_quants
from orchestrator.flows.tune.kld import PerplexityKld, load_frozen_text, parse_mean_kld
from orchestrator.flows.tune.quants import choose_quant, dequantize_to_f16, quant_row, quantize, tune_quants
from orchestrator.runtime.launch import load_runtime

LLAMA = load_runtime("llama.cpp")
# (KLD, decode tok/s): smaller quants are faster and lossier.
QUANTS = {"Q8_0": (0.001, 40.0), "Q6_K": (0.004, 44.0), "Q4_K_M": (0.03, 52.0), "Q2_K": (0.6, 60.0)}


def run_fake_quants(tmp_path, max_kld=0.05, speed_target=None, broken=()):
    def make(quant):
        if quant in broken:
            raise WeeyugaError(f"llama-quantize {quant} exited 1: unknown type")
        path = tmp_path / f"m-{quant}.gguf"
        path.write_bytes(b"\0" * 1024 * (10 + len(quant)))
        return path

    kld = lambda path: Kld(QUANTS[path.stem.split("-")[1]][0], 0.0001)  # noqa: E731
    probe = lambda path: Measurement(Candidate(threads=2), True, tokens_per_sec=QUANTS[path.stem.split("-")[1]][1],  # noqa: E731
                                     prefill_tokens_per_sec=300.0)
    return tune_quants("smollm2-135m-instruct", [*QUANTS, *broken], make, kld, probe, "m.gguf as F16", "decode",
                       max_kld, speed_target)


def test_the_fastest_quant_within_the_loss_budget_is_chosen(tmp_path):
    report = run_fake_quants(tmp_path)
    assert report.chosen == "Q4_K_M" and "within 0.05" in report.why  # Q2_K is faster but loses 0.6 nats
    table = render_quants(report)
    assert "| quant | size MB | KLD | decode tok/s |" in table and "| Q2_K |" in table and "over the budget" in table
    assert "Chosen: Q4_K_M" in table and "--model-path" in table
    assert run_fake_quants(tmp_path, max_kld=0.002).chosen == "Q8_0"
    assert run_fake_quants(tmp_path, max_kld=1e-5).chosen is None


def test_a_speed_target_picks_the_most_accurate_quant_reaching_it(tmp_path):
    assert run_fake_quants(tmp_path, speed_target=43.0).chosen == "Q6_K"
    assert run_fake_quants(tmp_path, speed_target=100.0).chosen is None


def test_a_quant_that_cannot_be_made_is_a_row_with_its_failure(tmp_path):
    report = run_fake_quants(tmp_path, broken=("Q9_X",))
    row = next(r for r in report.rows if r["quant"] == "Q9_X")
    assert "unknown type" in row["failure"] and report.chosen == "Q4_K_M"


def test_choose_quant_ignores_rows_without_measurements():
    rows = [{"quant": "Q4_0", "score": None, "kld": 0.01}, {"quant": "Q8_0", "score": 10.0, "kld": None}]
    assert choose_quant(rows, 0.1, None)[0] is None


@pytest.mark.parametrize("text,expected", [("Q8_0,q4_k_m", ["Q8_0", "Q4_K_M"]), ("Q6_K, Q6_K", ["Q6_K"])])
def test_quant_lists(text, expected):
    assert parse_quants(text) == expected


@pytest.mark.parametrize("text", ["", ",", "Q4 K", "Q4;rm -rf", "../Q4"])
def test_bad_quant_lists_are_one_line(text):
    with pytest.raises(BadInput, match="--quants"):
        parse_quants(text)


KLD_OUTPUT = """kl_divergence: computing over 4 chunks, n_ctx=512
Mean    KLD:   0.003821 ±   0.000097
Maximum KLD:   0.120000
"""


class FakePerplexity:
    """Records argv; writes the base file when asked; prints llama-perplexity's summary line."""

    def __init__(self, output=KLD_OUTPUT, code=0):
        self.argvs, self.output, self.code = [], output, code

    def __call__(self, argv, timeout=None):
        self.argvs.append(argv)
        if "--kl-divergence-base" in argv and "--kl-divergence" not in argv:
            Path(argv[argv.index("--kl-divergence-base") + 1]).write_bytes(b"logits")
        return subprocess.CompletedProcess(argv, self.code, stdout="", stderr=self.output)


def test_kld_runs_the_reference_once_then_each_value_with_the_runtimes_flags(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    fake = FakePerplexity()
    meter = PerplexityKld("llama-perplexity", LLAMA, load_frozen_text(), 2, ("--no-repack",), chunks=2,
                          work_dir=tmp_path / "kld", run=fake)
    assert meter.meter(str(model))({"cache_type_k": "q8_0", "cache_type_v": "q8_0"}) == Kld(0.003821, 0.000097)
    assert meter.meter(str(model))({"cache_type_k": "q4_0", "cache_type_v": "q4_0"}).mean == 0.003821
    base, first, second = fake.argvs
    assert base[base.index("-ctk") + 1] == "f16" and "--kl-divergence" not in base
    assert first[first.index("-ctk") + 1] == "q8_0" and first[first.index("-ctv") + 1] == "q8_0"
    assert {"-fa", "on", "--no-repack", "--chunks", "2"} <= set(first) and "--kl-divergence" in first
    assert first[first.index("-f") + 1].endswith("suites/kld/text-1.txt")


def test_kld_failures_are_one_line(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    broken = PerplexityKld("llama-perplexity", LLAMA, load_frozen_text(), 2, work_dir=tmp_path,
                           run=FakePerplexity("error: failed to load model", code=1))
    with pytest.raises(WeeyugaError, match="exited 1: error: failed to load model"):
        broken.meter(str(model))({"cache_type_k": "q8_0"})
    silent = PerplexityKld("llama-perplexity", LLAMA, load_frozen_text(), 2, work_dir=tmp_path / "s",
                           run=FakePerplexity("no summary"))
    with pytest.raises(WeeyugaError, match="no 'Mean KLD'"):
        silent.meter(str(model))({"cache_type_k": "q8_0"})
    assert parse_mean_kld("Mean    KLD:   1.5e-03 ±   2.0e-05") == Kld(0.0015, 0.00002)


def test_the_frozen_text_is_checked_against_its_hash(tmp_path):
    frozen = load_frozen_text()
    assert frozen.version == 1 and len(frozen.text.split()) > 1800
    messages = frozen.probe_messages("repetitive", 2048)
    assert messages[0]["content"].endswith(frozen.probe["repetitive"])
    assert len(frozen.probe_messages("free", 512)[0]["content"]) < len(messages[0]["content"])
    for name in ("kld.json", "text-1.txt"):
        (tmp_path / name).write_bytes((Path(frozen.path).parent / name).read_bytes())
    (tmp_path / "text-1.txt").write_text(frozen.text.replace("Harrow", "Barrow"), encoding="utf-8")
    with pytest.raises(WeeyugaError, match="never changes"):
        load_frozen_text(tmp_path)


def test_the_f16_source_is_the_shipped_weights_dequantized(tmp_path):
    import gguf

    shipped = tmp_path / "tiny-Q8_0.gguf"
    weights = np.linspace(-1, 1, 64 * 32, dtype=np.float32).reshape(64, 32)
    writer = gguf.GGUFWriter(str(shipped), "llama")
    writer.add_block_count(1)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_tensor("blk.0.attn_q.weight", gguf.quants.quantize(weights, gguf.GGMLQuantizationType.Q8_0),
                      raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(32, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    source = dequantize_to_f16(shipped, tmp_path / "q" / "tiny-F16.gguf")
    reader = gguf.GGUFReader(str(source))
    tensors = {t.name: t for t in reader.tensors}
    assert tensors["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert np.allclose(np.asarray(tensors["blk.0.attn_q.weight"].data, dtype=np.float32).reshape(64, 32), weights, atol=0.01)
    assert reader.fields["general.file_type"].contents() == 1 and reader.fields["llama.block_count"].contents() == 1
    assert dequantize_to_f16(shipped, source) == source  # cached


def test_quantize_is_cached_and_its_failure_one_line(tmp_path):
    calls = []

    def fake(argv, timeout=None):
        calls.append(argv)
        Path(argv[3]).write_bytes(b"GGUF")
        return subprocess.CompletedProcess(argv, 0, "", "")

    source = tmp_path / "m-F16.gguf"
    source.write_bytes(b"GGUF")
    out = quantize("llama-quantize", source, "Q4_K_M", tmp_path, 2, run=fake)
    assert out.name == "m-Q4_K_M.gguf" and quantize("llama-quantize", source, "Q4_K_M", tmp_path, 2, run=fake) == out
    assert len(calls) == 1 and calls[0][1] == "--allow-requantize" and calls[0][-2:] == ["Q4_K_M", "2"]
    failing = lambda argv, timeout=None: subprocess.CompletedProcess(argv, 1, "", "invalid quant type Q9")  # noqa: E731
    with pytest.raises(WeeyugaError, match="exited 1: invalid quant type Q9"):
        quantize("llama-quantize", source, "Q9", tmp_path, 2, run=failing)


def test_the_quant_report_is_json(tmp_path):
    from orchestrator.flows.tune import write_quant_report

    stem = write_quant_report(run_fake_quants(tmp_path), tmp_path, "dev")
    assert json.loads(Path(f"{stem}.json").read_text())["chosen"] == "Q4_K_M"


@pytest.mark.parametrize("argv,message", [
    (["--speed-target", "3"], "--speed-target chooses among --quants"),
    (["--quants", "Q4 K"], "--quants 'Q4 K'"),
    (["--axes", "flash_attn,warp_drive"], "--axes: warp_drive is not an axis of llama.cpp"),
    (["--runtime", "ollama", "--axes", "kv_cache_type"], "is not an axis of ollama (runtimes/ollama.yaml tune_axes: none)"),
    (["--max-kld", "0"], "--max-kld"),
    (["--objective", "latency"], "--objective"),
])
def test_tunes_new_flags_refuse_bad_input_in_one_line(argv, message):
    import os
    import sys

    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", "tune", "--model", "smollm2-135m-instruct", *argv],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent,
                          env={**os.environ, "WEEYUGA_CACHE": "/nonexistent-weeyuga-cache"})
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_quant_whose_answers_end_at_once_is_a_failed_row_not_a_crash():
    """Q2_K of a 135M model can answer with one token: no decode rate, so the candidate fails with a reason."""
    from orchestrator.flows.tune.probers import _measure
    from orchestrator.measure.client import CallResult

    one_token = {"free": lambda: CallResult(first_delta_ms=30.0, completion_tokens=1),
                 "repetitive": lambda: CallResult(first_delta_ms=30.0, completion_tokens=1)}
    m = _measure(Candidate(), one_token, lambda: None, None, load_runtime("llama.cpp"), lambda: "log line")
    assert not m.ok and m.failure == "no_rate" and "log line" in m.log_tail
    row = quant_row("Q2_K", None, None, m, "decode")
    assert row["failure"] == "no_rate" and row["score"] is None
