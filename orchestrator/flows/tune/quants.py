"""`weeyuga tune --quants`: the quant chosen by measured loss. Each quant is made with llama-quantize
(built from the same tree as llama-server) from the highest-precision source there is; for a catalogue
model that is its shipped GGUF dequantized to F16 with the `gguf` package, so the loss is measured
against the weights the user actually has. KLD against the source (llama-perplexity) and the speed of
each are measured; the fastest within the loss budget is chosen, or the most accurate that reaches a
speed target. Everything made is cached (~/.cache/weeyuga/quants/) and reused."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.core.paths import cache_dir
from orchestrator.core.procs import run_captured
from orchestrator.flows.tune.axes import Kld, score
from orchestrator.flows.tune.search import Measurement

QUANT_NAME = re.compile(r"^[A-Z0-9][A-Z0-9_]*$")  # llama-quantize's type names (Q4_K_M, IQ4_NL, F16 ...)
QUANTIZE_TIMEOUT_S = 3600
F16_FILE_TYPE = 1  # llama_ftype MOSTLY_F16: general.file_type of the dequantized source


def parse_quants(text: str) -> list[str]:
    names = [q.strip().upper() for q in text.split(",") if q.strip()]
    bad = [q for q in names if not QUANT_NAME.match(q)]
    if not names or bad:
        raise BadInput(f"--quants {text!r}: a comma-separated list of llama-quantize types, e.g. Q8_0,Q6_K,Q4_K_M")
    return list(dict.fromkeys(names))


def quant_dir(source: Path) -> Path:
    """Where the quants of one source are cached: named by the source file and a digest of its identity."""
    stat = source.stat()
    key = hashlib.sha256(repr((str(source.resolve()), stat.st_size, int(stat.st_mtime))).encode()).hexdigest()[:12]
    return cache_dir() / "quants" / f"{source.stem}-{key}"


def dequantize_to_f16(shipped: Path, target: Path) -> Path:
    """The shipped GGUF with every tensor dequantized (2-D and larger to F16, vectors to F32, as llama.cpp
    keeps norms), its metadata copied and general.file_type set to F16. Made once; cached."""
    if target.exists():
        return target
    import gguf  # deferred: numpy-heavy, and only `tune --quants` writes GGUF files
    import numpy as np

    reader = gguf.GGUFReader(str(shipped))
    arch_field = reader.fields["general.architecture"]
    staging = target.with_name(target.name + ".tmp")
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(staging), arch=str(arch_field.contents()), use_temp_file=True)
    for name, item in reader.fields.items():
        if name == "general.architecture" or name.startswith("GGUF."):
            continue  # the writer writes the architecture itself; GGUF.* are the reader's header fields
        value = F16_FILE_TYPE if name == "general.file_type" else item.contents()
        kind = item.types[0]
        writer.add_key_value(name, value, kind, sub_type=item.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)
    for tensor in reader.tensors:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        writer.add_tensor(tensor.name, values.astype(np.float16 if values.ndim > 1 else np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    staging.replace(target)
    return target


def quantize(tool: str, source: Path, quant: str, directory: Path, threads: int,
             run: Callable[..., subprocess.CompletedProcess] = run_captured) -> Path:
    """`llama-quantize source out QUANT`, cached by name. --allow-requantize lets a shipped quant be the
    source where no F16 can be had."""
    out = directory / f"{source.stem.removesuffix('-F16')}-{quant}.gguf"
    if out.exists():
        return out
    staging = out.with_name(out.name + ".tmp")
    try:
        done = run([tool, "--allow-requantize", str(source), str(staging), quant, str(threads)], timeout=QUANTIZE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WeeyugaError(f"llama-quantize {quant} did not finish ({exc})") from None
    if done.returncode != 0:
        staging.unlink(missing_ok=True)
        tail = " | ".join(f"{done.stdout}\n{done.stderr}".strip().splitlines()[-2:])
        raise WeeyugaError(f"llama-quantize {quant} exited {done.returncode}: {tail}")
    staging.replace(out)
    return out


@dataclass
class QuantReport:
    model: str
    source: str  # how the reference was had
    objective: str
    max_kld: float
    speed_target: float | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    chosen: str | None = None
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quant_row(quant: str, path: Path | None, kld: Kld | None, m: Measurement | None, objective: str,
              failure: str | None = None) -> dict[str, Any]:
    return {"quant": quant, "path": str(path) if path else None,
            "size_mb": round(path.stat().st_size / 2**20, 1) if path and path.exists() else None,
            "kld": kld and round(kld.mean, 6), "kld_plus_minus": kld and kld.plus_minus,
            "decode": m and m.tokens_per_sec and round(m.tokens_per_sec, 2),
            "prefill": m and m.prefill_tokens_per_sec and round(m.prefill_tokens_per_sec, 1),
            "score": m and score(m, objective) and round(score(m, objective), 2),
            "failure": failure or (m.failure if m and not m.ok else None)}


def choose_quant(rows: list[dict[str, Any]], max_kld: float, speed_target: float | None) -> tuple[str | None, str]:
    """The fastest quant within the loss budget; with a speed target, the most accurate that reaches it."""
    measured = [r for r in rows if r["score"] and r["kld"] is not None]
    if speed_target is not None:
        fast = [r for r in measured if r["score"] >= speed_target]
        if not fast:
            return None, f"no quant reached {speed_target:g} tok/s"
        pick = min(fast, key=lambda r: r["kld"])
        return pick["quant"], f"the most accurate (KLD {pick['kld']:.4g}) of those reaching {speed_target:g} tok/s"
    within = [r for r in measured if r["kld"] <= max_kld]
    if not within:
        return None, f"no quant kept its KLD within {max_kld:g}"
    pick = max(within, key=lambda r: r["score"])
    return pick["quant"], f"the fastest ({pick['score']:g}) with KLD {pick['kld']:.4g} within {max_kld:g}"


def tune_quants(model: str, quants: list[str], make: Callable[[str], Path], kld: Callable[[Path], Kld],
                probe: Callable[[Path], Measurement], source: str, objective: str, max_kld: float,
                speed_target: float | None = None, progress: Callable[[str, float | None], None] = lambda m, f: None
                ) -> QuantReport:
    """Make, measure (KLD, then speed) and choose; a quant that cannot be made or run is a row with its failure."""
    report = QuantReport(model, source, objective, max_kld, speed_target)
    for quant in quants:
        progress(f"quant {quant}: making, then KLD and speed", None)
        try:
            path = make(quant)
            loss = kld(path)
        except WeeyugaError as exc:
            report.rows.append(quant_row(quant, None, None, None, objective, str(exc)))
            continue
        report.rows.append(quant_row(quant, path, loss, probe(path), objective))
    report.chosen, report.why = choose_quant(report.rows, max_kld, speed_target)
    return report


def render_quants(report: QuantReport) -> str:
    lines = [f"# tune --quants {report.model} ({report.objective})", "",
             f"Reference: {report.source}. Loss budget: KLD {report.max_kld:g}"
             + (f"; speed target {report.speed_target:g} tok/s" if report.speed_target is not None else "") + ".", "",
             "| quant | size MB | KLD | decode tok/s | prefill tok/s | note |", "|---|---|---|---|---|---|"]
    for r in report.rows:
        kld = "–" if r["kld"] is None else f"{r['kld']:.4g}" + (f" ± {r['kld_plus_minus']:.2g}" if r["kld_plus_minus"] else "")
        note = r["failure"] or ("chosen" if r["quant"] == report.chosen else
                                "over the budget" if r["kld"] is not None and r["kld"] > report.max_kld else "")
        lines.append(f"| {r['quant']} | {r['size_mb'] or '–'} | {kld} | {r['decode'] or '–'} | {r['prefill'] or '–'} | {note} |")
    chosen = next((r for r in report.rows if r["quant"] == report.chosen), None)
    lines += ["", f"Chosen: {report.chosen or 'none'}: {report.why}."]
    if chosen:
        lines.append(f"Use it: weeyuga auto --model {report.model} --model-path {chosen['path']}")
    return "\n".join(lines) + "\n"


def write_quant_report(report: QuantReport, out_dir: Path, device_tag: str) -> Path:
    stem = out_dir / f"tune-quants-{device_tag}-{report.model}"
    Path(f"{stem}.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    Path(f"{stem}.md").write_text(render_quants(report), encoding="utf-8")
    return stem
