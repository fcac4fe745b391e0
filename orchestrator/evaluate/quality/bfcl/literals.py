"""Java and JavaScript argument values: the model writes each as a literal in a string, and BFCL
reads it by these rules before comparing it with the possible answers.

A literal that does not have the expected shape stays the string it was (and then matches only a
possible answer that is that very string). Rules that surprise, kept because BFCL's checker
applies them: a Java `char` is never read (it stays as written, quotes included); a Java
`String[]` array keeps each element's quotes; JavaScript floats have no exponent form; a
JavaScript `dict` is read by a shallow `key: value` split. `Unsupported` is a type BFCL's
checker cannot read at all (it raises).
"""

from __future__ import annotations

import re
from typing import Any

JAVA_TYPES = {"byte": int, "short": int, "integer": int, "float": float, "double": float, "long": int, "boolean": bool,
              "char": str, "Array": list, "ArrayList": list, "Set": set, "HashMap": dict, "Hashtable": dict,
              "Queue": list, "Stack": list, "String": str, "any": str}
JAVASCRIPT_TYPES = {"String": str, "integer": int, "float": float, "Bigint": int, "Boolean": bool, "dict": dict,
                    "array": list, "any": str}

_INTEGER = re.compile(r"^-?\d+$")
_JAVA_FLOAT = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?[fF]$")
_JAVA_DOUBLE = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")
_JAVA_LONG = re.compile(r"^-?\d+[lL]$")
_JS_FLOAT = re.compile(r"^-?\d+(\.\d+)?$")
_JS_BIGINT = re.compile(r"^-?\d+n$")

_ARRAYLIST_OF = re.compile(r"new\s+ArrayList<\w*>\(Arrays\.asList\((.+?)\)\)")
_ARRAYLIST_ADDS = re.compile(r"new\s+ArrayList<\w*>\(\)\s*\{\{\s*(.+?)\s*\}\}", re.S)
_ARRAYLIST_EMPTY = re.compile(r"new\s+ArrayList<\w*>\(\)")
_ADD = re.compile(r"add\((.+?)\)")
_ARRAY = re.compile(r"new\s+\w+\[\]\s*\{(.*?)\}")
_HASHMAP = re.compile(r"new\s+HashMap<.*?>\s*\(\)\s*\{\s*\{?\s*(.*?)\s*\}?\s*\}", re.S)
_HASHMAP_EMPTY = re.compile(r"new\s+HashMap<.*?>\s*\(\)")
_PUT = re.compile(r"put\(\"(.*?)\",\s*(.*?)\)")

_JS_ARRAY_2D = re.compile(r"\[\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\]|\bnew\s+Array\(\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\)")
_JS_ARRAY = re.compile(r"\[(.*?)\]|\bnew\s+Array\((.*?)\)")
_BRACKETED = re.compile(r"\[(.*?)\]")
_JS_OBJECT = re.compile(r"\{(.*?)\}")
_JS_PAIR = re.compile(r"([^:]+):\s*(.*?)(?:,\s*(?=[^,]+:)|$)")


class Unsupported(Exception):
    """A declared type BFCL's checker has no reading for."""


def _drop_suffix(text: str, letters: str) -> str:
    return re.sub(f"[{letters}]$", "", text)


def _quoted(text: str, quotes: str) -> bool:
    return any(text.startswith(q) and text.endswith(q) for q in quotes)


def _number_or_text(text: str) -> Any:
    """Python's own int(), then float(), else the text."""
    for read in (int, float):
        try:
            return read(text)
        except ValueError:
            pass
    return text


# ---------------------------------------------------------------------------------------
# Java


def read_java(text: str, kind: str, element: str | None = None) -> Any:
    """A Java literal of declared type `kind` (`element`: the type of an Array/ArrayList's items)."""
    if kind not in JAVA_TYPES:
        raise Unsupported(f"Java type {kind!r}")
    if kind in ("byte", "short", "integer"):
        return int(text) if _INTEGER.match(text) else text
    if kind == "float":
        return float(_drop_suffix(text, "fF")) if _JAVA_FLOAT.match(text) else text
    if kind == "double":
        return float(text) if _JAVA_DOUBLE.match(text) else text
    if kind == "long":
        return int(_drop_suffix(text, "lL")) if _JAVA_LONG.match(text) else text
    if kind == "boolean":
        return text == "true" if text in ("true", "false") else text
    if kind == "ArrayList":
        return _java_arraylist(text, element)
    if kind == "Array":
        return _java_array(text, element)
    if kind == "HashMap":
        return _java_hashmap(text)
    if kind in ("Set", "Hashtable", "Queue", "Stack"):
        raise Unsupported(f"Java type {kind!r}")
    return text  # char, String, any: compared as written


