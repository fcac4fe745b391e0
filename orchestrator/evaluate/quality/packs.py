"""Quality packs as data: suites/packs/<pack>.jsonl, a meta line then one scenario per line;
and the bfcl-* packs, built at load time from BFCL's own data in the cache (quality/bfcl/).

Each line is strict JSON checked against its schema (quality-pack-meta / quality-scenario);
errors name the file and line. A pack's sha256 goes into every record, and a test pins it
with the version, so a changed pack cannot pass for an old one.

A meta line's `generated` adds seeded scenarios after the hand-written ones (generators/<pack>.py
at the named generator version and seed); the sha256 covers them too. A quality mode runs a
prefix of each pack: the hand-written scenarios plus `generated.sets[mode]` generated ones.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput
from orchestrator.core.paths import data_dir
from orchestrator.evaluate.quality.bfcl.scenarios import pack_parts
from orchestrator.evaluate.quality.bfcl.source import fetched, load_source
from orchestrator.evaluate.quality.generators import codeexec, extract, instruct, math, struct, toolcall

PACK_ORDER = ("toolcall", "instruct", "struct", "extract", "math", "codeexec")
MODES = {"quick": PACK_ORDER[:2], "medium": PACK_ORDER[:5], "full": PACK_ORDER}
# Modes that add every bfcl-* pack once `quality get bfcl` has fetched the data (medium a sample of each).
BFCL_MODES = ("medium", "full")
BFCL_PREFIX = "bfcl-"
PACK_LIMIT_BYTES = 4 * 2**20
GENERATORS = {"toolcall": toolcall, "instruct": instruct, "struct": struct, "extract": extract, "math": math,
              "codeexec": codeexec}


@dataclass(frozen=True)
class Scenario:
    id: str
    description: str
    level: str
    messages: tuple[dict[str, str], ...]
    verifier: dict[str, Any]
    tools: tuple[dict[str, Any], ...] | None = None
    expected: dict[str, Any] | None = None
    max_tokens: int | None = None

    @property
    def kind(self) -> str:
        return self.verifier["type"]


@dataclass(frozen=True)
class Pack:
    id: str
    version: int
    title: str
    licence: str
    sampling: dict[str, Any]
    max_tokens: int
    case_seconds: float
    timeout_reference_tps: float
    timeout_ceiling_s: float
    thinking: str
    scenarios: tuple[Scenario, ...]
    sha256: str  # of the file and the generated scenarios
    written: int = 0  # how many of `scenarios` are the file's own (the rest are generated)
    generated: dict[str, Any] | None = None  # the meta line's: generator_version, seed, sets (mode -> how many)

    def scenario(self, scenario_id: str) -> Scenario | None:
        return next((s for s in self.scenarios if s.id == scenario_id), None)

    def for_mode(self, mode: str | None, generated: int | None = None) -> "Pack":
        """The scenarios a quality mode runs: the hand-written ones and the mode's share of the generated
        (`generated`, where auto's budget bought another share: profiles/budget.yaml's quality candidates)."""
        if not self.generated or (mode is None and generated is None):
            return self
        count = self.generated["sets"].get(mode, 0) if generated is None else min(generated, self.generated["sets"]["full"])
        return replace(self, scenarios=self.scenarios[:self.written + count])


def packs_dir() -> Path:
    return data_dir("suites") / "packs"


def available_pack_ids() -> tuple[str, ...]:
    """Every pack that can be loaded here: the hand-written ones and, once fetched, BFCL's."""
    return PACK_ORDER + bfcl_pack_ids(only_fetched=True)


def bfcl_pack_ids(only_fetched: bool = False) -> tuple[str, ...]:
    """The bfcl-* packs suites/bfcl/source.json defines (only_fetched: none until the data is cached)."""
    source = load_source()
    return () if only_fetched and not fetched(source) else tuple(c.pack for c in source.categories)


def pack_ids(text: str | None = None, mode: str | None = None) -> tuple[str, ...]:
    """`--packs a,b` (canonical order, each known) or a mode's packs."""
    if text is None:
        if mode not in MODES:
            raise BadInput(f"unknown quality mode {mode!r}; choose from {', '.join(MODES)}")
        return MODES[mode] + (bfcl_pack_ids(only_fetched=True) if mode in BFCL_MODES else ())
    known = PACK_ORDER + bfcl_pack_ids()
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise BadInput(f"unknown pack(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}")
    return tuple(p for p in known if p in names)


def selected_packs(text: str | None, mode: str | None, generated: int | None = None) -> tuple[Pack, ...]:
    """The packs a run takes: `--packs`, or the mode's, medium with a sample of each bfcl pack; each written pack
    cut to the mode's scenarios (or to its written ones and `generated` generated ones)."""
    sample = load_source().medium_sample if text is None and mode == "medium" else None
    return load_packs(pack_ids(text, mode), sample=sample, mode=mode, generated=generated)


