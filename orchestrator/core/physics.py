"""Physical bounds a measured figure cannot pass: the one check the catalogue and `weeyuga review`
share. Pure and light (no report or measurement code), so a command that only needs the bound
does not import them."""

from __future__ import annotations

from typing import Any


def above_roofline(metadata: dict[str, Any], tolerance: float) -> list[str]:
    """Each cell and phase of metadata.json whose decode rate is above `tolerance` times its memory-
    bandwidth roofline (`memory_bandwidth_utilisation`, publish/report/roofline.py), as "<cell>
    <phase>: 152% of the roofline": physically impossible, so the run's figures are not the machine's."""
    return [f"{entry.get('cell_id')} {entry.get('phase')}: {entry['utilisation'] * 100:.0f}% of the roofline"
            for entry in metadata.get("memory_bandwidth_utilisation") or []
            if isinstance(entry, dict) and isinstance(entry.get("utilisation"), (int, float))
            and not isinstance(entry["utilisation"], bool) and entry["utilisation"] > tolerance]
