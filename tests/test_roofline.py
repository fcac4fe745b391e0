"""The decode roofline (#16 §4): a strict GGUF header reader on tiny GGUF files written here, the bytes
a token reads split by NGL, the fraction in metadata.json, run.md and the catalogue, and the probe's
host read-bandwidth test (with an injected clock)."""

import itertools
import struct

import pytest

from orchestrator.core import datafiles
from orchestrator.publish.catalogue.rows import run_rows
from orchestrator.core.errors import BadInput
from orchestrator.core.gguf import model_file_facts, read_header, roofline_facts
from orchestrator.plan.probe import probe
from orchestrator.plan.probe.bandwidth import HostBandwidth, buffer_mib, measure_host_bandwidth
from orchestrator.plan.probe.document import GB
from orchestrator.publish.report.roofline import Roofline, bytes_per_token, decode_roofline, roofline_lines
from tests.fakes.hardware import recorded_sources

F32, F16, Q4_0, Q8_0 = 0, 1, 2, 8
ALIGN = 32


def gguf_string(text):
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def gguf_value(value):
    if isinstance(value, str):
        return struct.pack("<I", 8) + gguf_string(value)
    if isinstance(value, float):
        return struct.pack("<If", 6, value)
    if isinstance(value, list):
        return struct.pack("<IIQ", 9, 4, len(value)) + b"".join(struct.pack("<I", v) for v in value)
    return struct.pack("<II", 4, value)


