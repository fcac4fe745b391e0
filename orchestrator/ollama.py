"""Ollama's native API, for what the OpenAI-compatible endpoint lacks: pull, digest, unload."""

from __future__ import annotations

import json
import time

import httpx

from .errors import WeeyugaError
from .progress import Progress, quiet



def pull(base_url: str, tag: str, progress: Progress = quiet) -> None:
    """POST /api/pull and follow its streamed status lines until success."""
    with httpx.stream("POST", f"{base_url}/api/pull", json={"model": tag, "stream": True}, timeout=None) as response:
        if response.status_code != 200:
            raise WeeyugaError(f"ollama pull {tag}: HTTP {response.status_code}")
        for line in response.iter_lines():
            if not line:
                continue
            event = json.loads(line)
            if "error" in event:
                raise WeeyugaError(f"ollama pull {tag}: {event['error']}")
            total, done = event.get("total"), event.get("completed")
            progress(f"ollama pull {tag}: {event.get('status', '')}", done / total if total and done is not None else None)
            if event.get("status") == "success":
                return
    raise WeeyugaError(f"ollama pull {tag}: stream ended without success")


def digest(base_url: str, tag: str) -> str | None:
    models = httpx.get(f"{base_url}/api/tags", timeout=10).raise_for_status().json().get("models", [])
    return next((m.get("digest") for m in models if m.get("name") == tag or m.get("model") == tag), None)


def loaded(base_url: str) -> list[str]:
    return [m.get("name") for m in httpx.get(f"{base_url}/api/ps", timeout=10).json().get("models", [])]


def unload(base_url: str, tag: str, wait_s: float = 30.0) -> None:
    """A real cold start for Ollama: keep_alive 0 evicts the model; wait until /api/ps agrees."""
    httpx.post(f"{base_url}/api/generate", json={"model": tag, "keep_alive": 0}, timeout=60).raise_for_status()
    deadline = time.monotonic() + wait_s
    while tag in loaded(base_url):
        if time.monotonic() > deadline:
            raise WeeyugaError(f"ollama kept {tag} loaded {wait_s:.0f} s after keep_alive 0")
        time.sleep(0.2)
