"""Stage 6b, privacy: find (and optionally redact) secrets and personal details in a run folder.

Keys and tokens come from 18 `detect-secrets` plugins (AWS, Slack, JWT, GitHub, GitLab, Stripe,
SendGrid, Twilio, PyPI, npm, Discord, Telegram, Mailchimp, Azure storage, Square, OpenAI, PEM
headers, basic-auth URLs): a maintained ruleset rather than a list of our own. Left off: its
high-entropy plugins (they flag the sha256 digests and ids a manifest rightly holds), keyword plugin
(any `password = "..."` a model writes in an answer), public-IP plugin (addresses in answers are not
secrets), Artifactory plugin (any quoted word starting AP + hex), and the IBM Cloud, Cloudant and
SoftLayer keyword plugins (about 0.4 s per MB each, for services a benchmark never touches). Some
plugins match only a token's prefix (a Slack token's mixed-case tail, a JWT's signature), so each
match is grown to the whole token around it.

Our own rules cover what detect-secrets does not know: a whole PEM private key (header, body and
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
import getpass
import json
import os
import re
import socket
import struct
import zlib
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from .errors import WeeyugaError

UNSCANNABLE = "unscannable"
JSON_SUFFIXES = {".json", ".jsonl"}
# A greedy plugin pattern (npm's `//.+/:_authToken=`) sees only the last of two tokens on a line;
# the next pass sees the other.
REDACTION_PASSES = 8
PLACEHOLDER = re.compile(r"\[REDACTED:[a-z0-9_]+\]")
# Account names that identify nobody; matching them would flag every file.
GENERIC_USERS = {"root", "user", "admin", "runner", "ubuntu", "debian", "ec2-user", "vagrant", "pi", "guest", "ci"}
# Characters a key or token is made of: a match is grown over them to the whole token.
TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-.+/=]")
WHITESPACE = re.compile(r"\s")
# Userinfo in a URL (`scheme://user:pass@`); never a quote or backslash, so JSON text stays valid.
URL_CREDENTIALS = re.compile(r"(?<=://)[^\s/?#@\"'\\<>]+:[^\s/?#@\"'\\<>]*@")

PEM_HEADER = r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
PEM_END = r"-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
NEWLINE = r"(?:\r?\n|\\r\\n|\\n)"  # a real one, or JSON's escape
# With its END line: everything up to it (never a JSON quote). Without (a truncated key): its base64 lines.
PEM_KEY = (rf"{PEM_HEADER}(?:(?:[^\"\\]|\\[^\"u]){{0,16384}}?{PEM_END}"
           rf"|(?:[ \t]*{NEWLINE}[ \t]*(?:[A-Za-z0-9+/=]+|(?:Proc-Type|DEK-Info):[^\r\n\\\"]*)"
           rf"(?=[ \t]*(?:[\r\n\"]|\\[rn]|$)))*)")
# Not inside a word or number, though right after a JSON escape (the \n or \u2028 before a token) is fine.
AFTER_ESCAPE = r"(?<=\\[nrtbf])|(?<=\\u[0-9a-fA-F]{4})"
START = rf"(?:(?<![A-Za-z0-9_])|{AFTER_ESCAPE})"
SLASH = r"(?:\\*/)"  # JSON may escape "/" as "\/", and JSON inside JSON as "\\\/"
BACKSLASH = r"(?:\\+|/)"

OUR_PATTERNS: list[tuple[str, str]] = [
    ("private_key", PEM_KEY),
    ("ssh_public_key", r"ssh-(?:rsa|ed25519|dss) AAAA[0-9A-Za-z+/=]{16,}"),
    ("bearer_token", r"Bearer\s+[A-Za-z0-9._~+/=-]{8,}"),
    ("api_key", rf"{START}(?<!-)sk-[A-Za-z0-9_-]{{16,}}"),
    ("google_api_key", r"AIza[0-9A-Za-z_-]{35}"),
    ("huggingface_token", rf"{START}hf_[A-Za-z0-9]{{20,}}"),
    ("github_token", rf"{START}(?:github_pat_[A-Za-z0-9_]{{22,}}|gh[pousr]_[A-Za-z0-9]{{20,}})"),
    ("password", rf"(?i){START}(?:password|passwd|pwd)\b\s*[:=]\s*[^\s\"',\\]{{3,}}"),
    ("url_credentials", URL_CREDENTIALS.pattern),
    ("home_path", rf"{SLASH}(?:home|Users){SLASH}[A-Za-z0-9._-]+"),
    ("home_path", rf"{SLASH}root(?![A-Za-z0-9._-])"),
    ("home_path", rf"{START}[A-Za-z]:{BACKSLASH}(?i:users){BACKSLASH}[A-Za-z0-9._ -]+"),
    ("private_ip", rf"(?:(?<![\d.])|{AFTER_ESCAPE})(?:10\.\d{{1,3}}|192\.168|172\.(?:1[6-9]|2\d|3[01])|169\.254)\.\d{{1,3}}\.\d{{1,3}}(?!\.?\d)"),
    ("private_ipv6", rf"(?i)(?:(?<![0-9a-f:])|{AFTER_ESCAPE})(?:f[cd][0-9a-f]{{2}}|fe[89ab][0-9a-f])"
                     r":[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){1,6}(?![0-9a-f:])"),
    ("email", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
]

# PNG chunks that hold pixels and colour facts only; any other chunk but the text ones may hide text.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_TEXT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt"}
PNG_PLAIN_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"pHYs", b"bKGD",
                    b"sBIT", b"tIME", b"hIST", b"sPLT"}


@dataclass(frozen=True)
class Finding:
    file: str
    line: int  # 0: the whole file; in a PNG, the chunk's number
    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind}"


class Rule(Protocol):
    kind: str

    def spans(self, text: str) -> Iterator[tuple[int, int]]: ...


@dataclass(frozen=True)
class RegexRule:
    kind: str
    pattern: re.Pattern[str]

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
        for match in self.pattern.finditer(text):
            yield match.span()


OUR_RULES = [RegexRule(kind, re.compile(pattern)) for kind, pattern in OUR_PATTERNS]


@dataclass(frozen=True)
class DetectorRule:
    """A detect-secrets plugin: its own regexes, and its own check of each value (a JWT's JSON must parse)."""

    kind: str
    detector: Any
    patterns: tuple[re.Pattern[str], ...]

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
        for pattern in self.patterns:
            for match in pattern.finditer(text):
                group = next((i for i in range(1, (pattern.groups or 0) + 1) if match.group(i)), 0)
                if match.group(group) in set(self.detector.analyze_string(match.group(0))):
                    start, end = match.span(group)
                    space = WHITESPACE.search(text, start, end)  # npm's `.+` runs to the end of the line
                    yield _whole_token(text, start, space.start() if space else end)


@cache
def detector_rules() -> tuple[DetectorRule, ...]:
    from detect_secrets.plugins import (aws, azure_storage_key, basic_auth, discord, github_token, gitlab_token, jwt,
                                        mailchimp, npm, openai, private_key, pypi_token, sendgrid, slack,
                                        square_oauth, stripe, telegram_token, twilio)

    detectors = [aws.AWSKeyDetector, azure_storage_key.AzureStorageKeyDetector, basic_auth.BasicAuthDetector,
                 discord.DiscordBotTokenDetector, github_token.GitHubTokenDetector, gitlab_token.GitLabTokenDetector,
                 jwt.JwtTokenDetector, mailchimp.MailchimpDetector, npm.NpmDetector, openai.OpenAIDetector,
                 private_key.PrivateKeyDetector, pypi_token.PypiTokenDetector, sendgrid.SendGridDetector,
                 slack.SlackDetector, square_oauth.SquareOAuthDetector, stripe.StripeDetector,
                 telegram_token.TelegramBotTokenDetector, twilio.TwilioKeyDetector]
    # The plugins scan one line at a time; MULTILINE keeps their ^ and $ per line over a whole file.
    return tuple(DetectorRule(re.sub(r"\W+", "_", d.secret_type.lower()).strip("_"), d(),
                              tuple(re.compile(p.pattern, p.flags | re.MULTILINE) for p in d.denylist))
                 for d in detectors)


def machine_rules(hostname: str | None = None, username: str | None = None) -> list[Rule]:
    """This machine's host and user names (pass them to pin them in a test)."""
    hostname = (hostname if hostname is not None else socket.gethostname()).split(".")[0]
    try:
        username = username if username is not None else getpass.getuser()
    except (KeyError, OSError):
        username = ""
    out: list[Rule] = []
    if len(hostname) >= 3 and hostname.lower() != "localhost":
        out.append(RegexRule("host_name", re.compile(rf"{START}{re.escape(hostname)}(?![A-Za-z0-9_])", re.I)))
    if len(username) >= 3 and username.lower() not in GENERIC_USERS:
        out.append(RegexRule("user_name", re.compile(rf"{START}{re.escape(username)}(?![A-Za-z0-9_])", re.I)))
    return out


def default_rules(hostname: str | None = None, username: str | None = None) -> list[Rule]:
    return [*detector_rules(), *OUR_RULES, *machine_rules(hostname, username)]


def strip_url_credentials(text: str) -> str:
    """`http://user:pass@host` -> `http://host`: applied to everything weeyuga records."""
    return URL_CREDENTIALS.sub("", text)


# --- spans in one text -----------------------------------------------------------------

def _whole_token(text: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and TOKEN_CHARS.match(text, start - 1):
        start -= 1
    while end < len(text) and TOKEN_CHARS.match(text, end):
        end += 1
    return start, end


def _escape_start(text: str, i: int) -> int:
    """Where the JSON escape sequence that position i falls inside begins (i itself if none)."""
    for j in range(i - 1, max(i - 6, -1), -1):
        if text[j] != "\\":
            continue
        first = j
        while first > 0 and text[first - 1] == "\\":
            first -= 1
        if (j - first) % 2 == 1:
            return i  # text[j] is itself escaped
        return j if j + (6 if text[j + 1:j + 2] == "u" else 2) > i else i
    return i


def _json_safe(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen a span to whole escape sequences and stop it at the first unescaped quote."""
    start = _escape_start(text, start)
    inner = _escape_start(text, end)
    if inner != end:
        end = inner + (6 if text[inner + 1:inner + 2] == "u" else 2)
    i = start
    while i < end:
        if text[i] == "\\":
            i += 6 if text[i + 1:i + 2] == "u" else 2
        elif text[i] == '"':
            return start, i
        else:
            i += 1
    return start, min(end, len(text))


def find_spans(text: str, rules: list[Rule], in_json: bool = False) -> list[tuple[int, int, str]]:
    """(start, end, kind) of every match, without those inside a longer match or a placeholder."""
    spans = [(*m.span(), "") for m in PLACEHOLDER.finditer(text)]  # kind "": guards what it covers
    for rule in rules:
        for start, end in rule.spans(text):
            if in_json:
                start, end = _json_safe(text, start, end)
            if end > start:
                spans.append((start, end, rule.kind))
    # Sorted by start, longest first: a span lies inside an earlier one iff it ends before the furthest end so far.
    spans.sort(key=lambda s: (s[0], -s[1], s[2] != ""))
    kept: list[tuple[int, int, str]] = []
    furthest = -1
    for start, end, kind in spans:
        if end > furthest and kind:
            kept.append((start, end, kind))
        furthest = max(furthest, end)
    return kept


def redact_text(text: str, spans: list[tuple[int, int, str]]) -> str:
    """Replace the spans (overlapping ones merged) with `[REDACTED:<kind>]`."""
    out, position = [], 0
    for start, end, kind in spans:  # sorted by start
        if start >= position:
            out.append(text[position:start] + f"[REDACTED:{kind}]")
            position = end
        else:  # overlaps the previous span: its placeholder covers both
            position = max(position, end)
    return "".join(out) + text[position:]


# --- PNG text chunks -------------------------------------------------------------------

@dataclass(frozen=True)
class PngChunk:
    type: bytes
    data: bytes

    def encode(self) -> bytes:
        return struct.pack(">I", len(self.data)) + self.type + self.data + struct.pack(">I", zlib.crc32(self.type + self.data))


@dataclass(frozen=True)
class PngText:
    """A text chunk's parts; the scan sees `scanned`: keyword, translated keyword and text, one a line."""

    chunk_type: bytes
    keyword: str
    translated: str
    text: str
    language: bytes = b""
    compressed: bool = False

    @property
    def scanned(self) -> str:
        return "\n".join([self.keyword, self.translated, self.text])

    def with_scanned(self, scanned: str) -> PngText | None:
        parts = scanned.split("\n", 2)
        return replace(self, keyword=parts[0][:79], translated=parts[1], text=parts[2]) if len(parts) == 3 else None

    def chunk(self) -> PngChunk:
        keyword = self.keyword.encode("latin-1", "replace")
        if self.chunk_type == b"tEXt":
            return PngChunk(b"tEXt", keyword + b"\0" + self.text.encode("latin-1", "replace"))
        if self.chunk_type == b"zTXt":
            return PngChunk(b"zTXt", keyword + b"\0\0" + zlib.compress(self.text.encode("latin-1", "replace")))
        text = self.text.encode("utf-8")
        return PngChunk(b"iTXt", keyword + b"\0" + (b"\1\0" if self.compressed else b"\0\0") + self.language + b"\0"
                        + self.translated.encode("utf-8") + b"\0" + (zlib.compress(text) if self.compressed else text))


def png_chunks(data: bytes) -> list[PngChunk] | None:
    """The chunks of a well-formed PNG (each CRC checked, nothing after IEND), else None."""
    chunks, i = [], len(PNG_SIGNATURE)
    while i + 12 <= len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        chunk = PngChunk(data[i + 4:i + 8], data[i + 8:i + 8 + length])
        crc = data[i + 8 + length:i + 12 + length]
        if len(chunk.data) != length or len(crc) != 4 or struct.unpack(">I", crc)[0] != zlib.crc32(chunk.type + chunk.data):
            return None
        chunks.append(chunk)
        i += 12 + length
        if chunk.type == b"IEND":
            return chunks if i == len(data) else None
    return None


def png_text(chunk: PngChunk) -> PngText | None:
    """Decode a tEXt / zTXt / iTXt chunk; None if it does not decode."""
    try:
        keyword, rest = chunk.data.split(b"\0", 1)
        if chunk.type == b"tEXt":
            return PngText(b"tEXt", keyword.decode("latin-1"), "", rest.decode("latin-1"))
        if chunk.type == b"zTXt":
            return PngText(b"zTXt", keyword.decode("latin-1"), "", zlib.decompress(rest[1:]).decode("latin-1"))
        compressed = rest[0] == 1
        language, translated, text = rest[2:].split(b"\0", 2)
        return PngText(b"iTXt", keyword.decode("latin-1"), translated.decode("utf-8"),
                       (zlib.decompress(text) if compressed else text).decode("utf-8"), language, compressed)
    except (ValueError, IndexError, zlib.error):
        return None


# --- files -----------------------------------------------------------------------------

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
                tmp = path.with_name(path.name + ".redacting")
                tmp.write_bytes(redacted)
                tmp.replace(path)
                changed = True
        if not changed:
            break
    return scan(run_dir, rules)