def tensor_bytes(kind, shape):
    n = 1
    for d in shape:
        n *= d
    return {F32: n * 4, F16: n * 2, Q8_0: n // 32 * 34, Q4_0: n // 32 * 18}[kind]


def write_gguf(path, metadata, tensors, version=3, magic=b"GGUF", truncate=None):
    """A GGUF file: header, tensor table, then each tensor's bytes padded to the alignment."""
    head = magic + struct.pack("<IQQ", version, len(tensors), len(metadata))
    head += b"".join(gguf_string(k) + gguf_value(v) for k, v in metadata.items())
    offset, table, data = 0, b"", b""
    for name, kind, shape in tensors:
        table += gguf_string(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
        table += struct.pack("<IQ", kind, offset)
        size = tensor_bytes(kind, shape)
        padded = -(-size // ALIGN) * ALIGN
        data += b"\x01" * size + b"\x00" * (padded - size)
        offset += padded
    header = head + table
    blob = header + b"\x00" * (-len(header) % ALIGN) + data
    path.write_bytes(blob[:truncate] if truncate else blob)
    return path


LLAMA_META = {"general.architecture": "llama", "llama.block_count": 2, "llama.attention.head_count": 4,
              "llama.attention.head_count_kv": 2, "llama.embedding_length": 64, "general.name": "tiny"}


def layer(i, kinds=(Q8_0, F16)):
    return [(f"blk.{i}.attn_q.weight", kinds[0], (64, 64)), (f"blk.{i}.ffn_down.weight", kinds[1], (128, 64)),
            (f"blk.{i}.attn_norm.weight", F32, (64,))]


def tiny_llama(tmp_path, tied=False, name="tiny.gguf"):
    tensors = [("token_embd.weight", F32, (64, 100)), *layer(0), *layer(1), ("output_norm.weight", F32, (64,))]
    if not tied:
        tensors.append(("output.weight", Q4_0, (64, 100)))
    return write_gguf(tmp_path / name, LLAMA_META, tensors)


LAYER_BYTES = 64 * 64 // 32 * 34 + 128 * 64 * 2 + 64 * 4


def test_header_reader_sizes_every_tensor_from_its_type_and_shape(tmp_path):
    header = read_header(tiny_llama(tmp_path))
    assert header.version == 3 and header.metadata["llama.block_count"] == 2
    sizes = {t.name: t.nbytes for t in header.tensors}
    assert sizes["token_embd.weight"] == 64 * 100 * 4 and sizes["blk.0.attn_q.weight"] == 64 * 64 // 32 * 34
    assert sizes["blk.1.ffn_down.weight"] == 128 * 64 * 2 and sizes["output.weight"] == 6400 // 32 * 18


def test_the_model_file_facts_say_whether_it_carries_a_chat_template(tmp_path):
    bare = model_file_facts(tiny_llama(tmp_path))
    assert bare["chat_template_in_file"] is False and bare["roofline"]["n_layer"] == 2
    tensors = [("token_embd.weight", F32, (64, 100)), *layer(0), *layer(1)]
    templated = write_gguf(tmp_path / "t.gguf", {**LLAMA_META, "tokenizer.chat_template": "{{ messages }}"}, tensors)
    assert model_file_facts(templated)["chat_template_in_file"] is True


def test_roofline_facts_per_layer_bytes_output_embedding_row_and_kv_elements(tmp_path):
    facts = roofline_facts(read_header(tiny_llama(tmp_path)))
    assert facts["n_layer"] == 2 and facts["layer_bytes"] == [LAYER_BYTES, LAYER_BYTES]
    assert facts["output_bytes"] == 6400 // 32 * 18 and facts["other_bytes"] == 64 * 4  # output_norm
    assert facts["embedding_row_bytes"] == 64 * 4  # one row of token_embd per token, not the matrix
    assert facts["kv_elements_per_token"] == [2 * (16 + 16)] * 2  # 2 KV heads x (K + V) x head dim 64 / 4
    tied = roofline_facts(read_header(tiny_llama(tmp_path, tied=True, name="tied.gguf")))
    assert tied["output_bytes"] == 64 * 100 * 4  # no output.weight: the token embedding is the output matrix


def test_only_the_active_share_of_moe_experts_counts(tmp_path):
    meta = {**LLAMA_META, "llama.block_count": 1, "llama.expert_count": 8, "llama.expert_used_count": 2}
    path = write_gguf(tmp_path / "moe.gguf", meta, [("blk.0.ffn_up_exps.weight", F16, (64, 64, 8)),
                                                   ("blk.0.attn_q.weight", F16, (64, 64))])
    facts = roofline_facts(read_header(path))
    assert facts["layer_bytes"] == [64 * 64 * 8 * 2 // 4 + 64 * 64 * 2] and facts["experts_active_share"] == 0.25


def test_a_split_model_has_no_facts_rather_than_one_shards(tmp_path):
    path = write_gguf(tmp_path / "m-00001-of-00002.gguf", {**LLAMA_META, "split.count": 2}, layer(0))
    with pytest.raises(BadInput, match="split"):
        roofline_facts(read_header(path))
    assert model_file_facts(path) == {"roofline": None, "chat_template_in_file": None}


@pytest.mark.parametrize("damage, message", [
    ({"magic": b"GGML"}, "not a GGUF file"),
    ({"version": 1}, "GGUF version 1"),
    ({"truncate": 40}, "ends early"),
])
def test_a_damaged_header_is_one_bad_input_line_naming_the_file(tmp_path, damage, message):
    path = write_gguf(tmp_path / "bad.gguf", LLAMA_META, layer(0), **damage)
    with pytest.raises(BadInput, match=message) as caught:
        read_header(path)
    assert str(path) in str(caught.value)
    assert model_file_facts(path) == {"roofline": None, "chat_template_in_file": None}  # the run never fails over it: no roofline, that is all


def test_a_tensor_running_past_the_next_one_is_refused(tmp_path):
    path = write_gguf(tmp_path / "overlap.gguf", LLAMA_META, layer(0))
    blob = bytearray(path.read_bytes())
    ffn_down = blob.index(b"blk.0.ffn_down.weight")  # its offset is the last 8 bytes of its table entry
    entry_end = ffn_down + len("blk.0.ffn_down.weight") + 4 + 16 + 4 + 8
    blob[entry_end - 8:entry_end] = struct.pack("<Q", 64)  # starts inside attn_q's bytes
    path.write_bytes(bytes(blob))
    with pytest.raises(BadInput, match="overlaps"):
        read_header(path)


FACTS = {"n_layer": 2, "layer_bytes": [1000, 1000], "output_bytes": 500, "other_bytes": 10, "embedding_row_bytes": 5,
         "kv_elements_per_token": [4, 4]}


@pytest.mark.parametrize("ngl, host, gpu", [
    (0, 10 + 5 + 2000 + 500 + 2 * 4 * 2 * 100, 0),
    (1, 10 + 5 + 2000 + 2 * 4 * 2 * 100, 500),  # llama.cpp offloads the output layer first
    (2, 10 + 5 + 1000 + 4 * 2 * 100, 1000 + 500 + 4 * 2 * 100),
    (99, 15, 2000 + 500 + 2 * 4 * 2 * 100),
    (-1, 15, 2000 + 500 + 2 * 4 * 2 * 100),
])
def test_bytes_per_token_split_by_ngl_with_each_layers_kv_where_the_layer_is(ngl, host, gpu):
    assert bytes_per_token(FACTS, ngl, context_tokens=100, kv_bytes=2.0) == (host, gpu)


def manifest(ngl=0, backend="cpu", facts=FACTS):
    return {"knobs": {"ngl": {"value": ngl}}, "runtime": {"backend": backend},
            "models": [{"model": "m", "size_bytes": 9999, "roofline": facts}], "cells": [{"cell_id": "c", "model": "m"}]}


def call(rate, prompt_tokens=100, completion_tokens=20, phase="5q", error=None):
    return {"cell_id": "c", "phase": phase, "tokens_per_sec": rate, "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens, "error": error}


def test_cpu_fraction_is_decode_rate_over_host_bandwidth_divided_by_bytes_at_the_calls_context():
    hardware = {"host_memory_bandwidth_gbps_measured": 1.0, "gpu": []}
    result = Roofline(manifest(), hardware).of_call(call(1e5))
    read = 15 + 2000 + 500 + 2 * 4 * 2 * 110  # context = prompt + half the answer
    assert result["bytes_per_token"] == read and result["gpu_bytes"] == 0
    assert result["roofline_tokens_per_sec"] == pytest.approx(GB / read)
    assert result["fraction"] == pytest.approx(1e5 * read / GB)


def test_offloaded_part_uses_the_gpus_theoretical_bandwidth_and_an_integrated_gpu_the_hosts():
    gpu = {"host_memory_bandwidth_gbps_measured": 1.0, "gpu": [{"kind": "discrete", "bandwidth_gbps_theoretical": 100.0}]}
    split = Roofline(manifest(ngl=2, backend="cuda"), gpu)
    result = split.of_call(call(10.0))
    host, on_gpu = result["host_bytes"], result["gpu_bytes"]
    assert result["roofline_tokens_per_sec"] == pytest.approx(1 / (host / GB + on_gpu / (100 * GB)))
    assert "GPU theoretical" in split.kind and "host measured" in split.kind
    shared = Roofline(manifest(ngl=99, backend="metal"), {"host_memory_bandwidth_gbps_measured": 50.0,
                                                           "gpu": [{"kind": "integrated", "bandwidth_gbps_theoretical": None}]})
    assert shared.gpu_gbps == 50.0 and "integrated" in shared.kind
    unknown = Roofline(manifest(ngl=99, backend="cuda"), {"host_memory_bandwidth_gbps_measured": 1.0,
                                                          "gpu": [{"kind": "discrete", "bandwidth_gbps_theoretical": None}]})
    assert unknown.of_call(call(10.0)) is None  # a discrete GPU of unknown bandwidth: no roofline, not a wrong one


def test_metadata_rows_run_md_and_the_catalogue_column_carry_the_fraction():
    hardware = {"host_memory_bandwidth_gbps_measured": 1.0, "gpu": []}
    calls = [call(1e5), call(2e5), call(None, error="HTTP 500")]
    rows = [{"cell_id": "c", "phase": "5q"}, {"cell_id": "c", "phase": "hello"}]
    entries = decode_roofline(rows, calls, manifest(), hardware)
    assert len(entries) == 1 and entries[0]["n_calls"] == 2  # errors and phases without calls are left out
    read = 15 + 2000 + 500 + 2 * 4 * 2 * 110
    assert entries[0]["utilisation"] == pytest.approx(1.5e5 * read / GB, abs=1e-4)
    assert entries[0]["bandwidth_kind"] == "measured (host read test)" and entries[0]["host_bandwidth_gbps"] == 1.0
    lines = "\n".join(roofline_lines({"memory_bandwidth_utilisation": entries}))
    assert "| c | 5q | " in lines and "host 1.0 GB/s" in lines
    assert "not computed" in roofline_lines({"memory_bandwidth_utilisation": []})[0]
    assert decode_roofline(rows, calls, manifest(facts=None), hardware) == []  # a bring-your-own run: no GGUF facts
    metadata = {"cells": [{"cell_id": "c", "phase": "5q"}], "memory_bandwidth_utilisation": entries}
    (row,) = run_rows("h/d/run-1", {"run_id": "r", "cells": [{"cell_id": "c", "model": "m"}]}, metadata, [], "complete", None)
    assert row["decode_roofline_fraction"] == entries[0]["utilisation"]


def test_host_bandwidth_is_a_multithreaded_read_with_its_spread(monkeypatch):
    ticks = itertools.count()
    clock = lambda: next(ticks) * 0.01  # noqa: E731  every timed pass takes 10 ms
    measured = measure_host_bandwidth(3, available_bytes=16 * 128 * 2**20, repeats=4, clock=clock)
    assert measured.threads == 3 and measured.buffer_mib == 128 and measured.repeats == 4
    assert measured.gbps == measured.gbps_min == measured.gbps_max == round(128 * 2**20 / 0.01 / GB, 1)
    assert buffer_mib(None) == 512 and buffer_mib(2 * 2**30) == 128 and buffer_mib(64 * 2**30) == 512


def test_probe_records_the_figure_and_how_it_was_measured_in_hardware_json():
    test = HostBandwidth(20.5, 18.0, 21.0, 5, 8, 512)
    document = probe(recorded_sources(bandwidth=test), device_tag="box").to_dict()
    datafiles.validate(document, "hardware", "probe")
    assert document["host_memory_bandwidth_gbps_measured"] == 20.5
    assert document["host_memory_bandwidth_test"] == {"gbps": 20.5, "gbps_min": 18.0, "gbps_max": 21.0, "repeats": 5,
                                                      "threads": 8, "buffer_mib": 512, "method": test.method}
    assert probe(recorded_sources(), device_tag="box").to_dict()["host_memory_bandwidth_test"] is None
