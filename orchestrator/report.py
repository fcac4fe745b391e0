"""Stage 6a, report: metadata.json (metadata-1.0) and run.md with plots, from a run folder.

Deterministic and idempotent: the same ledger and manifest give byte-identical metadata.json.
Percentiles interpolate linearly between the closest ranks (p50 of [a, b] is their mean).
Aggregates use successful calls only; errors count in n_errors and the success rate.
Cold figures come only from true cold calls (restart, unload): the first call to a runtime that was
already running and could not be made cold (`process_warm`) is reported in its own fields, never as cold.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from . import __version__, datafiles
from .errors import BadInput
from .ledger import LEDGER_NAME, read_ledger
from .record import MANIFEST_NAME, write_json_atomic, write_text_atomic
from .runfolder import check_regular_files

METADATA_SCHEMA = "metadata-1.0"
# How the client records a call whose runtime died under it (client.stream_chat).
RUNTIME_GONE = ("disconnected mid-stream", "cannot connect to")
REQUIRED_FILES = ["run.jsonl", "manifest.json", "hardware.json", "metadata.json", "run.md"]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _ok(calls: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in calls if c.get("error") is None]


def _values(calls: Iterable[dict[str, Any]], name: str) -> list[float]:
    return [c[name] for c in calls if c.get(name) is not None]


def cell_row(cell_id: str, phase: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """One metadata-1.0 row, then the additive warm figures the regression thresholds use."""
    good = _ok(calls)
    durations, rates = _values(good, "total_duration_ms"), _values(good, "tokens_per_sec")
    formats = [c["format_ok"] for c in good if c.get("format_ok") is not None]
    markers = _values(good, "marker_hit")
    warm = [c for c in calls if c.get("load_state") == "warm"]
    warm_good = _ok(warm)
    return {
        "cell_id": cell_id, "phase": phase,
        "n_calls": len(calls), "n_errors": len(calls) - len(good),
        "duration_ms_p50": _r(percentile(durations, 0.5)), "duration_ms_p95": _r(percentile(durations, 0.95)),
        "duration_ms_mean": _r(_mean(durations)),
        "tokens_per_sec_p50": _r(percentile(rates, 0.5), 2), "tokens_per_sec_p95": _r(percentile(rates, 0.95), 2),
        "tokens_per_sec_mean": _r(_mean(rates), 2), "tokens_per_sec_max": _r(max(rates) if rates else None, 2),
        "completion_tokens_total": sum(c.get("completion_tokens") or 0 for c in good),
        "format_ok_rate": _r(sum(formats) / len(formats), 4) if formats else None,
        "marker_hit_rate_mean": _r(_mean(markers), 4),
        # additive
        "first_delta_ms_p50": _r(percentile(_values(good, "first_delta_ms"), 0.5)),
        "warm_first_delta_ms_p50": _r(percentile(_values(warm_good, "first_delta_ms"), 0.5)),
        "warm_total_duration_ms_p50": _r(percentile(_values(warm_good, "total_duration_ms"), 0.5)),
        "warm_tokens_per_sec_mean": _r(_mean(_values(warm_good, "tokens_per_sec")), 2),
        "success_rate": _r(len(good) / len(calls), 4) if calls else None,
        "tokens_estimated": any(c.get("tokens_estimated") for c in good),
    }


def is_process_warm(call: dict[str, Any]) -> bool:
    """Older ledgers recorded these calls as load_state cold; their cold_kind tells them apart."""
    return call.get("load_state") == "process_warm" or call.get("cold_kind") == "process_warm"


def batch_row(cell_id: str, phase: str, prompt_id: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The methodology's per-batch figures for one (cell, prompt): 1 cold (or process_warm) + N warm."""
    cold = [c for c in calls if c.get("load_state") == "cold" and not is_process_warm(c)]
    process_warm = [c for c in calls if is_process_warm(c)]
    warm = [c for c in calls if c.get("load_state") == "warm"]
    warm_good = _ok(warm)
    first_cold = cold[0] if cold else {}
    first_process_warm = process_warm[0] if process_warm else {}
    return {
        "cell_id": cell_id, "phase": phase, "prompt_id": prompt_id,
        "cold_kind": (first_cold or first_process_warm).get("cold_kind"),
        "cold_first_delta_ms": first_cold.get("first_delta_ms"),
        "cold_total_duration_ms": first_cold.get("total_duration_ms"),
        "warm_n": len(warm),
        "warm_first_delta_ms_p50": _r(percentile(_values(warm_good, "first_delta_ms"), 0.5)),
        "warm_first_delta_ms_p95": _r(percentile(_values(warm_good, "first_delta_ms"), 0.95)),
        "warm_total_duration_ms_p50": _r(percentile(_values(warm_good, "total_duration_ms"), 0.5)),
        "warm_total_duration_ms_p95": _r(percentile(_values(warm_good, "total_duration_ms"), 0.95)),
        "warm_tokens_per_sec_mean": _r(_mean(_values(warm_good, "tokens_per_sec")), 2),
        "warm_success_rate": _r(len(warm_good) / len(warm), 4) if warm else None,
        # additive: the first call to a runtime that was already running, which is not a cold start
        "process_warm_first_delta_ms": first_process_warm.get("first_delta_ms"),
        "process_warm_total_duration_ms": first_process_warm.get("total_duration_ms"),
    }