def load_pack(pack_id: str, directory: Path | None = None, sample: int | None = None) -> Pack:
    """Every scenario of the pack, generated ones included (`for_mode` picks a mode's); `sample` keeps that
    many questions of a bfcl pack."""
    if pack_id.startswith(BFCL_PREFIX):
        return _bfcl_pack(pack_id, sample)
    path = (directory or packs_dir()) / f"{pack_id}.jsonl"
    raw = datafiles.read_bytes(path, PACK_LIMIT_BYTES)
    lines = [(number, line) for number, line in enumerate(raw.split(b"\n"), 1) if line.strip()]
    if not lines:
        raise BadInput(f"{path}: empty; a pack starts with its meta line")
    meta = _line(path, *lines[0], "quality-pack-meta")
    if meta["pack"] != pack_id:
        raise BadInput(f"{path}:{lines[0][0]}: field pack: {meta['pack']!r} does not match the file name")
    scenarios, seen = [], set()
    entries = [(number, _line(path, number, line, "quality-scenario")) for number, line in lines[1:]]
    written = len(entries)
    generated = _generated(path, meta)
    entries += [(f"generated {entry['id']}", entry) for entry in generated]
    for number, entry in entries:
        if entry["id"] in seen:
            raise BadInput(f"{path}:{number}: field id: {entry['id']!r} appears twice")
        seen.add(entry["id"])
        _check_patterns(entry["verifier"], f"{path}:{number}: field verifier")
        scenarios.append(Scenario(
            id=entry["id"], description=entry["description"], level=entry["level"],
            messages=tuple(entry["messages"]), verifier=entry["verifier"],
            tools=tuple(entry["tools"]) if "tools" in entry else None,
            expected=entry.get("expected"), max_tokens=entry.get("max_tokens")))
    if not scenarios:
        raise BadInput(f"{path}: no scenarios after the meta line")
    digest = hashlib.sha256(raw)
    if generated:
        digest.update(json.dumps(generated, sort_keys=True, ensure_ascii=False).encode())
    return Pack(id=pack_id, version=meta["version"], title=meta["title"], licence=meta["licence"],
                sampling=meta["sampling"], max_tokens=meta["max_tokens"], case_seconds=meta["case_seconds"],
                timeout_reference_tps=meta["timeout_reference_tps"], timeout_ceiling_s=meta["timeout_ceiling_s"],
                thinking=meta["thinking"], scenarios=tuple(scenarios), sha256=digest.hexdigest(), written=written,
                generated=meta.get("generated"))


def _generated(path: Path, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The meta line's generated scenarios (checked like written ones), or none."""
    spec = meta.get("generated")
    if not spec:
        return []
    module = GENERATORS.get(meta["pack"])
    if module is None or module.VERSION != spec["generator_version"]:
        raise BadInput(f"{path}:1: field generated.generator_version: {spec['generator_version']} is not the code's "
                       f"({module.VERSION if module else 'no generator for this pack'}); bump the pack version with it")
    return list(_generate(meta["pack"], spec["generator_version"], spec["seed"], spec["sets"]["full"], str(path)))


@functools.cache
def _generate(pack_id: str, generator_version: int, seed: int, count: int, where: str) -> tuple[dict[str, Any], ...]:
    """Generated and schema-checked once per process: the budget planner loads each pack several times."""
    made = tuple(g.scenario for g in GENERATORS[pack_id].generate(seed, count))
    for entry in made:
        datafiles.validate(entry, "quality-scenario", f"{where}: generated {entry['id']}")
    return made


def load_packs(ids: tuple[str, ...] | list[str], directory: Path | None = None, sample: int | None = None,
               mode: str | None = None, generated: int | None = None) -> tuple[Pack, ...]:
    """The packs, each written one cut to `mode`'s scenarios (or `generated` generated ones) when given, else
    every scenario; `sample` keeps that many questions of each bfcl pack."""
    return tuple(load_pack(pack_id, directory, sample).for_mode(mode, generated) for pack_id in ids)


def _bfcl_pack(pack_id: str, sample: int | None) -> Pack:
    source = load_source()
    category = source.category(pack_id)
    if category is None:
        raise BadInput(f"unknown pack {pack_id}; choose from {', '.join(bfcl_pack_ids())}")
    meta, entries = pack_parts(source, category, sample)
    return Pack(id=pack_id, version=meta["version"], title=meta["title"], licence=meta["licence"],
                sampling=meta["sampling"], max_tokens=meta["max_tokens"], case_seconds=meta["case_seconds"],
                timeout_reference_tps=meta["timeout_reference_tps"], timeout_ceiling_s=meta["timeout_ceiling_s"],
                thinking=meta["thinking"], scenarios=tuple(Scenario(**entry) for entry in entries), sha256=meta["sha256"])


def _line(path: Path, number: int, line: bytes, schema_name: str) -> dict[str, Any]:
    try:
        document = datafiles.parse_json(line)
    except ValueError as exc:  # JSONDecodeError, a refused constant or duplicate key, bad UTF-8
        raise BadInput(f"{path}:{number}: not valid JSON: {exc}") from None
    datafiles.validate(document, schema_name, f"{path}:{number}")
    return document


def _check_patterns(node: Any, where: str) -> None:
    """Every `regex` in a verifier compiles (a bad one would otherwise fail a model, not the pack)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "regex" and isinstance(value, str):
                try:
                    re.compile(value)
                except re.error as exc:
                    raise BadInput(f"{where}: regex {value!r}: {exc}") from None
            else:
                _check_patterns(value, where)
    elif isinstance(node, list):
        for value in node:
            _check_patterns(value, where)
