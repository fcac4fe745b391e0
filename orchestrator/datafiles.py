"""Load and validate the data files that drive behaviour (rules, models, runtimes, suites).

Every file is read with yaml.safe_load (JSON is YAML) and checked against a JSON Schema
in orchestrator/schemas/. Errors name the file and the field, in one line.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import BadInput

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


@lru_cache(maxsize=None)
def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


def field_path(parts) -> str:
    """Render a jsonschema path as `a.b[2].c`; `(top level)` when empty."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate(document: Any, schema_name: str, source: str) -> None:
    """Raise BadInput naming `source` and the first offending field."""
    validator = jsonschema.Draft202012Validator(schema(schema_name))
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        raise BadInput(f"{source}: field {field_path(error.absolute_path)}: {error.message}")


def read_document(path: Path) -> Any:
    """Parse a YAML or JSON file; a missing or unparsable file is BadInput."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML/JSON"
        raise BadInput(f"{path}{where}: {problem}") from None


def load(path: Path, schema_name: str) -> Any:
    document = read_document(path)
    validate(document, schema_name, str(path))
    return document
