"""How close decode came to the machine's limit: tok/s as a fraction of the memory-bandwidth roofline.

Generating a token reads every weight it uses once, plus the KV cache of the context so far, so
tok/s <= 1 / (bytes read from host memory / host bandwidth + bytes read from GPU memory / GPU
bandwidth). The bytes come from the GGUF's tensor table (gguf.py, recorded in the manifest's model
entry as `roofline`): the repeating layers llama.cpp offloads by NGL (the last NGL of n_layer + 1,
the output layer counting as the last) are read from the GPU, the rest from the host, and each
layer's KV cache lives where its layer does. The context a call decodes at is its prompt plus half
its answer (the mean over the decode).

Bandwidths: the probe's measured host read bandwidth (probe/bandwidth.py) for the host part; the
GPU's theoretical bandwidth (bus width x memory clock) for the offloaded part, or the host figure
on an integrated GPU that shares host memory and reports none.
"""

from __future__ import annotations

import statistics
from typing import Any

from orchestrator.core.gguf import KV_TYPE_BYTES
from orchestrator.plan.probe.document import GB

HOST_KIND = "measured (host read test)"
GPU_KIND = "theoretical (GPU)"
SHARED_KIND = "measured (host read test; integrated GPU sharing host memory)"


def _knob(manifest: dict[str, Any], name: str) -> Any:
    return ((manifest.get("knobs") or {}).get(name) or {}).get("value")


def bandwidths(manifest: dict[str, Any], hardware: dict[str, Any] | None) -> tuple[float | None, float | None, bool, str]:
    """(host GB/s, GPU GB/s, whether layers are offloaded, what the figures are). An offload to a GPU
    of unknown bandwidth leaves the GPU figure None: no roofline rather than a wrong one."""
    hardware = hardware or {}
    host = hardware.get("host_memory_bandwidth_gbps_measured")
    gpus = hardware.get("gpu") or []
    backend = (manifest.get("runtime") or {}).get("backend") or _knob(manifest, "backend")
    if not _knob(manifest, "ngl") or not gpus or backend in (None, "cpu"):
        return host, None, False, HOST_KIND
    theoretical = gpus[0].get("bandwidth_gbps_theoretical")
    if theoretical:
        return host, theoretical, True, f"host {HOST_KIND}, GPU {GPU_KIND}"
    if gpus[0].get("kind") == "integrated":
        return host, host, True, SHARED_KIND
    return host, None, True, f"host {HOST_KIND}, GPU unknown"


def bytes_per_token(facts: dict[str, Any], ngl: int | None, context_tokens: float, kv_bytes: float) -> tuple[float, float]:
    """(bytes read from the host, bytes read from the GPU) to generate one token at this context."""
    n_layer = facts["n_layer"]
    offloaded = n_layer + 1 if ngl is None or ngl < 0 else min(int(ngl), n_layer + 1)
    first_gpu = n_layer + 1 - offloaded  # layer indices >= this (n_layer = the output layer) are on the GPU
    host = facts["other_bytes"] + facts["embedding_row_bytes"]
    gpu = 0.0
    for layer, (weights, kv_elements) in enumerate(zip(facts["layer_bytes"], facts["kv_elements_per_token"])):
        read = weights + kv_elements * kv_bytes * context_tokens
        if layer >= first_gpu:
            gpu += read
        else:
            host += read
    if n_layer >= first_gpu:
        gpu += facts["output_bytes"]
    else:
        host += facts["output_bytes"]
    return host, gpu


def roofline_tokens_per_sec(host_bytes: float, gpu_bytes: float, host_gbps: float | None,
                            gpu_gbps: float | None) -> float | None:
    seconds = 0.0
    for read, gbps in ((host_bytes, host_gbps), (gpu_bytes, gpu_gbps)):
        if read:
            if not gbps:
                return None
            seconds += read / (gbps * GB)
    return 1 / seconds if seconds else None


def call_context(call: dict[str, Any]) -> float:
    return (call.get("prompt_tokens") or 0) + (call.get("completion_tokens") or 0) / 2


