"""Stage 6b, privacy: find (and optionally redact) secrets and personal details in a run folder.

Looks for API keys and tokens, SSH keys, passwords, home-directory paths, private IP
addresses, e-mail addresses, and this machine's host and user names. Redaction rewrites
matches in place as `[REDACTED:<kind>]`, proves every JSON document and line still parses
before writing, then scans again.
"""

from __future__ import annotations

import getpass
import json
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from .errors import WeeyugaError

TEXT_SUFFIXES = {".json", ".jsonl", ".md", ".txt", ".log", ".yaml", ".yml", ".csv"}
# Account names that identify nobody; matching them would flag every file.
GENERIC_USERS = {"root", "user", "admin", "runner", "ubuntu", "debian", "ec2-user", "vagrant", "pi", "guest", "ci"}

PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("ssh_public_key", re.compile(r"ssh-(?:rsa|ed25519|dss) AAAA[0-9A-Za-z+/=]{16,}")),
    ("bearer_token", re.compile(r"Bearer\s+[A-Za-z0-9._~+/=-]{8,}")),
    ("openai_key", re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")),
    ("huggingface_token", re.compile(r"\bhf_[A-Za-z0-9]{20,}")),
    ("github_token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}")),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("password", re.compile(r"(?i)\b(?:password|passwd|pwd)\b\s*[:=]\s*[^\s\"',]{3,}")),
    ("home_path", re.compile(r"/(?:home|Users)/[A-Za-z0-9._-]+")),
    ("home_path", re.compile(r"[A-Za-z]:(?:\\\\|\\)Users(?:\\\\|\\)[A-Za-z0-9._ -]+")),
    ("private_ip", re.compile(r"\b(?:10\.\d{1,3}|192\.168|172\.(?:1[6-9]|2\d|3[01]))\.\d{1,3}\.\d{1,3}\b")),
    ("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),
]


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind}"


def machine_patterns(hostname: str | None = None, username: str | None = None) -> list[tuple[str, re.Pattern[str]]]:
    hostname = (hostname if hostname is not None else socket.gethostname()).split(".")[0]
    try:
        username = username if username is not None else getpass.getuser()
    except (KeyError, OSError):
        username = ""
    out = []
    if len(hostname) >= 3 and hostname.lower() not in {"localhost"}:
        out.append(("host_name", re.compile(rf"(?<![A-Za-z0-9]){re.escape(hostname)}(?![A-Za-z0-9])", re.I)))
    if len(username) >= 3 and username.lower() not in GENERIC_USERS:
        out.append(("user_name", re.compile(rf"(?<![A-Za-z0-9]){re.escape(username)}(?![A-Za-z0-9])", re.I)))
    return out


def _files(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)


def scan(run_dir: Path, patterns: list[tuple[str, re.Pattern[str]]] | None = None) -> list[Finding]:
    if not run_dir.is_dir():
        raise WeeyugaError(f"{run_dir}: not a folder")
    patterns = patterns if patterns is not None else PATTERNS + machine_patterns()
    findings = []
    for path in _files(run_dir):
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            for kind, pattern in patterns:
                for match in pattern.finditer(line):
                    findings.append(Finding(str(path.relative_to(run_dir)), number, kind, match.group(0)))
    return findings


def _check_still_valid(path: Path, text: str) -> None:
    try:
        if path.suffix == ".json":
            json.loads(text)
        elif path.suffix == ".jsonl":
            for line in text.splitlines():
                if line.strip():
                    json.loads(line)
    except ValueError as exc:
        raise WeeyugaError(f"redacting {path.name} would break its JSON ({exc}); nothing was changed in it") from None


def redact(run_dir: Path, patterns: list[tuple[str, re.Pattern[str]]] | None = None) -> list[Finding]:
    """Replace every match in place; returns what the scan finds afterwards (normally nothing)."""
    patterns = patterns if patterns is not None else PATTERNS + machine_patterns()
    for path in _files(run_dir):
        original = path.read_text(encoding="utf-8", errors="replace")
        text = original
        for kind, pattern in patterns:
            text = pattern.sub(f"[REDACTED:{kind}]", text)
        if text != original:
            _check_still_valid(path, text)
            tmp = path.with_suffix(path.suffix + ".redacting")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
    return scan(run_dir, patterns)
