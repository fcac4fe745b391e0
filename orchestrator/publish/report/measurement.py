"""What the prompt cache bought and which phases other processes contended (issue #16): their
metadata.json fields, run.md lines, and the methodology note on the prompt cache."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from orchestrator.measure.contention import contended_phases, describe
from orchestrator.core.canonical import prompt_cache_policy


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def prompt_cache_rows(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (cell, prompt) of the measuring phase: TTFT and the runtime's own figures with reuse off and on."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    phase = prompt_cache_policy().measured_by
    for call in calls:
        if call["phase"] == phase and call.get("error") is None and call.get("load_state") == "warm":
            groups[(call["cell_id"], call["prompt_id"])].append(call)
    rows = []
    for (cell_id, prompt_id), group in sorted(groups.items()):
        off = [c for c in group if c.get("cache_prompt") is False]
        on = [c for c in group if c.get("cache_prompt") is True]
        ttft_off = _median([c["first_delta_ms"] for c in off if c.get("first_delta_ms") is not None])
        ttft_on = _median([c["first_delta_ms"] for c in on if c.get("first_delta_ms") is not None])
        rows.append({"cell_id": cell_id, "prompt_id": prompt_id, "n_off": len(off), "n_on": len(on),
                     "prompt_tokens": _median([c["prompt_tokens"] for c in group if c.get("prompt_tokens") is not None]),
                     "ttft_ms_off_p50": ttft_off, "ttft_ms_on_p50": ttft_on,
                     "cached_tokens_off_p50": _median([c["prompt_cached_tokens"] for c in off if c.get("prompt_cached_tokens") is not None]),
                     "cached_tokens_on_p50": _median([c["prompt_cached_tokens"] for c in on if c.get("prompt_cached_tokens") is not None]),
                     "prefill_tokens_per_sec_off_p50": _median([c["prefill_tokens_per_sec"] for c in off
                                                                if c.get("prefill_tokens_per_sec") is not None]),
                     "ttft_saved_ms": round(ttft_off - ttft_on, 1) if ttft_off is not None and ttft_on is not None else None})
    return rows


def measurement_metadata(records: list[dict[str, Any]]) -> dict[str, Any]:
    calls = [r for r in records if r.get("type") == "call"]
    return {"prompt_cache": prompt_cache_rows(calls), "contended_phases": contended_phases(calls)}


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f} ms"


def _n(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def prompt_cache_section(metadata: dict[str, Any]) -> list[str]:
    rows = metadata.get("prompt_cache") or []
    if not rows:
        return []
    lines = ["", "## Prompt cache (what reusing a repeated prompt's prefix buys; not a headline figure)", "",
             "| cell | prompt | prompt tokens | TTFT reuse off | TTFT reuse on | cached tokens (on) | saved | prefill tok/s (off) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['cell_id']} | {r['prompt_id']} | {_n(r['prompt_tokens'])} | {_ms(r['ttft_ms_off_p50'])} | "
                     f"{_ms(r['ttft_ms_on_p50'])} | {_n(r['cached_tokens_on_p50'])} | {_ms(r['ttft_saved_ms'])} | "
                     f"{_n(r['prefill_tokens_per_sec_off_p50'])} |")
    return lines


def methodology_note(manifest: dict[str, Any]) -> str:
    """How timed calls treated the prompt cache, per the manifest (older runs did not record it)."""
    recorded = manifest.get("prompt_cache")
    if not recorded:
        return "Prompt cache: not recorded (a run before weeyuga controlled it); warm TTFT may include a cached prefill."
    silent = sorted({cell["why_not_sent"] for cell in recorded["cells"].values() if not cell.get("sent_as") and cell.get("why_not_sent")})
    said = "on" if recorded["timed_calls"] else "off"
    return (f"Prompt cache: timed calls ask the runtime for prefix reuse {said} (`cache_prompt: "
            f"{str(recorded['timed_calls']).lower()}`), so TTFT is a {'possibly cached' if recorded['timed_calls'] else 'full'} "
            f"prefill; the `{recorded['measured_by']}` phase measures what reuse buys, apart. Each call line records what was "
            "sent and the tokens the runtime reused (`prompt_cached_tokens`)."
            + (" Not sent where the runtime has no switch: " + "; ".join(silent) + "." if silent else ""))


def contention_caveats(metadata: dict[str, Any]) -> list[str]:
    flagged = metadata.get("contended_phases") or []
    return [f"Contended (other processes were busy; these figures are not the machine's own): {describe(flagged)}."] if flagged else []
