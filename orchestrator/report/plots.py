"""The run's plots, from one RunReport (PNG text chunks carry no software tag: nothing to scan)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from . import RunReport
from .depth import depth_plots


def make_plots(run_dir: Path, run: RunReport) -> list[str]:
    """tokens_per_sec.png (decode rate per cell and phase) and ttft.png (time to first token, all calls)."""
    metadata = run.metadata
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
    for call in run.calls:
        if call.get("error") is None and call.get("first_delta_ms") is not None:
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
    return names + depth_plots(run_dir, run)
