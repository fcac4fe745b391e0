"""The `weeyuga` command: parse arguments, call one library function, render its result.

One module per command group; each registers its commands (common.command) and adds its parsers.
"""

from __future__ import annotations

import errno
import os
import sys

from orchestrator import __version__
from orchestrator.core.errors import WeeyugaError
from orchestrator.cli import agent, auto, plan, publish, quality, review, run, runtime, sandbox, tune
from orchestrator.cli.common import COMMANDS, OneLineParser

GROUPS = [plan, runtime, run, agent, auto, tune, publish, review, quality, sandbox]  # in the order `weeyuga --help` lists them


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="weeyuga", description="A local-LLM benchmark node in one command.")
    parser.add_argument("--version", action="version", version=f"weeyuga {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except WeeyugaError as exc:
        print(f"weeyuga: error: {exc}", file=sys.stderr)  # one line, except a launch failure's log tail
        return exc.exit_code
    except KeyboardInterrupt:
        print("weeyuga: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except OSError as exc:  # the disk, not the input: full, read-only, forbidden
        where = exc.filename or "a file"
        print(f"weeyuga: error: {where}: {exc.strerror or exc}"
              + ("; free some space, then resume" if exc.errno == errno.ENOSPC else ""), file=sys.stderr)
        return 1
    except Exception as exc:  # last resort: every known bad input has its own message above this line
        if os.environ.get("WEEYUGA_DEBUG"):
            raise
        print(f"weeyuga: internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]} (please report this bug; "
              "WEEYUGA_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
