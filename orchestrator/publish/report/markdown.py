"""run.md: the header, then the sections each phase kind present contributes (SECTIONS), then
methodology, deviations, caveats, reproducibility, plots and privacy. Reads one RunReport."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Callable

from orchestrator.core.reproduce import portable_command
from orchestrator.publish.report.model import RunReport
from orchestrator.publish.report.agent import agent_section
from orchestrator.publish.report.measurement import contention_caveats, methodology_note, prompt_cache_section
from orchestrator.publish.report.capacity import capacity_section
from orchestrator.publish.report.depth import depth_section
from orchestrator.publish.report.endurance import endurance_section, thermal_caveats
from orchestrator.publish.report.plotlayout import Plot
from orchestrator.publish.report.headline import headline_section
from orchestrator.publish.report.quality import quality_section
from orchestrator.publish.report.roofline import roofline_lines

# How the client records a call whose runtime died under it (client.stream_chat).
RUNTIME_GONE = ("disconnected mid-stream", "cannot connect to")


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}"
    return f"{value}{unit}"


def _pct(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def speed_sections(run: RunReport) -> list[str]:
    """Speed per cell and phase, cold and warm per prompt, lanes, and the measurements beside them."""
    metadata = run.metadata
    lines = [
        "## Speed per cell and phase", "",
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
              f"- Same over the runtime's own interval (`tokens_per_sec_after_first`: the tokens after the first): "
              f"median gap {_pct(agree['median_relative_gap_after_first'], 1)}, "
              f"p90 {_pct(agree['p90_relative_gap_after_first'], 1)} over {agree['n_compared_after_first']} calls.",
              f"- Peaks: runtime RSS {_fmt(peaks['peak_rss_mb'], ' MB')}, CPU {_fmt(peaks['peak_cpu_percent'], '%')}, "
              f"GPU memory {_fmt(peaks['peak_gpu_mem_used_mb'], ' MB')}, GPU utilisation {_fmt(peaks['peak_gpu_util_percent'], '%')}."]
    lines += roofline_lines(metadata)
    return lines + prompt_cache_section(metadata)


# Sections per phase kind, in the order run.md shows them; a new kind of work registers its own.
SECTIONS: dict[str, Callable[[RunReport], list[str]]] = {"speed": speed_sections, "quality": quality_section,
                                                         "agent": agent_section, "depth": depth_section,
                                                         "capacity": capacity_section, "endurance": endurance_section}


def caveats(run: RunReport) -> list[str]:
    meta, records, metadata, manifest, hardware = run.meta, run.records, run.metadata, run.manifest, run.hardware
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
    lost = [c for c in run.calls if (c.get("error") or "").startswith(RUNTIME_GONE)]
    if lost:
        where = sorted({f"{c['cell_id']} {c['phase']}" for c in lost})
        notes.append(f"The runtime went away (crashed or was stopped) during {len(lost)} call(s) ({', '.join(where[:3])}): "
                     "they are recorded as errors; a managed runtime is restarted at its next cold call.")
    for row in metadata["cells"]:
        if row["n_errors"]:
            notes.append(f"{row['cell_id']} {row['phase']}: {row['n_errors']} of {row['n_calls']} calls failed.")
        if row["tokens_estimated"]:
            notes.append(f"{row['cell_id']} {row['phase']}: the runtime sent no usage; token counts are estimated.")
    chosen_template = ((manifest.get("knobs") or {}).get("chat_template") or {}).get("value")
    for model in manifest.get("models") or []:
        if model.get("chat_template_in_file") is False and not chosen_template:
            notes.append(f"{model.get('model')}: the model file carries no chat template and none was named "
                         "(--chat-template, or chat_template in profiles/models.yaml): llama-server served it in its "
                         "ChatML fallback, a format the model may not know, so its quality and agent scores may be low.")
    notes += contention_caveats(metadata)
    notes += thermal_caveats(metadata)
    if manifest.get("resumed"):
        notes.append(f"The run was interrupted and resumed {manifest['resumed']} time(s); no call was repeated.")
    if manifest.get("git_dirty"):
        notes.append("weeyuga's checkout had local changes: " + ", ".join(manifest.get("gates", {}).get("dirty_paths", [])[:5]))
    if manifest.get("status") not in ("complete", None):
        notes.append(f"Run status is {manifest.get('status')}: numbers cover only the calls made.")
    return notes or ["None detected."]


def render_markdown(run: RunReport, plots: list[Plot]) -> str:
    meta, manifest = run.meta, run.manifest
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
    ]
    lines += headline_section(run)
    for kind, section in SECTIONS.items():
        if kind in run.kinds:
            lines += section(run)
    lines += ["", "## Methodology", "",
              "Canonical methodology: the frozen prompts, 1 cold + N warm calls per prompt, TTFT = first streamed delta, "
              "tok/s = completion tokens / (total − TTFT). Options in effect: "
              + ", ".join(f"{k} {v}" for k, v in (manifest.get("options_in_effect") or {}).items()) + ".", "",
              methodology_note(manifest), ""]
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
    lines += ["", "## Caveats", ""] + [f"- {note}" for note in caveats(run)]
    lines += ["", "## Reproducibility", "", "```", shlex.join(portable_command(meta["command"])) if meta.get("command")
              else "(command not recorded)", "```", "",
              f"weeyuga {meta.get('weeyuga_version')} (harness {meta.get('harness_version')}), git {meta.get('git_sha') or 'unknown'}"
              f"{' with local changes' if meta.get('git_dirty') else ''}; suites "
              + ", ".join(f"{k}@{v['version']}" for k, v in meta.get("suites", {}).items()) + "."]
    if plots:
        lines += ["", "## Plots"]
        for number, plot in enumerate(plots, 1):
            lines += ["", f"![{Path(plot.file).stem}]({plot.file})", "", f"*Figure {number}.* {plot.caption}"]
    lines += ["", "## Privacy", "", "This folder was checked with `weeyuga privacy-scan` before submission "
              "(keys, tokens, home paths, private addresses, e-mail, host and user names).", ""]
    return "\n".join(lines)