def _java_item(text: str, element: str | None) -> Any:
    if element in ("char", "String"):
        return text[1:-1]
    return read_java(text, element) if element else java_value(text)


def _java_arraylist(text: str, element: str | None) -> Any:
    match = _ARRAYLIST_OF.search(text)
    if match:
        return [_java_item(part.strip(), element) for part in match.group(1).split(",")]
    match = _ARRAYLIST_ADDS.search(text)
    if match:
        return [_java_item(part.strip(), element) for part in _ADD.findall(match.group(1))]
    return [] if _ARRAYLIST_EMPTY.search(text) else text


def _java_array(text: str, element: str | None) -> Any:
    match = _ARRAY.search(text)
    if not match:
        return text
    parts = [part.strip() for part in match.group(1).split(",") if part.strip()]
    return [read_java(part, element) if element else java_value(part) for part in parts]


def _java_hashmap(text: str) -> Any:
    match = _HASHMAP.search(text)
    if match:
        body = match.group(1)
        return {key: java_value(value.strip()) for key, value in _PUT.findall(body)} if body.strip() else {}
    return {} if _HASHMAP_EMPTY.search(text) else text


def java_value(text: str) -> Any:
    """A Java literal of unstated type: boolean, "string", long (L), float (f), else a number or the text."""
    if text in ("true", "false"):
        return text == "true"
    if _quoted(text, '"'):
        return text[1:-1]
    if _JAVA_LONG.match(text):
        return int(text[:-1])
    if _JAVA_FLOAT.match(text):
        return float(_drop_suffix(text, "fF"))
    return _number_or_text(text)


# ---------------------------------------------------------------------------------------
# JavaScript


def read_javascript(text: str, kind: str, element: str | None = None) -> Any:
    if kind not in JAVASCRIPT_TYPES:
        raise Unsupported(f"JavaScript type {kind!r}")
    if kind == "String":
        return text[1:-1] if _quoted(text, "\"'") else text
    if kind == "integer":
        return int(text) if _INTEGER.match(text) else text
    if kind == "float":
        return float(text) if _JS_FLOAT.match(text) else text
    if kind == "Bigint":
        return int(text[:-1]) if _JS_BIGINT.match(text) else text
    if kind == "Boolean":
        return text == "true" if text in ("true", "false") else text
    if kind == "dict":
        return _js_object(text.strip())
    if kind == "array":
        return _js_array(text.strip(), element)
    return text  # any


def _js_array(code: str, element: str | None) -> Any:
    try:
        match = _JS_ARRAY_2D.match(code)
        if match:
            rows = []
            for index, row in enumerate(_BRACKETED.findall(match.group(0))):
                row = row.strip()
                if index == 0 and row.startswith("["):
                    row = row[1:]
                rows.append([javascript_value(part.strip()) for part in row.split(",")])
            return rows
        match = _JS_ARRAY.match(code)
        if not match:
            return code
        body = next((group for group in match.groups() if group is not None), "").strip()
        parts = body.split(",") if body else []
        if not element:
            return [javascript_value(part.strip()) for part in parts]
        # A quoted element is read as a string whatever the element type; BFCL passes "String" as
        # the (unused) element type there, which does not change the reading.
        return [read_javascript(part.strip(), element) for part in parts]
    except (Unsupported, ValueError):
        return code


def _js_object(code: str) -> Any:
    if code == "{}":
        return {}
    match = _JS_OBJECT.match(code)
    if not match:
        return code
    try:
        result = {}
        for key, value in _JS_PAIR.findall(match.group(1)):
            key, value = key.strip().strip("'\""), value.strip()
            if value.startswith("[") and value.endswith("]"):
                result[key] = _js_array(value, None)
            elif value.startswith("{") and value.endswith("}"):
                result[key] = _js_object(value)
            else:
                result[key] = javascript_value(value.strip("'\""))
        return result
    except (Unsupported, ValueError):
        return code


def javascript_value(text: str) -> Any:
    """A JavaScript literal of unstated type: boolean, quoted string, else a number or the text."""
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if _quoted(text, "\"'"):
        return text[1:-1]
    return _number_or_text(text)