def agreement(calls: list[dict[str, Any]]) -> dict[str, Any]:
    pairs = [(c["tokens_per_sec"], c["server_tokens_per_sec"]) for c in _ok(calls)
             if c.get("tokens_per_sec") and c.get("server_tokens_per_sec")]
    gaps = [abs(a - b) / b for a, b in pairs]
    return {"n_compared": len(gaps), "median_relative_gap": _r(percentile(gaps, 0.5), 4),
            "n_flagged_over_5pct": sum(bool(c.get("rate_disagreement")) for c in calls)}


def resource_peaks(calls: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for name in ("peak_rss_mb", "peak_cpu_percent", "peak_gpu_mem_used_mb", "peak_gpu_util_percent"):
        values = _values(calls, name)
        out[name] = max(values) if values else None
    return out


def bandwidth_utilisation(rows: list[dict[str, Any]], manifest: dict[str, Any],
                          hardware: dict[str, Any] | None) -> list[dict[str, Any]]:
    """decode tok/s x bytes of weights read per token / memory bandwidth (dense models read every weight)."""
    sizes = {m.get("model"): m.get("size_bytes") for m in manifest.get("models") or []}
    knobs = manifest.get("knobs") or {}
    ngl = (knobs.get("ngl") or {}).get("value")
    gpus = (hardware or {}).get("gpu") or []
    gpu_bw = gpus[0].get("bandwidth_gbps_theoretical") if gpus else None
    offloaded = bool(ngl) and gpu_bw
    bandwidth, kind = ((gpu_bw, "theoretical (GPU)") if offloaded else
                       ((hardware or {}).get("host_memory_bandwidth_gbps_measured"), "measured (host copy test)"))
    cell_models = {c["cell_id"]: c["model"] for c in manifest.get("cells") or []}
    out = []
    for row in rows:
        size = sizes.get(cell_models.get(row["cell_id"]))
        rate = row["tokens_per_sec_mean"]
        if not (size and rate and bandwidth):
            continue
        used = rate * size / (bandwidth * 2**30)
        out.append({"cell_id": row["cell_id"], "phase": row["phase"], "utilisation": _r(used, 4),
                    "bandwidth_gbps": bandwidth, "bandwidth_kind": kind, "weights_bytes": size})
    return out


@dataclass
class Report:
    metadata: dict[str, Any]
    markdown: str
    plots: list[str]


def load_run(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any] | None]:
    check_regular_files(run_dir)
    ledger = run_dir / LEDGER_NAME
    if not ledger.exists():
        raise BadInput(f"{run_dir}: no {LEDGER_NAME}; is this a run folder?")
    records = read_ledger(ledger)
    if not records or records[0].get("type") != "meta":
        raise BadInput(f"{ledger}: the first line is not a meta record")
    manifest_path = run_dir / MANIFEST_NAME
    manifest = datafiles.load(manifest_path, "manifest") if manifest_path.exists() else {}
    hw_path = run_dir / "hardware.json"
    hardware = datafiles.load(hw_path, "hardware") if hw_path.exists() else None
    return records, manifest, hardware


