"""struct: JSON, YAML, CSV and Markdown tables, parsed for real and checked by path and schema.

JSON is read strictly (datafiles.parse_json), YAML with the strict loader and must be a mapping
or a list; CSV and Markdown tables become a header and rows that the table checks read.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import jsonschema
import yaml

from orchestrator.core import datafiles
from orchestrator.evaluate.quality.packs import Scenario
from orchestrator.evaluate.quality.verdict import (EXTRA_FIELDS, INVALID_JSON, MISSING_FIELD, NO_ANSWER_FOUND, SCHEMA_VIOLATION, WRONG_ANSWER,
                       WRONG_STRUCTURE, Verdict, answer_text, fail, ok, range_problem, same_json, unfenced)

VERSION = 2  # 2: every check is judged and counted (check-level accuracy); the verdict is the first failure's, as before

_PATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")
_MISSING = object()


def check(scenario: Scenario, message: dict[str, Any]) -> Verdict:
    text = answer_text(message)
    specs = scenario.verifier["checks"]
    if not text:
        return fail(NO_ANSWER_FOUND, "no answer text", checks=(0, len(specs)))
    fmt = scenario.verifier["format"]
    parsed = _parse(fmt, unfenced(text))
    if isinstance(parsed, Verdict):
        return fail(parsed.failure_mode, parsed.detail, checks=(0, len(specs)))
    problems = [problem for spec in specs
                if (problem := _document_problem(spec, parsed) if fmt in ("json", "yaml") else _table_problem(spec, *parsed))]
    met = (len(specs) - len(problems), len(specs))
    return fail(*problems[0], checks=met) if problems else ok(checks=met)


def _parse(fmt: str, body: str) -> Any:
    if fmt == "json":
        try:
            return datafiles.parse_json(body)
        except ValueError as exc:
            return fail(INVALID_JSON, f"not JSON: {exc}")
    if fmt == "yaml":
        try:
            document = datafiles.parse_yaml(body)
        except yaml.YAMLError as exc:
            return fail(WRONG_STRUCTURE, f"not YAML: {str(exc).splitlines()[0]}")
        if not isinstance(document, (dict, list)):
            return fail(WRONG_STRUCTURE, f"YAML is a {type(document).__name__}, not a mapping or list")
        return document
    rows = _csv_rows(body) if fmt == "csv" else _markdown_rows(body)
    if not rows or len(rows[0]) < 2:
        return fail(WRONG_STRUCTURE, f"no {fmt} table with at least two columns")
    return rows[0], rows[1:]


def _csv_rows(body: str) -> list[list[str]]:
    try:
        return [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(body)) if any(c.strip() for c in row)]
    except csv.Error:
        return []


def _markdown_rows(body: str) -> list[list[str]]:
    """The first pipe table: a header row, a `---` separator of the same width, then its rows."""
    lines = [line.strip() for line in body.splitlines()]
    for i in range(len(lines) - 1):
        header, separator = _cells(lines[i]), _cells(lines[i + 1])
        if header and len(separator) == len(header) and all(re.fullmatch(r":?-{3,}:?", c) for c in separator):
            rows = [header]
            for line in lines[i + 2:]:
                cells = _cells(line)
                if not cells:
                    break
                rows.append(cells)
            return rows
    return []


def _cells(line: str) -> list[str]:
    if not (line.startswith("|") and line.endswith("|") and len(line) > 1):
        return []
    return [cell.strip() for cell in line[1:-1].split("|")]


def resolve(document: Any, path: str) -> Any:
    """`$.a.b[0].c` into the document; _MISSING where a step does not exist."""
    node, rest = document, path[1:]
    while rest:
        match = _PATH_STEP.match(rest)
        if not match:
            raise ValueError(f"bad path {path!r}")  # paths are pack data; the schema only checks the leading $
        key, index = match.groups()
        if key is not None:
            node = node.get(key, _MISSING) if isinstance(node, dict) else _MISSING
        else:
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else _MISSING
        if node is _MISSING:
            return _MISSING
        rest = rest[match.end():]
    return node


def _document_problem(spec: dict[str, Any], document: Any) -> tuple[str, str] | None:
    kind = spec["check"]
    if kind == "schema":
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(spec["schema"]).iter_errors(document))
        return (SCHEMA_VIOLATION, f"{datafiles.field_path(error.absolute_path)}: {error.message}") if error else None
    if kind == "equals":
        return None if same_json(document, spec["value"]) else (WRONG_ANSWER, "differs from the exact document asked for")
    if kind == "keys":
        if not isinstance(document, dict):
            return WRONG_STRUCTURE, "not an object"
        missing = [k for k in spec["exactly"] if k not in document]
        extra = [k for k in document if k not in spec["exactly"]]
        if missing:
            return MISSING_FIELD, f"missing key(s) {missing}"
        return (EXTRA_FIELDS, f"extra key(s) {extra}") if extra else None
    value = resolve(document, spec["path"])
    where = spec["path"]
    if value is _MISSING:
        return MISSING_FIELD, f"{where} missing"
    if "equals" in spec and not same_json(value, spec["equals"]):
        return WRONG_ANSWER, f"{where} = {value!r}, expected {spec['equals']!r}"
    if "regex" in spec and not (isinstance(value, str) and re.fullmatch(spec["regex"], value.strip())):
        return WRONG_ANSWER, f"{where} = {value!r} does not match /{spec['regex']}/"
    if "length" in spec and not (isinstance(value, (list, dict, str)) and len(value) == spec["length"]):
        return WRONG_ANSWER, f"{where} has length {len(value) if hasattr(value, '__len__') else '?'}, expected {spec['length']}"
    problem = range_problem(where, value, spec)
    return (WRONG_ANSWER, problem) if problem else None


def _table_problem(spec: dict[str, Any], header: list[str], rows: list[list[str]]) -> tuple[str, str] | None:
    kind = spec["check"]
    if kind == "columns":
        wanted = [n.casefold() for n in spec["names"]]
        return None if [h.casefold() for h in header] == wanted else (WRONG_STRUCTURE, f"columns {header}, expected {spec['names']}")
    if kind == "rows":
        low, high = spec.get("min", 1), spec.get("max", len(rows))
        return None if low <= len(rows) <= high else (WRONG_STRUCTURE, f"{len(rows)} data rows, expected {low}..{high}")
    column = _column(header, spec["column"])
    if column is None:
        return MISSING_FIELD, f"no column {spec['column']!r}"
    if kind == "column_numeric":
        bad = [row[column] if column < len(row) else "" for row in rows
               if column >= len(row) or not re.fullmatch(r"-?\d+(?:\.\d+)?", row[column])]
        if not rows or bad:
            return WRONG_ANSWER, f"column {spec['column']!r} not numeric: {bad[:3]}"
        return None
    if spec["row"] >= len(rows) or column >= len(rows[spec["row"]]):
        return MISSING_FIELD, f"no cell at row {spec['row']}, column {spec['column']!r}"
    cell = rows[spec["row"]][column]
    if "equals" in spec and cell.casefold() != spec["equals"].casefold():
        return WRONG_ANSWER, f"row {spec['row']} {spec['column']} = {cell!r}, expected {spec['equals']!r}"
    if "regex" in spec and not re.fullmatch(spec["regex"], cell):
        return WRONG_ANSWER, f"row {spec['row']} {spec['column']} = {cell!r} does not match /{spec['regex']}/"
    return None


def _column(header: list[str], name: str) -> int | None:
    folded = [h.casefold() for h in header]
    return folded.index(name.casefold()) if name.casefold() in folded else None
