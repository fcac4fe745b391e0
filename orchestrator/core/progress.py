"""Progress for long steps: a rich bar on a terminal, throttled plain lines elsewhere (CI logs)."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator

Progress = Callable[[str, float | None], None]  # (message, fraction done or None)


def quiet(message: str, fraction: float | None = None) -> None:
    """A Progress that reports nothing."""


@contextlib.contextmanager
def progress_reporter(stream=None) -> Iterator[Progress]:
    stream = stream or sys.stderr
    if stream.isatty():
        from rich.progress import BarColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn

        with RichProgress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                          TimeElapsedColumn(), transient=True) as bar:
            task = bar.add_task("starting", total=1.0)

            def update(message: str, fraction: float | None) -> None:
                bar.update(task, description=message, completed=fraction if fraction is not None else 0)

            yield update
        return
    last = {"message": None, "at": 0.0, "step": -1}

    def plain(message: str, fraction: float | None) -> None:
        step = int(fraction * 10) if fraction is not None else -1
        now = time.monotonic()
        if message != last["message"] or (step != last["step"] and now - last["at"] > 2):
            suffix = f" {fraction * 100:.0f}%" if fraction is not None else ""
            print(f"  {message}{suffix}", file=stream, flush=True)
            last.update(message=message, at=now, step=step)

    yield plain
