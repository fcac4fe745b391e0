"""Ollama's native API, for what the OpenAI-compatible endpoint lacks: pull, digest, unload."""

from __future__ import annotations

import json
import time

import httpx

from orchestrator.core.errors import WeeyugaError
from orchestrator.core.progress import Progress, quiet


def pull(base_url: str, tag: str, progress: Progress = quiet) -> None:
    """POST /api/pull and follow its streamed status lines until success."""
    try:
        with httpx.stream("POST", f"{base_url}/api/pull", json={"model": tag, "stream": True}, timeout=None) as response:
            if response.status_code != 200:
                raise WeeyugaError(f"ollama pull {tag}: HTTP {response.status_code}")
            for line in response.iter_lines():
                if not line:
                    continue
                event = json.loads(line)
                if not isinstance(event, dict):
                    raise ValueError(f"a status line that is not a JSON object: {line[:80]!r}")
                if "error" in event:
                    raise WeeyugaError(f"ollama pull {tag}: {event['error']}")
                total, done = event.get("total"), event.get("completed")
                progress(f"ollama pull {tag}: {event.get('status', '')}", done / total if total and done is not None else None)
                if event.get("status") == "success":
                    return
    except (httpx.HTTPError, ValueError, TypeError) as exc:
        raise _failed(base_url, f"pulling {tag}", exc) from None
    raise WeeyugaError(f"ollama pull {tag}: stream ended without success")


def _failed(base_url: str, what: str, exc: Exception) -> WeeyugaError:
    return WeeyugaError(f"ollama at {base_url}: {what} failed: {type(exc).__name__}: {exc}")


def digest(base_url: str, tag: str) -> str | None:
    try:
        models = httpx.get(f"{base_url}/api/tags", timeout=10).raise_for_status().json().get("models", [])
        return next((m.get("digest") for m in models if m.get("name") == tag or m.get("model") == tag), None)
    except (httpx.HTTPError, ValueError, AttributeError) as exc:  # unreachable, an HTTP error, or not the JSON we know
        raise _failed(base_url, "listing models (/api/tags)", exc) from None


def loaded(base_url: str) -> list[str]:
    try:
        return [m.get("name") for m in httpx.get(f"{base_url}/api/ps", timeout=10).raise_for_status().json().get("models", [])]
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        raise _failed(base_url, "listing loaded models (/api/ps)", exc) from None


def unload(base_url: str, tag: str, wait_s: float = 30.0) -> None:
    """A real cold start for Ollama: keep_alive 0 evicts the model; wait until /api/ps agrees."""
    try:
        httpx.post(f"{base_url}/api/generate", json={"model": tag, "keep_alive": 0}, timeout=60).raise_for_status()
    except httpx.HTTPError as exc:
        raise _failed(base_url, f"unloading {tag}", exc) from None
    deadline = time.monotonic() + wait_s
    while tag in loaded(base_url):
        if time.monotonic() > deadline:
            raise WeeyugaError(f"ollama kept {tag} loaded {wait_s:.0f} s after keep_alive 0")
        time.sleep(0.2)
