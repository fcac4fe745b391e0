"""Stage 6b, privacy: find (and optionally redact) secrets and personal details in a run folder.

Keys and tokens come from maintained rulesets, not a list of our own: Betterleaks' built-in rules (the
gitleaks family: hundreds of providers, npm, Azure connection strings, Shopify, DigitalOcean, age keys…;
betterleaks-py runs its Go engine in-process, offline), and 18 `detect-secrets` plugins for the kinds
Betterleaks misses (an AWS key id on its own, Twilio, Discord, Telegram, Mailchimp, Square; measured by
benchmarks/bench_privacy.py). Betterleaks reads each text with JSON escapes and Unicode line breaks
blanked (same length, so its offsets stand) and once more with "/" blanked (a token glued to a URL path).
Left off of detect-secrets: its high-entropy plugins (they flag the sha256 digests and ids a manifest
rightly holds), keyword plugin (any `password = "..."` a model writes in an answer), public-IP plugin
(addresses in answers are not secrets), Artifactory plugin (any quoted word starting AP + hex), and the
IBM Cloud, Cloudant and SoftLayer keyword plugins. Some plugins match only a token's prefix (a Slack
token's mixed-case tail, a JWT's signature), so each match is grown to the whole token around it.

Our own rules cover what is ours and what the rulesets do not know: an HTTP Basic `Authorization`
header, a whole PEM private key (header, body and
END line), Google `AIza` keys, Hugging Face, `sk-` and fine-grained GitHub tokens, bearer tokens,
SSH public keys (Ollama echoes its own), `password=` assignments, credentials in URLs, home
paths in every OS spelling and JSON escaping (`/home/alice`, `\\/home\\/alice`, `/Users/bob`,
`C:\\\\Users\\\\bob`, `/root`, which is also where a runtime run as root echoes its model paths),
private IPv4 and IPv6 addresses, e-mail addresses, and this machine's host and user names.

Every file is scanned: text as bytes decoded with surrogateescape (so other encodings survive
redaction byte for byte), PNG text chunks (tEXt, zTXt, iTXt; the line is the chunk's number).
Anything else (other binary files, symlinks, devices, PNG chunks that may hold text we cannot
read) is an `unscannable` finding, so `submit` refuses it. Redaction rewrites matches in place as
`[REDACTED:<kind>]`, never splits a JSON escape or crosses a JSON quote, proves every JSON
document and line still parses, re-encodes changed PNG chunks with their CRC, then scans again:
what it returns is what is really left.
"""

from __future__ import annotations

import bisect
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from orchestrator.core.atomic import write_bytes_atomic
from orchestrator.core.errors import WeeyugaError
from orchestrator.publish.privacy.png import PNG_PLAIN_CHUNKS, PNG_SIGNATURE, PNG_TEXT_CHUNKS, PngChunk, png_chunks, png_text
from orchestrator.core.urls import strip_url_credentials
from orchestrator.publish.privacy.rules import Rule, default_rules
from orchestrator.publish.privacy.spans import find_spans, redact_text

# The package's public names, imported from here across weeyuga.
__all__ = ["UNSCANNABLE", "Finding", "PngChunk", "Rule", "default_rules", "png_chunks", "redact", "scan",
           "strip_url_credentials"]

UNSCANNABLE = "unscannable"
JSON_SUFFIXES = {".json", ".jsonl"}
# A greedy plugin pattern (npm's `//.+/:_authToken=`) sees only the last of two tokens on a line;
# the next pass sees the other.
REDACTION_PASSES = 8


@dataclass(frozen=True)
class Finding:
    file: str
    line: int  # 0: the whole file; in a PNG, the chunk's number
    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind}"