def finite(document: Any) -> Any:
    """NaN and infinities (an overflowing mean, say) become null: metadata.json stays valid JSON."""
    if isinstance(document, float):
        return document if math.isfinite(document) else None
    if isinstance(document, dict):
        return {k: finite(v) for k, v in document.items()}
    if isinstance(document, list):
        return [finite(v) for v in document]
    return document


def build_metadata(records: list[dict[str, Any]], manifest: dict[str, Any], hardware: dict[str, Any] | None) -> dict[str, Any]:
    meta = records[0]
    calls = [r for r in records if r.get("type") == "call"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    batches: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for call in calls:
        groups[(call["cell_id"], call["phase"])].append(call)
        if meta.get("suites", {}).get(call["phase"], {}).get("mode") == "cold_warm":
            batches[(call["cell_id"], call["phase"], call["prompt_id"])].append(call)
    phase_order = {p: i for i, p in enumerate(meta.get("options", {}).get("phases", []))}
    key = lambda k: (k[0], phase_order.get(k[1], 99), k[1:])  # noqa: E731
    rows = [cell_row(c, p, groups[(c, p)]) for c, p in sorted(groups, key=key)]
    return {
        "schema_version": METADATA_SCHEMA,
        "run_id": meta["benchmark_run_id"],
        "submitter_handle": meta.get("submitter_handle"),
        "device_tag": meta.get("device_tag"),
        "harness_version": meta.get("harness_version"),
        "status": manifest.get("status"),
        "cells": rows,
        "batches": [batch_row(*k, batches[k]) for k in sorted(batches, key=key)],
        "lanes": [{k: r[k] for k in ("phase", "cells", "lanes", "calls", "errors", "wall_ms", "completion_tokens_total",
                                    "aggregate_tokens_per_sec")} for r in records if r.get("type") == "lanes"],
        "skipped": [{"cell_id": r["cell_id"], "phase": r.get("phase"), "reason": r["reason"]}
                    for r in records if r.get("type") == "skipped"],
        "client_server_agreement": agreement(calls),
        "resource_peaks": resource_peaks(calls),
        "memory_bandwidth_utilisation": bandwidth_utilisation(rows, manifest, hardware),
        "generated_by": f"weeyuga {__version__} report",
    }


# ---------------------------------------------------------------------------------------
# run.md


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}"
    return f"{value}{unit}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def caveats(records: list[dict[str, Any]], metadata: dict[str, Any], manifest: dict[str, Any],
            hardware: dict[str, Any] | None) -> list[str]:
    meta = records[0]
    notes = []
    hw = manifest.get("hardware_summary") or {}
    if hw.get("on_battery") or hw.get("low_power"):
        notes.append(f"Ran on battery{' in low-power mode' if hw.get('low_power') else ''}: figures may be low.")
    if hardware and hardware.get("container_or_vm"):
        notes.append(f"Ran inside {hardware['container_or_vm']}: resource caps may apply.")
    load = meta.get("load_avg_start")
    if load and load[0] > 1.0:
        notes.append(f"Load average at start was {load[0]:.2f}" + (" (above the gate; --force-load was given)."
                                                                   if meta.get("gates", {}).get("force_load") else "."))
    ends = [r for r in records if r.get("type") == "end"]
    if ends and ends[-1].get("load_avg_end") and ends[-1]["load_avg_end"][0] > 1.0:
        notes.append(f"Load average at the end was {ends[-1]['load_avg_end'][0]:.2f}.")
    for skip in metadata["skipped"]:
        notes.append(f"Skipped {skip['cell_id']}{' ' + skip['phase'] if skip['phase'] else ''}: {skip['reason']}.")
    flagged = metadata["client_server_agreement"]["n_flagged_over_5pct"]
    if flagged:
        notes.append(f"{flagged} call(s) where the client's decode rate and the runtime's own differ by more than 5% "
                     "(short answers amplify the gap).")
    lost = [c for c in records if c.get("type") == "call" and (c.get("error") or "").startswith(RUNTIME_GONE)]
    if lost:
        where = sorted({f"{c['cell_id']} {c['phase']}" for c in lost})
        notes.append(f"The runtime went away (crashed or was stopped) during {len(lost)} call(s) ({', '.join(where[:3])}): "
                     "they are recorded as errors; a managed runtime is restarted at its next cold call.")
    for row in metadata["cells"]:
        if row["n_errors"]:
            notes.append(f"{row['cell_id']} {row['phase']}: {row['n_errors']} of {row['n_calls']} calls failed.")
        if row["tokens_estimated"]:
            notes.append(f"{row['cell_id']} {row['phase']}: the runtime sent no usage; token counts are estimated.")
    if manifest.get("resumed"):
        notes.append(f"The run was interrupted and resumed {manifest['resumed']} time(s); no call was repeated.")
    if manifest.get("git_dirty"):
        notes.append("weeyuga's checkout had local changes: " + ", ".join(manifest.get("gates", {}).get("dirty_paths", [])[:5]))
    if manifest.get("status") not in ("complete", None):
        notes.append(f"Run status is {manifest.get('status')}: numbers cover only the calls made.")
    return notes or ["None detected."]


