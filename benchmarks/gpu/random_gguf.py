"""A Llama-style GGUF with random Q4_0 weights at a real model's shape, written in seconds per GB.

Speed and memory depend on the tensors' shapes and types, not their values, so a random model at the
shape of an 8B or a 32B model is a fair subject for NGL tuning and VRAM estimates where no real model
can be fetched (the GPU machine has no network). The tokenizer (and chat template) is copied from a
small real GGUF (the embedded SmolLM2), so llama-server loads and serves it like any model; its vocabulary
sets the embedding's size. The weights are one block of random bytes reused by every tensor, with each
Q4_0 block's fp16 scale set to 0.1: finite logits, and no activation small enough to be a denormal.

    python3 benchmarks/gpu/random_gguf.py OUT.gguf --shape llama-8b [--scale 64] [--tokenizer SMOLLM2.gguf]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

Q4_0 = gguf.GGMLQuantizationType.Q4_0
BLOCK_VALUES, BLOCK_BYTES = gguf.GGML_QUANT_SIZES[Q4_0]  # 32 weights in 18 bytes
SCALE = np.float16(0.1).tobytes()  # each block's d: large enough that no activation decays into denormals (a CPU slows 30x on them)


@dataclass(frozen=True)
class Shape:
    name: str
    embedding: int
    layers: int
    heads: int
    kv_heads: int
    feed_forward: int
    context: int = 8192

    def scaled(self, scale: int) -> "Shape":
        """A smaller model of the same kind for a rehearsal: widths divided by `scale` (kept multiples of
        the Q4_0 block and of the heads), layers divided by its square root."""
        if scale <= 1:
            return self
        heads = max(2, self.heads // scale)
        kv_heads = max(1, min(heads, self.kv_heads // scale or 1))
        while heads % kv_heads:
            kv_heads -= 1
        head_dim = 64
        return Shape(f"{self.name}/{scale}", heads * head_dim, max(2, self.layers // int(scale ** 0.5)), heads,
                     kv_heads, max(BLOCK_VALUES, (self.feed_forward // scale) // BLOCK_VALUES * BLOCK_VALUES), 4096)


SHAPES = {
    # Llama-3-8B's transformer (its 128k vocabulary becomes the tokenizer source's)
    "llama-8b": Shape("llama-8b", 4096, 32, 32, 8, 14336),
    # a Qwen2.5-32B-sized stack in Llama's layout
    "llama-32b": Shape("llama-32b", 5120, 64, 40, 8, 27648),
}


def copy_tokenizer(writer: gguf.GGUFWriter, source: Path) -> int:
    """The source's tokenizer.* keys, copied as they are; returns its vocabulary size."""
    reader = gguf.GGUFReader(source)
    vocab = 0
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        value = field.contents()
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(key, value, field.types[0], field.types[-1])
        else:
            writer.add_key_value(key, value, field.types[0])
        if key == "tokenizer.ggml.tokens":
            vocab = len(value)
    if not vocab:
        raise ValueError(f"{source}: no tokenizer.ggml.tokens to copy")
    return vocab


def tensors(shape: Shape, vocab: int) -> list[tuple[str, tuple[int, ...], bool]]:
    """(name, numpy-order shape, quantized) of every tensor of a Llama model."""
    head_dim = shape.embedding // shape.heads
    kv = shape.kv_heads * head_dim
    found = [("token_embd.weight", (vocab, shape.embedding), True)]
    for i in range(shape.layers):
        found += [(f"blk.{i}.attn_norm.weight", (shape.embedding,), False),
                  (f"blk.{i}.attn_q.weight", (shape.embedding, shape.embedding), True),
                  (f"blk.{i}.attn_k.weight", (kv, shape.embedding), True),
                  (f"blk.{i}.attn_v.weight", (kv, shape.embedding), True),
                  (f"blk.{i}.attn_output.weight", (shape.embedding, shape.embedding), True),
                  (f"blk.{i}.ffn_norm.weight", (shape.embedding,), False),
                  (f"blk.{i}.ffn_gate.weight", (shape.feed_forward, shape.embedding), True),
                  (f"blk.{i}.ffn_up.weight", (shape.feed_forward, shape.embedding), True),
                  (f"blk.{i}.ffn_down.weight", (shape.embedding, shape.feed_forward), True)]
    found += [("output_norm.weight", (shape.embedding,), False), ("output.weight", (vocab, shape.embedding), True)]
    return found


def quantized_bytes(rows: int, columns: int) -> int:
    return rows * (columns // BLOCK_VALUES) * BLOCK_BYTES


def write_random_gguf(path: Path, shape: Shape, tokenizer: Path, seed: int = 0) -> dict:
    """Write the model; returns its facts (shape, parameters, bytes, seconds taken)."""
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(f"random {shape.name}")
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.embedding)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.feed_forward)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_rope_dimension_count(shape.embedding // shape.heads)
    writer.add_rope_freq_base(500000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    vocab = copy_tokenizer(writer, tokenizer)
    writer.add_vocab_size(vocab)
    layout = tensors(shape, vocab)
    for name, dims, quantized in layout:
        if quantized:
            byte_shape = (dims[0], quantized_bytes(1, dims[1]))  # gguf takes a quantized tensor's shape in bytes
            writer.add_tensor_info(name, byte_shape, np.dtype(np.uint8), quantized_bytes(*dims), raw_dtype=Q4_0)
        else:
            writer.add_tensor_info(name, dims, np.dtype(np.float32), 4 * dims[0])
    largest = max(quantized_bytes(*dims) for _, dims, quantized in layout if quantized)
    pool = np.frombuffer(np.random.default_rng(seed).bytes(largest), dtype=np.uint8).copy()
    pool.reshape(-1, BLOCK_BYTES)[:, :2] = np.frombuffer(SCALE, dtype=np.uint8)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    parameters = 0
    for name, dims, quantized in layout:
        parameters += int(np.prod(dims))
        if quantized:
            writer.write_tensor_data(pool[:quantized_bytes(*dims)].reshape(dims[0], -1))
        else:
            writer.write_tensor_data(np.ones(dims, dtype=np.float32))
    writer.close()
    return {"model_shape": shape.name, "layers": shape.layers, "embedding": shape.embedding, "vocab": vocab,
            "parameters": parameters, "bytes": path.stat().st_size, "write_s": round(time.perf_counter() - started, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama-8b")
    parser.add_argument("--scale", type=int, default=1, help="shrink the shape for a CPU rehearsal")
    parser.add_argument("--tokenizer", type=Path, required=True, help="a GGUF whose tokenizer to copy")
    args = parser.parse_args(argv)
    print(write_random_gguf(args.out, SHAPES[args.shape].scaled(args.scale), args.tokenizer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
