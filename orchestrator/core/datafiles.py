"""Load and validate the data files that drive behaviour (rules, models, runtimes, suites).

YAML is read with StrictLoader (a yaml.SafeLoader that refuses aliases and duplicate keys and
reads YAML 1.2 floats such as `1e300`), JSON with a JSON parser; NaN and infinities are refused
in both. Only regular files are read, and only up to a size cap: a FIFO or /dev/zero is refused,
not waited on. Each document is checked against a JSON Schema in orchestrator/core/schemas/.
Errors name the file and the field or line, in one line.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import jsonschema_rs
import yaml

from orchestrator.core.errors import BadInput, read_failure

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
DOCUMENT_LIMIT_BYTES = 16 * 2**20  # rule tables, hardware.json, manifests: kilobytes in practice
LEDGER_LIMIT_BYTES = 1 * 2**30  # run.jsonl / responses.jsonl of a long run
LINE_LIMIT_BYTES = 16 * 2**20  # one ledger line: a response with its reasoning is kilobytes
LEDGER_RECORD_LIMIT = 50_000  # records a reader holds at once (report, review, resume: ~6 KB each in memory);
# a run writes hundreds to a few thousand, and the catalogue streams past this
MAX_JSON_DEPTH = 64  # weeyuga's own documents nest a handful of levels; deeper is hostile (RecursionError)


@lru_cache(maxsize=None)
def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


def field_path(parts) -> str:
    """Render a jsonschema path as `a.b[2].c`; `(top level)` when empty. A name that is not printable
    (a hostile file's "\\n" key) is shown quoted, so the message stays one line."""
    out = ""
    for part in parts:
        name = part if isinstance(part, int) or str(part).isprintable() else repr(part)
        out += f"[{name}]" if isinstance(part, int) else (f".{name}" if out else str(name))
    return out or "(top level)"


@lru_cache(maxsize=None)
def reference_validator(name: str) -> Any:
    """jsonschema's validator, whose verdict and messages stand. Imported on first use: a third of a
    second of start-up (`weeyuga decide`) for a path only a rejected document takes. A schema may
    `$ref` another by its file name (run-record's quality lines use quality-record's rules)."""
    import jsonschema
    import referencing

    registry = referencing.Registry(retrieve=lambda uri: referencing.Resource.from_contents(
        schema(uri.removesuffix(".schema.json"))))
    return jsonschema.Draft202012Validator(schema(name), registry=registry)


@lru_cache(maxsize=None)
def fast_validator(name: str) -> Any:
    """jsonschema-rs's validator, or None for a schema it cannot build (one that `$ref`s another file)."""
    try:
        return jsonschema_rs.Draft202012Validator(schema(name))
    except Exception:  # noqa: BLE001 - the reference validator below decides instead
        return None


def validate(document: Any, schema_name: str, source: str) -> None:
    """Raise BadInput naming `source` and the first offending field.

    jsonschema-rs answers "valid" about 200x faster (the catalogue validates tens of thousands of
    documents); a document it rejects, or cannot take (an integer beyond 64 bits), is checked again
    by jsonschema, whose verdict and message stand."""
    fast = fast_validator(schema_name)
    with contextlib.suppress(Exception):  # any surprise in the fast path: the reference validator decides
        if fast is not None and fast.is_valid(document):
            return
    from jsonschema.exceptions import best_match

    error = best_match(reference_validator(schema_name).iter_errors(document))
    if error is not None:
        message = error.message if len(error.message) <= 160 else error.message[:160] + "…"  # it quotes the value
        message = message.replace("\n", "\\n").replace("\r", "\\r")
        raise BadInput(f"{source}: field {field_path(error.absolute_path)}: {message}")


def open_regular(path: Path, limit: int) -> int:
    """A descriptor on a regular file of at most `limit` bytes. Opened non-blocking so a FIFO cannot
    hang us; devices, folders and files over `limit` are refused before anything is read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise read_failure(path, exc) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise BadInput(f"{path}: is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise BadInput(f"{path}: not a regular file (a device, FIFO or socket); refusing to read it")
        if info.st_size > limit:
            raise BadInput(f"{path}: {info.st_size} bytes is more than the {limit} this file may have")
    except BaseException:
        os.close(fd)
        raise
    return fd


def iter_lines(path: Path, limit: int = LEDGER_LIMIT_BYTES, line_limit: int = LINE_LIMIT_BYTES) -> Iterator[tuple[int, bytes]]:
    """(line number, the line's bytes with its newline) of a regular file, read as a stream: memory holds
    one line, never the file. Only the last line can lack its newline (its caller decides what a torn one
    means); a line over `line_limit` bytes, or a file that grew past `limit` while read, is BadInput."""
    fd = open_regular(path, limit)
    try:
        with os.fdopen(fd, "rb", closefd=False) as fh:
            size = 0
            for number, line in enumerate(iter(lambda: fh.readline(line_limit + 2), b""), 1):
                size += len(line)
                if len(line.rstrip(b"\n")) > line_limit:
                    raise BadInput(f"{path}:{number}: a line longer than {line_limit} bytes; refusing to read it")
                if size > limit:
                    raise BadInput(f"{path}: more than the {limit} bytes this file may have")
                yield number, line
    except OSError as exc:
        raise read_failure(path, exc) from None
    finally:
        os.close(fd)


def read_bytes(path: Path, limit: int = DOCUMENT_LIMIT_BYTES) -> bytes:
    """A regular file's bytes (open_regular: no FIFO, device or folder, nothing over `limit`)."""
    fd = open_regular(path, limit)
    try:
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, min(2**20, limit + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise read_failure(path, exc) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise BadInput(f"{path}: more than the {limit} bytes this file may have")
    return data


# ---------------------------------------------------------------------------------------
# JSON


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a number")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"duplicate key {key!r}")
        document[key] = value
    return document


def parse_json(text: str | bytes) -> Any:
    """json.loads that refuses NaN, Infinity, numbers that overflow to them, duplicate keys and nesting
    deeper than MAX_JSON_DEPTH (ValueError, as json.loads raises for any other malformed text)."""
    openers = text.count(b"[") + text.count(b"{") if isinstance(text, bytes) else text.count("[") + text.count("{")
    try:
        document = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float,
                              object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ValueError(f"nested deeper than the {MAX_JSON_DEPTH} levels a document may have") from None
    if openers > MAX_JSON_DEPTH:  # only then can it be that deep; the walk costs time in proportion to the size
        check_depth(document)
    return document


def check_depth(document: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """ValueError when arrays and objects nest deeper than `limit` (iterative: a deep one cannot overflow the stack)."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    raise ValueError(f"nested deeper than the {limit} levels a document may have")
                stack.append((child, depth + 1))


def read_json(path: Path, limit: int = DOCUMENT_LIMIT_BYTES) -> Any:
    return decode_json(read_bytes(path, limit), path)


def decode_json(data: bytes, path: Path) -> Any:
    """parse_json for bytes already read from `path` (the catalogue hashes them first)."""
    try:
        return parse_json(data)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path} (line {exc.lineno}): not valid JSON: {exc.msg}") from None
    except ValueError as exc:  # a refused constant or key, or bytes that are not UTF-8
        raise BadInput(f"{path}: not valid JSON: {exc}") from None


# ---------------------------------------------------------------------------------------
# YAML

# YAML 1.2's float: YAML 1.1 (PyYAML) needs a dot, so it reads `1e300` as a string.
_YAML12_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader without the traps of hostile input: aliases (an alias bomb expands
    exponentially) and duplicate keys (the last silently wins) are refused with their line;
    `.nan` / `.inf` are refused, `1e300` is a float."""

    yaml_implicit_resolvers = {first: list(resolvers) for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} is not allowed in weeyuga's data files",
                                              event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) or key is None:
                    if key in seen:
                        raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
                    seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_yaml_float(self, node):
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise yaml.constructor.ConstructorError(None, None, f"{node.value} is not a finite number", node.start_mark)
        return value


StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+0123456789"))
StrictLoader.add_constructor("tag:yaml.org,2002:float", StrictLoader.construct_yaml_float)


def parse_yaml(text: str) -> Any:
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_document(path: Path, limit: int = DOCUMENT_LIMIT_BYTES) -> Any:
    """Parse a JSON (by its suffix) or YAML file; a missing, oversized or unparsable file is BadInput."""
    if Path(path).suffix == ".json":
        return read_json(path, limit)
    try:
        text = read_bytes(path, limit).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise BadInput(f"{path}{where}: {problem}") from None


def load(path: Path, schema_name: str) -> Any:
    document = read_document(path)
    validate(document, schema_name, str(path))
    return document
