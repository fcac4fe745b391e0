"""The command that reproduces a run, as the ledger, manifest.json and run.md keep it: without the
volunteer's local paths.

Where the run was written (`--submissions-dir`) and which run it continued (`--resume`) are not
part of what was measured, so they are dropped; a file given as input (`--hardware`, `--model-path`)
keeps only its file name; any other argument that is an absolute or home path (`/home/...`,
`~/...`, `C:\\Users\\...`) is cut to its last part the same way. Applied when the command is
recorded and again when run.md prints it, so an older ledger's command is shown clean too.
"""

from __future__ import annotations

import re
from typing import Sequence

DROPPED_OPTIONS = ("--submissions-dir", "--resume")
FILE_OPTIONS = ("--hardware", "--model-path", "--log", "--out", "--path")
LOCAL_PATH = re.compile(r"^(?:/|~|[A-Za-z]:[\\/]|\\\\)")


def _file_name(value: str) -> str:
    return re.split(r"[\\/]", value.rstrip("\\/"))[-1] or value


def portable_command(argv: Sequence[str]) -> list[str]:
    """argv (starting with the program name) without local paths; everything else as given."""
    out: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        name, joined, value = arg.partition("=")
        if name in DROPPED_OPTIONS:
            index += 1 if joined else 2
            continue
        if name in FILE_OPTIONS and joined:
            out.append(f"{name}={_file_name(value)}")
        elif name in FILE_OPTIONS and index + 1 < len(argv):
            out += [name, _file_name(argv[index + 1])]
            index += 1
        else:
            out.append(_file_name(arg) if LOCAL_PATH.match(arg) else arg)
        index += 1
    return out
