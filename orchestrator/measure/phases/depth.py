"""The depth phase: prefill and decode speed with the context filled to 0, 1k, 2k, 4k ... tokens, up to
the run's num_ctx less room for the answer (llama-bench's `-d`), from the frozen filler text in
suites/depth/depth.json (versioned and hashed like every suite).

One unit per cell, keyed `depth / depth-<tokens> / run_idx = repeat`, every call a timed `call` line
through ctx.chat (the client-server cross-check included); the nominal depth is in the prompt id, the
depth reached in the line's prompt_tokens. Order: depth 0, then one calibration call
(`depth-calibration`, a fixed filler length), then the depths upward. The runtime
does not tell the client how many tokens a text is, so the calibration's prompt tokens, less depth
0's, give the filler's characters per token; a resumed run reads both from its ledger, so it sends
the same prompts.

Prompt cache: every prompt starts with a nonce hashed from the run, cell, depth and repeat, so no
call can reuse another's cached prefix (beyond the chat template's few tokens) whatever the
runtime's cache setting. Every call is warm: a freshly started runtime gets an unrecorded warm-up first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core import datafiles
from orchestrator.core.ledger import read_records
from orchestrator.core.paths import data_dir
from orchestrator.core.records import CallKey
from orchestrator.core.runspec import RunOptions, Target
from orchestrator.measure.cost import call_seconds
from orchestrator.measure.phases.base import Unit
from orchestrator.measure.phases.context import PhaseContext
from orchestrator.core.runfolder import LEDGER_NAME

NAME = "depth"
CALIBRATION = "depth-calibration"


def suite_path() -> Path:
    return data_dir("suites") / "depth" / "depth.json"


def prompt_id(depth: int) -> str:
    return f"depth-{depth}"


def depth_of(prompt_id_text: str) -> int | None:
    """The nominal depth a prompt id names; None for the calibration call."""
    _, _, tail = prompt_id_text.partition("depth-")
    return int(tail) if tail.isdigit() else None


@dataclass(frozen=True)
class DepthSuite:
    version: int
    sha256: str
    depth_start: int
    answer_tokens: int
    repeats: int
    headroom_fraction: float
    headroom_min_tokens: int
    calibration_chars: int
    chars_per_token_guess: float
    prompt: str
    part_heading: str
    filler: tuple[str, ...]

    def filler_text(self, chars: int) -> str:
        """The first `chars` characters (cut back to a word) of the essay, repeated in numbered parts."""
        if chars <= 0:
            return ""
        parts, length, number = [], 0, 1
        while length < chars:
            part = "\n\n".join((self.part_heading.format(number=number), *self.filler))
            parts.append(part)
            length += len(part) + 2
            number += 1
        text = "\n\n".join(parts)[:chars]
        cut = text.rfind(" ")
        return text[:cut] if cut > 0 and len(text) == chars else text

    def depths(self, num_ctx: int, answer_tokens: int) -> list[int]:
        """0, depth_start, twice that ... while they fit, then the deepest that fits (to a multiple of 256)."""
        room = num_ctx - answer_tokens - max(self.headroom_min_tokens, int(num_ctx * self.headroom_fraction))
        out, depth = [0], self.depth_start
        while depth <= room:
            out.append(depth)
            depth *= 2
        top = room // 256 * 256
        if top >= 256 and top > out[-1] * 1.25:
            out.append(top)
        return out


def load_depth_suite(path: Path | None = None) -> DepthSuite:
    path = path or suite_path()
    doc = datafiles.load(path, "depth-suite")
    return DepthSuite(doc["version"], hashlib.sha256(path.read_bytes()).hexdigest(), doc["depth_start"],
                      doc["answer_tokens"], doc["repeats"], doc["headroom_fraction"], doc["headroom_min_tokens"],
                      doc["calibration_chars"], doc["chars_per_token_guess"], doc["prompt"], doc["part_heading"],
                      tuple(doc["filler"]))


class DepthPhase:
    name = NAME
    kind = NAME
    mode = NAME

    def __init__(self, suite: DepthSuite, num_ctx: int) -> None:
        self.suite, self.num_ctx = suite, num_ctx  # the run's context: the estimate's depths
        self.version, self.sha256 = suite.version, suite.sha256

    @classmethod
    def from_options(cls, options: RunOptions | None) -> "DepthPhase":
        options = options or RunOptions(phases=[NAME])
        return cls(load_depth_suite(), options.num_ctx)

    def answer_tokens(self, num_predict: int) -> int:
        return min(self.suite.answer_tokens, num_predict)

    def depths_and_repeats(self, options: RunOptions) -> tuple[list[int], int]:
        """The depths and repeats this run measures (a smoke run: depth 0 and the first depth, once)."""
        depths = self.suite.depths(options.num_ctx, self.answer_tokens(options.num_predict))
        return (depths[:2], 1) if options.smoke else (depths, self.suite.repeats)

    def groups(self, available: list[Target]) -> tuple[list[list[Target]], str | None]:
        return [[target] for target in available], None

    def units(self, cells: list[str], options: RunOptions) -> list[Unit]:
        depths, repeats = self.depths_and_repeats(options)
        keys = [CallKey(cells[0], NAME, prompt_id(0), None, i) for i in range(repeats)]
        if len(depths) > 1:
            keys.append(CallKey(cells[0], NAME, CALIBRATION, None, 0))
        keys += [CallKey(cells[0], NAME, prompt_id(d), None, i) for d in depths[1:] for i in range(repeats)]
        return [Unit(NAME, (cells[0],), tuple(keys))]

    def estimate_seconds(self, decode_tokens_per_sec: float, num_predict: int, runs: int) -> float:
        answer = self.answer_tokens(num_predict)
        depths = self.suite.depths(self.num_ctx, answer)
        per_depth = [call_seconds(d, answer, decode_tokens_per_sec) for d in depths]
        calibration = per_depth[1] if len(per_depth) > 1 else 0.0  # about as long as the first depth above 0
        return self.suite.repeats * sum(per_depth) + calibration

    def run_unit(self, unit: Unit, ctx: PhaseContext) -> None:
        cell_id = unit.cells[0]
        target = ctx.target(cell_id)
        todo = [key for key in unit.keys if not ctx.is_done(key)]
        if not todo:
            return
        if target.loaded_fresh:  # every depth call is warm: the first after a (re)start would not be
            ctx.warm_up(target, "Hello.")
        measured = self.calibration(ctx, cell_id)
        for key in todo:
            chars = (self.suite.calibration_chars if key.prompt_id == CALIBRATION
                     else self.filler_chars(depth_of(key.prompt_id) or 0, measured))
            nonce = hashlib.sha256(f"{ctx.run_id}/{cell_id}/{key.prompt_id}/{key.run_idx}".encode()).hexdigest()[:12]
            text = self.suite.prompt.format(nonce=nonce, filler=self.suite.filler_text(chars))
            max_tokens = self.answer_tokens(ctx.options.num_predict)  # the calibration too: a one-token rate means nothing
            result = ctx.chat(ctx.request(key, [{"role": "user", "content": text}], max_tokens), key_fields=key)
            if key.run_idx == 0 and not result.error and result.prompt_tokens:
                measured[key.prompt_id] = result.prompt_tokens

    def calibration(self, ctx: PhaseContext, cell_id: str) -> dict[str, int]:
        """Prompt tokens of this cell's depth-0 and calibration calls (run_idx 0) already in the ledger."""
        path = ctx.run_dir / LEDGER_NAME
        wanted = (prompt_id(0), CALIBRATION)
        return {r["prompt_id"]: r["prompt_tokens"] for r in read_records(path)
                if r.get("type") == "call" and r["cell_id"] == cell_id and r["phase"] == NAME
                and r["prompt_id"] in wanted and r["run_idx"] == 0 and not r["error"] and r.get("prompt_tokens")}

    def filler_chars(self, depth: int, measured: dict[str, Any]) -> int:
        """Characters of filler for a prompt of `depth` tokens: depth 0's prompt is the overhead, the
        calibration call gives characters per token (the data's guess if it failed)."""
        if depth == 0:
            return 0
        overhead, calibrated = measured.get(prompt_id(0), 0), measured.get(CALIBRATION)
        sent = len(self.suite.filler_text(self.suite.calibration_chars))
        per_token = sent / (calibrated - overhead) if calibrated and calibrated > overhead else self.suite.chars_per_token_guess
        return int(max(0, depth - overhead) * per_token)