class Roofline:
    """The roofline of one run's cells, from its manifest and hardware.json."""

    def __init__(self, manifest: dict[str, Any], hardware: dict[str, Any] | None) -> None:
        self.host_gbps, self.gpu_gbps, offloaded, self.kind = bandwidths(manifest, hardware)
        self.ngl = _knob(manifest, "ngl") if offloaded else 0
        self.kv_bytes = KV_TYPE_BYTES.get(str(_knob(manifest, "cache_type_k") or "f16"), 2.0)
        facts = {m.get("model"): m.get("roofline") for m in manifest.get("models") or []}
        self.facts = {c["cell_id"]: facts.get(c.get("model")) for c in manifest.get("cells") or []}

    def of_call(self, call: dict[str, Any]) -> dict[str, float] | None:
        """The call's bytes per token, roofline tok/s and fraction of it reached, or None when unknown."""
        facts, rate = self.facts.get(call["cell_id"]), call.get("tokens_per_sec")
        if not facts or not rate or call.get("error"):
            return None
        host, gpu = bytes_per_token(facts, self.ngl, call_context(call), self.kv_bytes)
        limit = roofline_tokens_per_sec(host, gpu, self.host_gbps, self.gpu_gbps)
        if not limit:
            return None
        return {"bytes_per_token": host + gpu, "host_bytes": host, "gpu_bytes": gpu,
                "roofline_tokens_per_sec": limit, "fraction": rate / limit, "context_tokens": call_context(call)}


def decode_roofline(rows: list[dict[str, Any]], calls: list[dict[str, Any]], manifest: dict[str, Any],
                    hardware: dict[str, Any] | None) -> list[dict[str, Any]]:
    """metadata.json `memory_bandwidth_utilisation`: per cell and phase, the median over its successful
    calls of decode tok/s / the roofline at the call's context (`utilisation`), with what it rests on."""
    roofline = Roofline(manifest, hardware)
    out = []
    for row in rows:
        per_call = [r for c in calls if c["cell_id"] == row["cell_id"] and c["phase"] == row["phase"]
                    and (r := roofline.of_call(c))]
        if not per_call:
            continue
        median = lambda name: statistics.median(r[name] for r in per_call)  # noqa: E731
        out.append({"cell_id": row["cell_id"], "phase": row["phase"], "utilisation": round(median("fraction"), 4),
                    "bandwidth_gbps": roofline.gpu_gbps if roofline.ngl and not median("host_bytes") else roofline.host_gbps,
                    "bandwidth_kind": roofline.kind,
                    # additive: the roofline itself
                    "roofline_tokens_per_sec": round(median("roofline_tokens_per_sec"), 2),
                    "bytes_per_token": int(median("bytes_per_token")), "host_bytes_per_token": int(median("host_bytes")),
                    "gpu_bytes_per_token": int(median("gpu_bytes")), "context_tokens_p50": round(median("context_tokens"), 1),
                    "host_bandwidth_gbps": roofline.host_gbps, "gpu_bandwidth_gbps": roofline.gpu_gbps, "n_calls": len(per_call)})
    return out


def roofline_lines(metadata: dict[str, Any]) -> list[str]:
    """run.md: each cell's decode rate as a fraction of its bandwidth roofline, and what that rests on."""
    entries = metadata["memory_bandwidth_utilisation"]
    if not entries:
        return ["- Decode roofline: not computed (the model's tensor sizes or a bandwidth figure are missing)."]
    lines = ["", "### Decode vs the memory-bandwidth roofline", "",
             "Roofline tok/s = 1 / (bytes read per token from each memory / its bandwidth): the model's weights from its "
             "GGUF tensor table, split by NGL, plus the KV cache at the call's context. Fraction = measured decode tok/s "
             "/ roofline (median over the calls).", "",
             "| cell | phase | fraction of roofline | roofline tok/s | MB read per token (host + GPU) | context (p50) | bandwidth |",
             "|---|---|---|---|---|---|---|"]
    for e in entries:
        gpu = f" + {e['gpu_bytes_per_token'] / 1e6:,.1f}" if e.get("gpu_bytes_per_token") else ""
        figures = f"host {e['host_bandwidth_gbps']} GB/s" + (f", GPU {e['gpu_bandwidth_gbps']} GB/s" if e.get("gpu_bandwidth_gbps") else "")
        lines.append(f"| {e['cell_id']} | {e['phase']} | {e['utilisation'] * 100:.0f}% | {e['roofline_tokens_per_sec']:,.1f} | "
                     f"{e['host_bytes_per_token'] / 1e6:,.1f}{gpu} | {e['context_tokens_p50']:,.0f} | {figures} ({e['bandwidth_kind']}) |")
    return lines
