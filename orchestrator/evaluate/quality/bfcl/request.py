"""The request for one BFCL question, made as BFCL's OpenAI-compatible function-calling handler makes it.

BFCL sends the question's first turn as it stands (no system prompt of its own in function-calling
mode) and the functions as OpenAI tools after two rewrites: a language note on every description
(and, for Java and JavaScript, every parameter typed `string`, its real type named in its
description, since those values are to be written as the language's literals), then BFCL's type
names mapped to JSON Schema (`dict` → `object`, `float` → `number` with a note, `tuple` → `array`,
anything unknown → `string`) and the `.` OpenAI rejects in a tool name replaced by `_`. The
checker compares names in that renamed form, so the mapping back is the same rewrite.
"""

from __future__ import annotations

import copy
import json
from typing import Any

# BFCL's type names → JSON Schema's; a type not listed is sent as string.
SCHEMA_TYPES = {"integer": "integer", "number": "number", "float": "number", "string": "string", "boolean": "boolean",
                "bool": "boolean", "array": "array", "list": "array", "dict": "object", "object": "object",
                "tuple": "array", "any": "string", "byte": "integer", "short": "integer", "long": "integer",
                "double": "number", "char": "string", "ArrayList": "array", "Array": "array", "HashMap": "object",
                "Hashtable": "object", "Queue": "array", "Stack": "array", "Any": "string", "String": "string",
                "Bigint": "integer"}
LANGUAGE_NOTES = {"python": " Note that the provided function is in Python 3 syntax.",
                  "java": " Note that the provided function is in Java 8 SDK syntax.",
                  "javascript": " Note that the provided function is in JavaScript syntax."}
LANGUAGE_NAMES = {"java": "Java", "javascript": "JavaScript"}
# The list-typed parameters whose element type goes into the description (their `items` are dropped).
LITERAL_LISTS = {"java": ("ArrayList", "Array"), "javascript": ("array",)}


def sent_name(name: str) -> str:
    """A function's name as the model sees it (and as BFCL's checker compares it)."""
    return name.replace(".", "_")


def question_messages(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The question's first (only) turn, as BFCL sends it."""
    return [dict(message) for message in entry["question"][0]]


def openai_tools(functions: list[dict[str, Any]], language: str) -> list[dict[str, Any]]:
    tools = []
    for function in copy.deepcopy(functions):
        function["description"] = function.get("description", "") + LANGUAGE_NOTES[language]
        properties = function["parameters"]["properties"]
        if language in LANGUAGE_NAMES:
            for spec in properties.values():
                _as_literal_string(spec, language)
        function["name"] = sent_name(function["name"])
        function["parameters"]["type"] = "object"
        function["parameters"]["properties"] = _schema_types(properties)
        tools.append({"type": "function", "function": function})
    return tools


def _as_literal_string(spec: dict[str, Any], language: str) -> None:
    """A Java/JavaScript parameter becomes a string holding a literal of its real type."""
    kind, name = spec["type"], LANGUAGE_NAMES[language]
    spec["description"] = spec.get("description", "") + (
        f" This parameter can be of any type of {name} object in string representation." if kind == "any"
        else f" This is {name} {kind} type parameter in string representation.")
    if kind in LITERAL_LISTS[language]:
        spec["description"] += f" The list elements are of type {spec['items']['type']}; they are not in string representation."
        del spec["items"]
    if language == "javascript" and kind == "dict" and "properties" in spec:
        spec["description"] += (" The dictionary entries have the following schema; they are not in string representation. "
                                + json.dumps(spec.pop("properties")))
    spec["type"] = "string"


def _schema_types(properties: dict[str, Any]) -> dict[str, Any]:
    """BFCL's types → JSON Schema's, through object properties and up to two levels of list items."""
    for spec in properties.values():
        kind = spec.get("type")
        if kind == "float":
            spec["format"] = "float"
            spec["description"] = spec.get("description", "") + " This is a float type value."
        spec["type"] = SCHEMA_TYPES.get(kind, "string") if kind is not None else "string"
        if spec["type"] not in ("array", "object"):
            continue
        if "properties" in spec:
            spec["properties"] = _schema_types(spec["properties"])
        elif "items" in spec:
            items = spec["items"]
            items["type"] = SCHEMA_TYPES[items["type"]]
            if items["type"] == "array" and "items" in items:
                items["items"]["type"] = SCHEMA_TYPES[items["items"]["type"]]
            elif items["type"] == "object" and "properties" in items:
                items["properties"] = _schema_types(items["properties"])
    return properties
