"""Layout shared by run.md's plots, so labels stay readable with one cell or thirty.

Cells get short names (the leading parts every cell shares, usually the device tag, dropped); when
a short name is still long, every cell becomes C1, C2, ... and the caption carries the key.
Plots are horizontal: one band per cell (its name on the left, wrapped, never rotated), one
sub-row per series in the band (a phase, a pack), each series one colour with a legend. The
figure grows in height with the number of bands instead of squeezing labels together.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LABEL_CHARS = 30  # a longer short name turns every cell into a key (C1, C2, ...)
WRAP_CHARS = 22  # band labels wrap at this width
WIDTH_IN = 8.0
DPI = 100


@dataclass(frozen=True)
class Plot:
    file: str  # in the run folder
    caption: str  # what to read from it, printed under it in run.md


@dataclass(frozen=True)
class CellNames:
    label: dict[str, str]  # cell_id -> the name the plot shows
    key: tuple[str, ...]  # "C1 = llamacpp:qwen3-4b", ... when the names were abbreviated

    def caption(self) -> str:
        return f" Cells: {'; '.join(self.key)}." if self.key else ""


def cell_names(cell_ids: list[str]) -> CellNames:
    ids = list(dict.fromkeys(cell_ids))
    if not ids:
        return CellNames({}, ())
    parts = [cell_id.split(":") for cell_id in ids]
    shared = 0
    while all(len(p) > shared + 1 for p in parts) and len({p[shared] for p in parts}) == 1:
        shared += 1
    short = [":".join(p[shared:]) for p in parts]
    if max(len(s) for s in short) <= LABEL_CHARS:
        return CellNames(dict(zip(ids, short)), ())
    keys = [f"C{number}" for number in range(1, len(ids) + 1)]
    return CellNames(dict(zip(ids, keys)), tuple(f"{k} = {s}" for k, s in zip(keys, short)))


def wrap(text: str, width: int = WRAP_CHARS) -> str:
    """Each line of a label wrapped at `width` (textwrap.fill alone would join the lines)."""
    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


def series_colours(names: list[str]) -> dict[str, Any]:
    import matplotlib

    palette = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"].colors
    return {name: palette[index % len(palette)] for index, name in enumerate(names)}


@dataclass(frozen=True)
class Bands:
    rows: list[str]  # band labels, top to bottom
    series: list[str]  # sub-rows of each band, top to bottom

    @property
    def sub_height(self) -> float:
        return 0.8 / max(1, len(self.series))

    @property
    def band_inches(self) -> float:
        return max(0.34, 0.16 * len(self.series))

    @property
    def sub_points(self) -> float:
        """A sub-row's height in points: the size of a marker that spans it."""
        return self.band_inches * self.sub_height * 72

    def y(self, row: int, series: int) -> float:
        return row + (series - (len(self.series) - 1) / 2) * self.sub_height

    def figure(self, title: str, xlabel: str) -> tuple[Any, Any]:
        """A figure whose height follows the bands, with the band labels and separators drawn."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(WIDTH_IN, 1.3 + self.band_inches * len(self.rows)))
        ax.set_yticks(range(len(self.rows)), [wrap(r) for r in self.rows], fontsize=8)
        ax.set_ylim(len(self.rows) - 0.5, -0.5)
        for boundary in range(1, len(self.rows)):
            ax.axhline(boundary - 0.5, color="#dddddd", linewidth=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", color="#eeeeee")
        ax.set_axisbelow(True)
        return fig, ax


def legend_below(fig: Any, ax: Any, handles: list[Any], title: str | None = None) -> None:
    """The legend under the plot, in as many columns as fit, so it never covers data."""
    axes_height_in = ax.get_position().height * fig.get_size_inches()[1]
    ax.legend(handles=handles, title=title, fontsize=7, title_fontsize=7, ncols=min(len(handles), 4), frameon=False,
              loc="upper center", bbox_to_anchor=(0.5, -0.45 / axes_height_in))


def save(fig: Any, path: Path) -> None:
    """PNG without a software or date chunk: the same figures give the same bytes on one build."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
