"""Frozen prompts and versioned suites (suites/*.json), and their machine checks.

Every item carries a format rule and the markers a good answer contains, so `format_ok`
and `marker_hit` are computed from the text, never judged by eye. A suite's content hash
goes into every ledger so a changed suite cannot pass for an old one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput
from orchestrator.core.methodology import methodology
from orchestrator.core.paths import data_dir

# The canonical order of phases (profiles/methodology.yaml); `all` means these.
PHASES = list(methodology().phases)
EXTRA_PHASES = list(methodology().extra_phases)  # e.g. quality: only when named


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    max_tokens: int


@dataclass(frozen=True)
class Item:
    id: str
    prompt: str
    max_tokens: int | None
    format: dict[str, Any]
    markers: list[str]

    def capped_tokens(self, num_predict: int) -> int:
        """The item's own limit, never above the run's num_predict."""
        return min(self.max_tokens or num_predict, num_predict)


@dataclass(frozen=True)
class Suite:
    name: str
    version: int
    mode: str  # cold_warm | once | parallel | append | document
    items: list[Item]
    sha256: str  # of the file bytes, recorded in the ledger
    lanes: int = 1
    lane_models: str = "same"
    system: str | None = None
    stop_at_context_fraction: float | None = None

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def load_prompts(directory: Path | None = None) -> dict[str, Prompt]:
    doc = datafiles.load((directory or data_dir("suites")) / "prompts.json", "prompts")
    return {p["id"]: Prompt(p["id"], p["prompt"], p["max_tokens"]) for p in doc["prompts"]}


def load_suite(name: str, directory: Path | None = None) -> Suite:
    directory = directory or data_dir("suites")
    path = directory / f"{name}.json"
    if not path.exists():
        raise BadInput(f"unknown phase {name!r}: no {path.name} in {directory} (phases: {', '.join(PHASES)})")
    doc = datafiles.load(path, "suite")
    if doc["suite"] != name:
        raise BadInput(f"{path}: field suite: {doc['suite']!r} does not match the file name")
    frozen = load_prompts(directory)
    items = []
    for index, entry in enumerate(doc["items"]):
        if "frozen" in entry:
            if entry["frozen"] not in frozen:
                raise BadInput(f"{path}: field items[{index}].frozen: no prompt {entry['frozen']!r} in prompts.json")
            prompt = frozen[entry["frozen"]]
            text, max_tokens = prompt.text, entry.get("max_tokens", prompt.max_tokens)
        else:
            text, max_tokens = entry["prompt"], entry.get("max_tokens")
        if "document" in doc:
            text = doc["document_prompt"].format(document=doc["document"], prompt=text)
        if entry["checks"]["format"]["kind"] == "regex":
            try:
                re.compile(entry["checks"]["format"]["pattern"])
            except re.error as exc:
                raise BadInput(f"{path}: field items[{index}].checks.format.pattern: {exc}") from None
        items.append(Item(entry["id"], text, max_tokens, entry["checks"]["format"], entry["checks"]["markers"]))
    return Suite(name=name, version=doc["version"], mode=doc["mode"], items=items,
                 sha256=hashlib.sha256(path.read_bytes()).hexdigest(), lanes=doc.get("lanes", 1),
                 lane_models=doc.get("lane_models", "same"), system=doc.get("system"),
                 stop_at_context_fraction=doc.get("stop_at_context_fraction"))


def parse_phases(text: str) -> list[str]:
    """`hello,5q` or `all`, in canonical order (extra phases after), each one known."""
    known = PHASES + EXTRA_PHASES
    names = PHASES if text.strip() == "all" else [p.strip() for p in text.split(",") if p.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise BadInput(f"unknown phase(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)} or all")
    return [p for p in known if p in names]


# ---------------------------------------------------------------------------------------
# Machine checks

_FENCE = re.compile(r"```([A-Za-z0-9_+-]*)\n(.*?)```", re.S)
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


def _unfenced(text: str) -> str:
    """The body of a leading code fence (models often fence JSON), else the text itself."""
    match = _FENCE.search(text)
    return match.group(2).strip() if match and text.startswith("```") else text


def format_ok(rule: dict[str, Any], text: str) -> bool:
    stripped = text.strip()
    kind = rule["kind"]
    if kind == "any":
        return bool(stripped)
    if kind == "regex":
        return re.fullmatch(rule["pattern"], stripped) is not None
    if kind == "max_words":
        return 0 < len(stripped.split()) <= rule["n"]
    if kind == "words":
        return rule["min"] <= len(stripped.split()) <= rule["max"]
    if kind == "sentences":
        return rule["min"] <= len(_SENTENCE_END.findall(stripped)) <= rule["max"]
    if kind == "json":
        try:
            value = json.loads(_unfenced(stripped))
        except ValueError:
            return False
        return isinstance(value, dict) and all(key in value for key in rule.get("keys", []))
    if kind == "code_block":
        blocks = _FENCE.findall(stripped)
        wanted = rule.get("language")
        return any(body.strip() and (not wanted or lang in (wanted, "")) for lang, body in blocks)
    raise BadInput(f"unknown format kind {kind!r}")


def marker_hit(markers: list[str], text: str) -> float | None:
    """Share of markers present (case-insensitive); None when the item has none."""
    if not markers:
        return None
    lowered = text.lower()
    return sum(marker.lower() in lowered for marker in markers) / len(markers)