def _entries(folder: Path) -> Iterator[tuple[Path, bool]]:
    """Every entry below folder, symlinks not followed: (path, is a regular file)."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError:
        yield folder, False  # cannot be listed: reported, never skipped
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _entries(Path(entry.path))
        else:
            yield Path(entry.path), entry.is_file(follow_symlinks=False)


def _line_of(text: str) -> Callable[[int], int]:
    newlines = [m.start() for m in re.finditer("\n", text)]
    return lambda offset: bisect.bisect_left(newlines, offset) + 1


def _scan_png(name: str, data: bytes, rules: list[Rule]) -> list[Finding]:
    chunks = png_chunks(data)
    if chunks is None:
        return [Finding(name, 0, UNSCANNABLE, "malformed PNG")]
    findings = []
    for number, chunk in enumerate(chunks, 1):
        if chunk.type in PNG_PLAIN_CHUNKS:
            continue
        text = png_text(chunk) if chunk.type in PNG_TEXT_CHUNKS else None
        if text is None:
            findings.append(Finding(name, number, UNSCANNABLE, chunk.type.decode("latin-1")))
            continue
        findings += [Finding(name, number, kind, text.scanned[s:e]) for s, e, kind in find_spans(text.scanned, rules)]
    return findings


def _scan_file(path: Path, name: str, rules: list[Rule]) -> list[Finding]:
    data = path.read_bytes()
    if data.startswith(PNG_SIGNATURE):
        return _scan_png(name, data, rules)
    if b"\0" in data:
        return [Finding(name, 0, UNSCANNABLE, "binary file")]
    text = data.decode("utf-8", "surrogateescape")
    line_of = _line_of(text)
    return [Finding(name, line_of(s), kind, text[s:e])
            for s, e, kind in find_spans(text, rules, path.suffix in JSON_SUFFIXES)]


def scan(run_dir: Path, rules: list[Rule] | None = None) -> list[Finding]:
    """Every finding in every file of run_dir; what cannot be read is an `unscannable` finding."""
    if not run_dir.is_dir():
        raise WeeyugaError(f"{run_dir}: not a folder")
    rules = rules if rules is not None else default_rules()
    findings = []
    for path, regular in _entries(run_dir):
        name = path.relative_to(run_dir).as_posix()
        if not regular:
            findings.append(Finding(name, 0, UNSCANNABLE, "not a regular file"))
            continue
        try:
            findings += _scan_file(path, name, rules)
        except OSError as exc:
            findings.append(Finding(name, 0, UNSCANNABLE, exc.strerror or type(exc).__name__))
    return findings


def _valid_json_count(path: Path, text: str) -> int:
    """How many JSON documents (1 for .json, one per line for .jsonl) parse."""
    pieces = text.split("\n") if path.suffix == ".jsonl" else [text]  # not splitlines(): U+2028 is text
    count = 0
    for piece in pieces:
        try:
            json.loads(piece)
            count += 1
        except ValueError:
            pass
    return count


def _redact_png(data: bytes, rules: list[Rule]) -> bytes:
    chunks = png_chunks(data)
    if chunks is None:
        return data
    out = []
    for chunk in chunks:
        text = png_text(chunk) if chunk.type in PNG_TEXT_CHUNKS else None
        spans = find_spans(text.scanned, rules) if text else []
        if spans:
            redacted = text.with_scanned(redact_text(text.scanned, spans))
            if redacted is None:
                continue  # a match spanned the parts: drop the whole chunk
            chunk = redacted.chunk()
        out.append(chunk.encode())
    return PNG_SIGNATURE + b"".join(out)


def _redacted_bytes(path: Path, data: bytes, rules: list[Rule]) -> bytes:
    if data.startswith(PNG_SIGNATURE):
        return _redact_png(data, rules)
    if b"\0" in data:
        return data
    text = data.decode("utf-8", "surrogateescape")
    in_json = path.suffix in JSON_SUFFIXES
    spans = find_spans(text, rules, in_json)
    if not spans:
        return data
    redacted = redact_text(text, spans)
    if in_json and _valid_json_count(path, redacted) < _valid_json_count(path, text):
        raise WeeyugaError(f"redacting {path.name} would break its JSON; nothing was changed in it")
    return redacted.encode("utf-8", "surrogateescape")


def redact(run_dir: Path, rules: list[Rule] | None = None) -> list[Finding]:
    """Replace every match in place; returns what a fresh scan finds afterwards (normally nothing)."""
    rules = rules if rules is not None else default_rules()
    for _ in range(REDACTION_PASSES):
        changed = False
        for path, regular in _entries(run_dir):
            if not regular:
                continue  # a symlink or device stays an `unscannable` finding
            data = path.read_bytes()
            redacted = _redacted_bytes(path, data, rules)
            if redacted != data:
                write_bytes_atomic(path, redacted)
                changed = True
        if not changed:
            break
    return scan(run_dir, rules)
