import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.runtime.models import get_model
from orchestrator.plan.profiles import QuantFile, load_profiles

GGUF = b"GGUF" + bytes(range(256)) * 64
SPEC = load_profiles().model("qwen2.5-coder-0.5b")


def hf_cache(root: Path, repo: str, filename: str, content: bytes) -> None:
    """The on-disk layout huggingface_hub reads: refs/main -> snapshots/<rev>/<file>."""
    base = root / f"models--{repo.replace('/', '--')}"
    revision = "a" * 40
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(revision)
    snapshot = base / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / filename).write_bytes(content)


def spec_with(sha: str | None):
    quant = QuantFile("Q4_K_M", len(GGUF), sha, False, {"repo": "Org/Tiny-GGUF", "file": "tiny.gguf"}, None)
    return replace(SPEC, quants={"Q4_K_M": quant})


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return tmp_path / "hub"


def test_huggingface_gguf_from_local_cache_offline(offline_hub):
    hf_cache(offline_hub, "Org/Tiny-GGUF", "tiny.gguf", GGUF)
    record = get_model(spec_with(hashlib.sha256(GGUF).hexdigest()))
    assert record.source == "huggingface" and record.source_detail == "Org/Tiny-GGUF/tiny.gguf"
    assert Path(record.path).read_bytes() == GGUF
    assert get_model(spec_with(hashlib.sha256(GGUF).hexdigest())) == record  # second call: from our record


def test_huggingface_wrong_checksum_is_refused(offline_hub):
    hf_cache(offline_hub, "Org/Tiny-GGUF", "tiny.gguf", GGUF)
    with pytest.raises(BadInput, match="does not match the catalogue"):
        get_model(spec_with("0" * 64))


def test_huggingface_missing_offline_is_a_clear_error(offline_hub):
    with pytest.raises(WeeyugaError, match="cannot fetch Org/Tiny-GGUF/tiny.gguf"):
        get_model(spec_with(None))


def test_local_path_checks(tmp_path):
    good = tmp_path / "m.gguf"
    good.write_bytes(GGUF)
    assert get_model(spec_with(None), path=good).source == "local"
    with pytest.raises(BadInput, match="model file not found"):
        get_model(spec_with(None), path=tmp_path / "missing.gguf")
    with pytest.raises(BadInput, match="sha256"):
        get_model(spec_with("1" * 64), path=good)


def test_a_cached_file_whose_digest_changed_is_never_used_and_is_fetched_again(offline_hub, monkeypatch):
    """Same size, other bytes (a corrupted disk): the size+mtime check catches the touch, the digest the damage."""
    import os

    from orchestrator.runtime import models

    hf_cache(offline_hub, "Org/Tiny-GGUF", "tiny.gguf", GGUF)
    spec = spec_with(hashlib.sha256(GGUF).hexdigest())
    record = get_model(spec)
    hashed = []
    monkeypatch.setattr(models, "sha256_file", lambda path, *a: hashed.append(path) or hashlib.sha256(path.read_bytes()).hexdigest())
    assert get_model(spec) == record and not hashed  # unchanged size and mtime: not hashed again
    damaged = bytearray(GGUF)
    damaged[100] ^= 0xFF
    Path(record.path).write_bytes(bytes(damaged))
    asked = []

    def download(**kwargs):
        asked.append(kwargs.get("force_download"))
        Path(record.path).write_bytes(GGUF)  # the hub's fresh copy
        return record.path

    monkeypatch.setattr("huggingface_hub.hf_hub_download", download)
    again = get_model(spec)
    assert asked == [True] and again.sha256 == hashlib.sha256(GGUF).hexdigest()
    assert Path(again.path).read_bytes() == GGUF
    os.utime(again.path)  # touched, not changed: hashed once more, then trusted
    hashed.clear()
    assert get_model(spec).sha256 == again.sha256 and len(hashed) == 1
    assert get_model(spec).sha256 == again.sha256 and len(hashed) == 1
