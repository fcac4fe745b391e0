"""The depth part of a run's report (phases/depth.py): metadata.json's `depth` (one row per cell and
depth), run.md's table and depth.png (tok/s against the context depth).

Prefill tok/s = the prompt tokens the runtime processed (less any it reports reusing from its cache)
/ its own prompt time, or / the client's time to first token where the runtime gives none. Decode
tok/s is the call line's `tokens_per_sec` (the methodology's client figure) beside the runtime's
own. The roofline fraction is report/roofline.py's at the call's context.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from orchestrator.measure.phases.depth import NAME, depth_of
from orchestrator.publish.report.plotlayout import Plot, save
from orchestrator.publish.report.roofline import Roofline

from orchestrator.publish.report.model import RunReport


def prefill_tokens_per_sec(call: dict[str, Any]) -> float | None:
    processed = (call.get("prompt_tokens") or 0) - (call.get("prompt_cached_tokens") or 0)
    ms = call.get("server_prompt_ms") or call.get("first_delta_ms")
    return processed / (ms / 1000) if processed > 0 and ms else None


def _median(values: list[float | None], digits: int = 1) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), digits) if present else None


def depth_metadata(records: list[dict[str, Any]], manifest: dict[str, Any], hardware: dict[str, Any] | None) -> dict[str, Any]:
    """`{"depth": [...]}` when the run measured any depth, else nothing (metadata stays as it was)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for call in records:
        if call.get("type") == "call" and call["phase"] == NAME and (depth := depth_of(call["prompt_id"])) is not None:
            groups[(call["cell_id"], depth)].append(call)
    if not groups:
        return {}
    roofline = Roofline(manifest, hardware)
    rows = []
    for (cell_id, depth), calls in sorted(groups.items()):
        good = [c for c in calls if not c.get("error")]
        fractions = [r["fraction"] if (r := roofline.of_call(c)) else None for c in good]
        rows.append({"cell_id": cell_id, "depth": depth, "n_calls": len(calls), "n_errors": len(calls) - len(good),
                     "prompt_tokens_p50": _median([c.get("prompt_tokens") for c in good], 0),
                     "prefill_tokens_per_sec_p50": _median([prefill_tokens_per_sec(c) for c in good]),
                     "decode_tokens_per_sec_p50": _median([c.get("tokens_per_sec") for c in good], 2),
                     "server_decode_tokens_per_sec_p50": _median([c.get("server_tokens_per_sec") for c in good], 2),
                     "first_delta_ms_p50": _median([c.get("first_delta_ms") for c in good]),
                     "roofline_fraction_p50": _median(fractions, 4)})
    return {"depth": rows}


def _fmt(value: float | None, unit: str = "") -> str:
    return "–" if value is None else f"{value:,.1f}{unit}"


def depth_section(run: "RunReport") -> list[str]:
    rows = run.metadata.get("depth") or []
    lines = ["", "## Speed at context depth", "",
             "Each call's prompt is the frozen filler text (suites/depth/depth.json) to the nominal depth, led by a nonce so "
             "no call reuses another's cached prefix; medians over the repeats. Prefill = prompt tokens / the runtime's "
             "prompt time; decode = the client's rate (the runtime's own beside it); roofline = decode / the "
             "memory-bandwidth limit at that context.", "",
             "| cell | depth | prompt tokens | calls | prefill tok/s | decode tok/s | runtime decode tok/s | TTFT | roofline |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        errors = f" ({r['n_errors']} failed)" if r["n_errors"] else ""
        roofline = "–" if r["roofline_fraction_p50"] is None else f"{r['roofline_fraction_p50'] * 100:.0f}%"
        tokens = "–" if r["prompt_tokens_p50"] is None else f"{r['prompt_tokens_p50']:,.0f}"
        lines.append(f"| {r['cell_id']} | {r['depth']:,} | {tokens} | {r['n_calls']}{errors} | "
                     f"{_fmt(r['prefill_tokens_per_sec_p50'])} | {_fmt(r['decode_tokens_per_sec_p50'])} | "
                     f"{_fmt(r['server_decode_tokens_per_sec_p50'])} | {_fmt(r['first_delta_ms_p50'], ' ms')} | {roofline} |")
    return lines


def depth_plot(run_dir: Path, run: "RunReport") -> Plot | None:
    """depth.png: prefill and decode tok/s against the prompt tokens reached, one line per cell."""
    rows = [r for r in run.metadata.get("depth") or [] if r["prompt_tokens_p50"] is not None]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (prefill, decode) = plt.subplots(1, 2, figsize=(8, 3.5))
    for cell_id in dict.fromkeys(r["cell_id"] for r in rows):
        mine = [r for r in rows if r["cell_id"] == cell_id]
        label = cell_id.rsplit(":", 1)[-1]
        for ax, name in ((prefill, "prefill_tokens_per_sec_p50"), (decode, "decode_tokens_per_sec_p50")):
            points = [(r["prompt_tokens_p50"], r[name]) for r in mine if r[name] is not None]
            ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=label)
    for ax, title in ((prefill, "Prefill"), (decode, "Decode")):
        ax.set_xlabel("context depth (prompt tokens)")
        ax.set_ylabel("tokens/s (median)")
        ax.set_title(f"{title} rate at depth")
        ax.set_ylim(bottom=0)
    decode.legend(fontsize=7)
    save(fig, run_dir / "depth.png")
    return Plot("depth.png",
                "Median prefill (left) and decode (right) rate against how full the context was, one line per cell. "
                "Both fall as the context fills: every generated token reads the whole KV cache, so a falling decode "
                "line is the cost of a long conversation or document; the table above has the figures.")
