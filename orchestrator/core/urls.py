"""Credentials in URLs, stripped from everything weeyuga records (ledger, manifest, catalogue)."""

from __future__ import annotations

import re

# Userinfo in a URL (`scheme://user:pass@`); never a quote or backslash, so JSON text stays valid.
URL_CREDENTIALS = re.compile(r"(?<=://)[^\s/?#@\"'\\<>]+:[^\s/?#@\"'\\<>]*@")


def strip_url_credentials(text: str) -> str:
    """`http://user:pass@host` -> `http://host`: applied to everything weeyuga records."""
    return URL_CREDENTIALS.sub("", text)