def render_markdown(records: list[dict[str, Any]], metadata: dict[str, Any], manifest: dict[str, Any],
                    hardware: dict[str, Any] | None, plots: list[str]) -> str:
    meta = records[0]
    hw = manifest.get("hardware_summary") or {}
    runtime = manifest.get("runtime") or {}
    models = sorted({c["model"] for c in meta.get("cells", [])})
    date = (meta.get("started_at_utc") or "")[:10]
    skipped = manifest.get("phases_skipped") or []
    gpus = ", ".join(g["name"] + (f" {g['vram_gb']} GB" if g.get("vram_gb") else "") for g in hw.get("gpus", [])) or "no GPU"
    lines = [f"# {meta.get('device_tag')} — {', '.join(models)} — {date}", ""]
    if manifest.get("status") == "failed":
        lines += [f"> **This run failed:** {manifest.get('status_reason') or 'it stopped before its end'}. "
                  "Its figures are not a benchmark result.", ""]
    lines += [
        f"**Run ID:** `{meta['benchmark_run_id']}`  ",
        f"**Submitter:** {meta.get('submitter_handle')}  ",
        f"**Hardware:** {hw.get('cpu')} ({hw.get('cores')} cores), {hw.get('memory_gb_total')} GB RAM, {gpus}, {hw.get('os')}  ",
        f"**Runtime:** {runtime.get('name')} {runtime.get('engine_version') or ''} ({'managed by weeyuga' if runtime.get('managed') else 'bring your own'})  ",
        f"**Models:** {', '.join(models)}  ",
        f"**Phases run:** {', '.join(meta.get('options', {}).get('phases', []))}  ",
        f"**Phases skipped:** {', '.join(sorted({s['phase'] for s in skipped if s.get('phase')})) or 'none'}  ",
        f"**Status:** {manifest.get('status')}", "",
        "## Headline numbers", "",
        "| cell | phase | calls | errors | tok/s mean | tok/s p50 | TTFT p50 | duration p50 | format ok | markers |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in metadata["cells"]:
        lines.append(f"| {row['cell_id']} | {row['phase']} | {row['n_calls']} | {row['n_errors']} | "
                     f"{_fmt(row['tokens_per_sec_mean'])} | {_fmt(row['tokens_per_sec_p50'])} | "
                     f"{_fmt(row['first_delta_ms_p50'], ' ms')} | {_fmt(row['duration_ms_p50'], ' ms')} | "
                     f"{_pct(row['format_ok_rate'])} | {_pct(row['marker_hit_rate_mean'])} |")
    if metadata["batches"]:
        lines += ["", "## Cold and warm (per frozen prompt)", "",
                  "| cell | prompt | cold kind | cold TTFT | cold total | warm TTFT p50 / p95 | warm total p50 / p95 | warm tok/s | success |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for b in metadata["batches"]:
            lines.append(f"| {b['cell_id']} | {b['prompt_id']} | {b['cold_kind'] or '–'} | {_fmt(b['cold_first_delta_ms'], ' ms')} | "
                         f"{_fmt(b['cold_total_duration_ms'], ' ms')} | {_fmt(b['warm_first_delta_ms_p50'])} / "
                         f"{_fmt(b['warm_first_delta_ms_p95'], ' ms')} | {_fmt(b['warm_total_duration_ms_p50'])} / "
                         f"{_fmt(b['warm_total_duration_ms_p95'], ' ms')} | {_fmt(b['warm_tokens_per_sec_mean'])} | "
                         f"{_pct(b['warm_success_rate'])} |")
        process_warm = [b for b in metadata["batches"] if b.get("process_warm_total_duration_ms") is not None]
        if process_warm:
            lines += ["", "First call per prompt on a runtime that was already running (`process_warm`): it was neither "
                      "restarted nor unloaded before the call, so these are not cold starts and stay out of the cold columns.",
                      "", "| cell | prompt | first call TTFT | first call total |", "|---|---|---|---|"]
            lines += [f"| {b['cell_id']} | {b['prompt_id']} | {_fmt(b['process_warm_first_delta_ms'], ' ms')} | "
                      f"{_fmt(b['process_warm_total_duration_ms'], ' ms')} |" for b in process_warm]
    if metadata["lanes"]:
        lines += ["", "## Parallel lanes", "", "| phase | cells | lanes | calls | wall | aggregate tok/s |", "|---|---|---|---|---|---|"]
        for lane in metadata["lanes"]:
            lines.append(f"| {lane['phase']} | {', '.join(lane['cells'])} | {lane['lanes']} | {lane['calls']} | "
                         f"{_fmt(lane['wall_ms'], ' ms')} | {_fmt(lane['aggregate_tokens_per_sec'])} |")
    agree = metadata["client_server_agreement"]
    peaks = metadata["resource_peaks"]
    lines += ["", "## Measurements beside the headline", "",
              f"- Client vs runtime decode rate: median gap {_pct(agree['median_relative_gap']) if agree['median_relative_gap'] is not None else '–'} "
              f"over {agree['n_compared']} calls; {agree['n_flagged_over_5pct']} flagged above 5%.",
              f"- Peaks: runtime RSS {_fmt(peaks['peak_rss_mb'], ' MB')}, CPU {_fmt(peaks['peak_cpu_percent'], '%')}, "
              f"GPU memory {_fmt(peaks['peak_gpu_mem_used_mb'], ' MB')}, GPU utilisation {_fmt(peaks['peak_gpu_util_percent'], '%')}."]
    for bw in metadata["memory_bandwidth_utilisation"]:
        lines.append(f"- Memory-bandwidth utilisation {bw['cell_id']} {bw['phase']}: {_pct(bw['utilisation'])} of "
                     f"{bw['bandwidth_gbps']} GB/s ({bw['bandwidth_kind']}).")
    lines += ["", "## Methodology", "",
              "Canonical methodology: the frozen prompts, 1 cold + N warm calls per prompt, TTFT = first streamed delta, "
              "tok/s = completion tokens / (total − TTFT). Options in effect: "
              + ", ".join(f"{k} {v}" for k, v in (manifest.get("options_in_effect") or {}).items()) + ".", ""]
    deviations = manifest.get("deviations") or []
    if deviations:
        lines.append("Deviations from the canonical settings (recorded by weeyuga, not by hand):")
        lines.append("")
        for d in deviations:
            reason = d.get("why") or (d.get("overrode") if d["source"] == "fallback" else None)
            why = f" — {reason}" if reason else ""
            lines.append(f"- **{d['knob']}** = {d['value']!r} instead of {d['replaced']!r} ({d['source']}){why}")
    else:
        lines.append("No deviations from the canonical settings.")
    unsupported = (runtime.get("unsupported") or {})
    for knob, why in sorted(unsupported.items()):
        lines.append(f"- {knob}: not applicable to this runtime ({why})")
    lines += ["", "## Caveats", ""] + [f"- {note}" for note in caveats(records, metadata, manifest, hardware)]
    lines += ["", "## Reproducibility", "", "```", " ".join(meta.get("command") or ["(command not recorded)"]), "```", "",
              f"weeyuga {meta.get('weeyuga_version')} (harness {meta.get('harness_version')}), git {meta.get('git_sha') or 'unknown'}"
              f"{' with local changes' if meta.get('git_dirty') else ''}; suites "
              + ", ".join(f"{k}@{v['version']}" for k, v in meta.get("suites", {}).items()) + "."]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    lines += ["", "## Privacy", "", "This folder was checked with `weeyuga privacy-scan` before submission "
              "(keys, tokens, home paths, private addresses, e-mail, host and user names).", ""]
    return "\n".join(lines)


def make_plots(run_dir: Path, records: list[dict[str, Any]], metadata: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in metadata["cells"] if r["tokens_per_sec_mean"] is not None]
    if not rows:
        return []
    names = []
    labels = [f"{r['cell_id'].rsplit(':', 1)[-1]}\n{r['phase']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(rows)), 3.5))
    ax.bar(range(len(rows)), [r["tokens_per_sec_mean"] for r in rows], color="#4477aa")
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set_ylabel("tokens/s (mean)")
    ax.set_title("Decode rate per cell and phase")
    fig.tight_layout()
    fig.savefig(run_dir / "tokens_per_sec.png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    names.append("tokens_per_sec.png")
    groups = defaultdict(list)
    for call in records:
        if call.get("type") == "call" and call.get("error") is None and call.get("first_delta_ms") is not None:
            groups[f"{call['cell_id'].rsplit(':', 1)[-1]}\n{call['phase']}"].append(call["first_delta_ms"])
    if groups:
        keys = list(groups)
        fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(keys)), 3.5))
        ax.boxplot([groups[k] for k in keys])
        ax.set_xticks(range(1, len(keys) + 1), keys, fontsize=7)
        ax.set_ylabel("TTFT (ms)")
        ax.set_yscale("log")
        ax.set_title("Time to first token, all calls")
        fig.tight_layout()
        fig.savefig(run_dir / "ttft.png", dpi=100, metadata={"Software": None})
        plt.close(fig)
        names.append("ttft.png")
    return names


def report(run_dir: Path, plots: bool = True) -> Report:
    """Write metadata.json, run.md and the plots into the run folder."""
    records, manifest, hardware = load_run(run_dir)
    metadata = finite(build_metadata(records, manifest, hardware))
    write_json_atomic(run_dir / "metadata.json", metadata)
    names = make_plots(run_dir, records, metadata) if plots else []
    markdown = render_markdown(records, metadata, manifest, hardware, names)
    write_text_atomic(run_dir / "run.md", markdown)
    return Report(metadata, markdown, names)
