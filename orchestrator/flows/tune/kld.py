"""The frozen text of `weeyuga tune` (suites/kld/) and what is measured with it: the KL divergence of
next-token distributions against a reference (llama-perplexity's --kl-divergence-base/--kl-divergence,
built from the same tree as llama-server), and the context of the speed probes' depth."""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from orchestrator.core import datafiles
from orchestrator.core.errors import WeeyugaError
from orchestrator.core.paths import cache_dir, data_dir
from orchestrator.core.procs import run_captured
from orchestrator.flows.tune.axes import Kld
from orchestrator.plan.runtimes import RuntimeDefinition

KLD_TIMEOUT_S = 3600  # one llama-perplexity pass over the text; minutes for a small model on 2 busy cores
MEAN_KLD = re.compile(r"Mean\s+KLD:\s+([-+0-9.eE]+)\s+±\s+([-+0-9.eE]+)")


@dataclass(frozen=True)
class FrozenText:
    version: int
    path: Path
    sha256: str
    text: str
    probe: dict[str, Any]

    def probe_messages(self, kind: str, num_ctx: int) -> list[dict[str, str]]:
        """The probe's question (free or repetitive) after as much of the text as half the context holds."""
        tokens = min(self.probe["depth_tokens"], num_ctx // 2)
        context = self.text[: int(tokens * self.probe["chars_per_token_guess"])]
        return [{"role": "user", "content": f"{context}\n\n{self.probe[kind]}"}]


def load_frozen_text(directory: Path | None = None) -> FrozenText:
    directory = directory or data_dir("suites") / "kld"
    doc = datafiles.load(directory / "kld.json", "kld-suite")
    path = directory / doc["text"]
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != doc["text_sha256"]:
        raise WeeyugaError(f"{path}: sha256 {digest[:12]}… is not the frozen {doc['text_sha256'][:12]}…; a frozen text never "
                           "changes (a new one is a new file and a new version of kld.json)")
    return FrozenText(doc["version"], path, digest, data.decode("utf-8"), doc["probe"])


def parse_mean_kld(output: str) -> Kld | None:
    match = MEAN_KLD.search(output)
    return Kld(float(match.group(1)), float(match.group(2))) if match else None


def knob_flags(defn: RuntimeDefinition, knobs: dict[str, Any]) -> list[str]:
    """llama-perplexity shares llama-server's common flags: a knob is spelled as the runtime's YAML says."""
    return [word for knob, value in sorted(knobs.items()) if value is not None
            for word in (defn.knobs[knob]["flag"], str(value))]


Runner = Callable[..., subprocess.CompletedProcess]


class PerplexityKld:
    """KL divergence against the reference, with llama-perplexity: the reference's logits are saved once
    per model, text, context and reference knobs (cached), then each value or model is compared with them."""

    def __init__(self, tool: str, defn: RuntimeDefinition, frozen: FrozenText, threads: int,
                 variant_args: tuple[str, ...] = (), chunks: int | None = None, work_dir: Path | None = None,
                 run: Runner = run_captured) -> None:
        self.tool, self.defn, self.frozen, self.threads = tool, defn, frozen, threads
        self.quality = defn.tune_quality
        self.variant_args, self.chunks = list(variant_args), chunks
        self.work_dir = work_dir or cache_dir() / "kld"
        self.run = run

    def _argv(self, model_path: str, knobs: dict[str, Any]) -> list[str]:
        argv = [self.tool, "-m", model_path, "-f", str(self.frozen.path), "-c", str(self.quality["ctx"]),
                "-t", str(self.threads), *self.quality["args"], *knob_flags(self.defn, knobs), *self.variant_args]
        return argv + (["--chunks", str(self.chunks)] if self.chunks else [])

    def _call(self, argv: list[str], what: str) -> str:
        try:
            done = self.run(argv, timeout=KLD_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise WeeyugaError(f"{what}: {Path(argv[0]).name} did not finish ({exc})") from None
        output = f"{done.stdout}\n{done.stderr}"
        if done.returncode != 0:
            tail = " | ".join(output.strip().splitlines()[-3:])
            raise WeeyugaError(f"{what}: {Path(argv[0]).name} exited {done.returncode}: {tail}")
        return output

    def base(self, model_path: str) -> Path:
        """The reference's logits for this model (llama-perplexity --kl-divergence-base), made once."""
        stat = Path(model_path).stat()
        key = hashlib.sha256(repr((str(Path(model_path).resolve()), stat.st_size, int(stat.st_mtime), self.frozen.sha256,
                                   self.quality["ctx"], self.chunks, sorted(self.quality["reference"].items()))
                                  ).encode()).hexdigest()[:16]
        path = self.work_dir / f"{Path(model_path).stem}-{key}.kld"
        if not path.exists():
            self.work_dir.mkdir(parents=True, exist_ok=True)
            staging = path.with_name(path.name + ".tmp")
            self._call(self._argv(model_path, self.quality["reference"]) + ["--kl-divergence-base", str(staging)],
                       f"the reference logits of {Path(model_path).name}")
            staging.replace(path)
        return path

    def compare(self, reference_model: str, model_path: str, knobs: dict[str, Any]) -> Kld:
        """KLD of `model_path` launched with `knobs` against the reference model with the reference knobs."""
        base = self.base(reference_model)
        output = self._call(self._argv(model_path, {**self.quality["reference"], **knobs})
                            + ["--kl-divergence-base", str(base), "--kl-divergence"], f"the KLD of {knobs or model_path}")
        kld = parse_mean_kld(output)
        if kld is None:
            raise WeeyugaError(f"{Path(self.tool).name} printed no 'Mean KLD' line for {knobs or model_path}")
        return kld

    def meter(self, model_path: str) -> Callable[[dict[str, Any]], Kld]:
        """The search's KldMeter for lossy launch knobs of one model."""
        return lambda knobs: self.compare(model_path, model_path, knobs)
