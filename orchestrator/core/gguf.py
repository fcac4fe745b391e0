"""A strict reader of a GGUF file's header (metadata and tensor table, never the tensor data),
and the facts the decode roofline needs from it (report/roofline.py).

Written here rather than taken from the `gguf` package: the header is a few fixed layouts, and the
package brings numpy memory maps of the whole file and follows llama.cpp's Python tree release by
release, while weeyuga needs only sizes and a handful of hyper-parameters.

Format (little-endian, versions 2 and 3): magic "GGUF", version u32, tensor count u64, metadata
count u64; metadata as (string key, u32 type, value); tensor infos as (string name, u32 dims,
u64 x dims, u32 ggml type, u64 offset into the aligned data section). A tensor's bytes come from
its type's block size where weeyuga knows the type, else from the gap to the next tensor (the
data section is packed in offset order, padded to the alignment).
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from orchestrator.core.errors import BadInput

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_COUNT = 1 << 24  # tensors, metadata entries or array items: more means a corrupt header
MAX_STRING = 1 << 26

# ggml type id -> (elements per block, bytes per block), from ggml's type_traits.
BLOCKS = {0: (1, 4), 1: (1, 2), 30: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
          10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 20: (32, 18), 23: (256, 136)}
# Metadata value types: id -> struct format (8 string and 9 array are read by hand).
SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
LAYER = re.compile(r"^blk\.(\d+)\.")
# KV cache element sizes by llama.cpp's --cache-type names.
KV_TYPE_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32, "q4_1": 20 / 32,
                 "q5_0": 22 / 32, "q5_1": 24 / 32, "iq4_nl": 18 / 32}


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class GgufHeader:
    version: int
    metadata: dict[str, Any]
    tensors: tuple[Tensor, ...]


class _Reader:
    def __init__(self, stream: BinaryIO, path: Path) -> None:
        self.stream, self.path = stream, path

    def take(self, fmt: str) -> Any:
        size = struct.calcsize("<" + fmt)
        data = self.stream.read(size)
        if len(data) != size:
            raise BadInput(f"{self.path}: GGUF header ends early (at byte {self.stream.tell()})")
        return struct.unpack("<" + fmt, data)[0]

    def count(self, what: str) -> int:
        n = self.take("Q")
        if n > MAX_COUNT:
            raise BadInput(f"{self.path}: GGUF header claims {n} {what}; the file is not a valid GGUF")
        return n

    def string(self) -> str:
        n = self.take("Q")
        if n > MAX_STRING:
            raise BadInput(f"{self.path}: GGUF string of {n} bytes; the file is not a valid GGUF")
        data = self.stream.read(n)
        if len(data) != n:
            raise BadInput(f"{self.path}: GGUF header ends early (in a string)")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput(f"{self.path}: GGUF string at byte {self.stream.tell() - n} is not UTF-8") from None

    def value(self, kind: int) -> Any:
        if kind in SCALARS:
            return self.take(SCALARS[kind])
        if kind == 8:
            return self.string()
        if kind == 9:
            item_kind, n = self.take("I"), self.count("array items")
            return [self.value(item_kind) for _ in range(n)]
        raise BadInput(f"{self.path}: unknown GGUF metadata type {kind} at byte {self.stream.tell()}")


def read_header(path: Path) -> GgufHeader:
    """The metadata and tensor table of a GGUF file; BadInput naming the file for anything malformed."""
    try:
        size = path.stat().st_size
        with path.open("rb") as stream:
            reader = _Reader(stream, path)
            if stream.read(4) != MAGIC:
                raise BadInput(f"{path}: not a GGUF file (no GGUF magic)")
            version = reader.take("I")
            if version not in (2, 3):
                raise BadInput(f"{path}: GGUF version {version}; weeyuga reads versions 2 and 3")
            n_tensors, n_kv = reader.count("tensors"), reader.count("metadata entries")
            metadata = {}
            for _ in range(n_kv):
                key = reader.string()
                metadata[key] = reader.value(reader.take("I"))
            infos = []
            for _ in range(n_tensors):
                name = reader.string()
                dims = reader.take("I")
                if dims > 8:
                    raise BadInput(f"{path}: tensor {name} has {dims} dimensions")
                shape = tuple(reader.take("Q") for _ in range(dims))
                infos.append((name, shape, reader.take("I"), reader.take("Q")))
            header_end = stream.tell()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0:
        raise BadInput(f"{path}: general.alignment {alignment!r} is not a positive integer")
    data_start = -(-header_end // alignment) * alignment
    return GgufHeader(version, metadata, _sized(path, infos, data_start, size))


def _sized(path: Path, infos: list[tuple], data_start: int, file_size: int) -> tuple[Tensor, ...]:
    """Each tensor with its bytes; overlapping tensors or tensors past the end of the file are refused."""
    by_offset = sorted(infos, key=lambda info: info[3])
    ends = [info[3] for info in by_offset[1:]] + [file_size - data_start]
    tensors = []
    for (name, shape, kind, offset), end in zip(by_offset, ends):
        gap = end - offset
        elements = math.prod(shape)
        if kind in BLOCKS:
            per_block, block_bytes = BLOCKS[kind]
            nbytes = -(-elements // per_block) * block_bytes
        else:
            nbytes = gap
        if nbytes > gap or nbytes < 0:
            raise BadInput(f"{path}: tensor {name} ({nbytes} bytes at offset {offset}) overlaps the next one or the end of the file")
        tensors.append(Tensor(name, shape, kind, offset, nbytes))
    return tuple(tensors)


def _per_layer(value: Any, n_layer: int) -> list[int]:
    """A hyper-parameter that is one number for every layer or a list per layer (some hybrids)."""
    return [int(v) for v in value] if isinstance(value, list) else [int(value)] * n_layer


def roofline_facts(header: GgufHeader) -> dict[str, Any]:
    """What one generated token reads: each layer's weight bytes (only the active share of an MoE's
    experts), the output matrix (output.weight, or the tied token embedding), one embedding row, and
    each layer's KV elements per token of context. Recorded in the manifest's model entry, so a report
    made anywhere computes the roofline without the GGUF."""
    meta = header.metadata
    if (meta.get("split.count") or 1) > 1:  # the other shards' tensors are not in this header
        raise BadInput(f"GGUF split into {meta['split.count']} files: read one shard, not the model")
    arch = meta.get("general.architecture")
    n_layer = meta.get(f"{arch}.block_count")
    heads = meta.get(f"{arch}.attention.head_count")
    embedding = meta.get(f"{arch}.embedding_length")
    if not isinstance(n_layer, int) or n_layer <= 0 or heads is None or not isinstance(embedding, int):
        raise BadInput(f"GGUF of architecture {arch!r}: no block_count, head_count or embedding_length")
    head_count = _per_layer(heads, n_layer)
    head_count_kv = _per_layer(meta.get(f"{arch}.attention.head_count_kv", heads), n_layer)
    key_length = meta.get(f"{arch}.attention.key_length")
    value_length = meta.get(f"{arch}.attention.value_length", key_length)
    experts, used = meta.get(f"{arch}.expert_count"), meta.get(f"{arch}.expert_used_count")
    active = used / experts if isinstance(experts, int) and experts and isinstance(used, int) else 1.0
    layer_bytes = [0.0] * n_layer
    named = {t.name: t for t in header.tensors}
    output = named.get("output.weight") or named.get("token_embd.weight")
    other = 0
    for tensor in header.tensors:
        match = LAYER.match(tensor.name)
        if match and int(match.group(1)) < n_layer:
            layer_bytes[int(match.group(1))] += tensor.nbytes * (active if "_exps" in tensor.name else 1.0)
        elif tensor.name != "token_embd.weight" and tensor is not output:
            other += tensor.nbytes  # norms and the like, read every token
    embd = named.get("token_embd.weight")
    kv_elements = []
    for layer in range(n_layer):
        head_dim = key_length or embedding // max(1, head_count[layer])
        kv_elements.append(head_count_kv[layer] * (head_dim + (value_length or head_dim)))
    return {"architecture": arch, "n_layer": n_layer, "layer_bytes": [int(b) for b in layer_bytes],
            "output_bytes": output.nbytes if output else 0, "other_bytes": other,
            "embedding_row_bytes": embd.nbytes // embd.shape[-1] if embd and embd.shape else 0,
            "kv_elements_per_token": kv_elements, "experts_active_share": round(active, 4)}


def model_file_facts(path: Path) -> dict[str, Any]:
    """What a run records of its GGUF file, read once: the roofline facts, and whether the file carries a
    chat template (without one llama-server falls back to ChatML). None for each where weeyuga cannot
    read the file as a GGUF: the report then shows no roofline; the run itself must not fail over it."""
    try:
        header = read_header(path)
        return {"roofline": roofline_facts(header), "chat_template_in_file": "tokenizer.chat_template" in header.metadata}
    except BadInput:
        return {"roofline": None, "chat_template_in_file": None}
