"""Responses to BFCL questions built from their own possible answers: the answer itself and its
near misses (an argument changed, a type changed, a call added, dropped or renamed, parallel
calls reordered, a call where none is wanted ...). The fake server in the BFCL tests answers with
these, and benchmarks/bench_quality_parity.py sends them to BFCL's own checker.

Java and JavaScript arguments are written as those languages' literals (`literal`), and again as
plain JSON text (BFCL rejects most of those).
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from orchestrator.evaluate.quality.bfcl.request import sent_name

JAVA_ELEMENT_NAMES = {"integer": "int", "long": "long", "double": "double", "float": "float", "boolean": "boolean",
                      "String": "String", "char": "char", "byte": "byte", "short": "short"}


def message(calls: list[tuple[str, Any]] | None = None, content: str | None = None) -> dict[str, Any]:
    """An assistant message; arguments that are not a str are JSON-encoded."""
    tool_calls = [{"id": f"call_{i}", "type": "function",
                   "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
                  for i, (name, args) in enumerate(calls or [])]
    return {"role": "assistant", "content": content, "reasoning_content": None, "tool_calls": tool_calls}


def pick(options: list, last: bool = False) -> tuple[bool, Any]:
    """(present, value): the first (or last) allowed value that is not the optional marker "",
    with a dict's own allowed values picked in turn."""
    allowed = [o for o in options if o != ""]
    if not allowed:
        return False, None
    return True, unwrap(allowed[-1] if last else allowed[0], last)


def unwrap(value: Any, last: bool = False) -> Any:
    if isinstance(value, dict):
        picked = {key: pick(options, last) if isinstance(options, list) else (True, options) for key, options in value.items()}
        return {key: v for key, (present, v) in picked.items() if present}
    if isinstance(value, list):
        return [unwrap(item, last) for item in value]
    return value


def _element(value: Any, quote: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"{quote}{value}{quote}"
    return json.dumps(value)


def literal(value: Any, spec: dict[str, Any], language: str) -> str:
    """`value` written as the model should write a Java/JavaScript argument of this declared type."""
    kind = spec.get("type")
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if language == "java":
        if kind == "long" and isinstance(value, int):
            return f"{value}L"
        if kind == "float" and isinstance(value, (int, float)):
            return f"{value}f"
        if kind == "Array" and isinstance(value, list):
            element = spec.get("items", {}).get("type", "Object")
            return f"new {JAVA_ELEMENT_NAMES.get(element, element)}[]{{{', '.join(_element(v, chr(34)) for v in value)}}}"
        if kind == "ArrayList" and isinstance(value, list):
            return f"new ArrayList<>(Arrays.asList({', '.join(_element(v, chr(34)) for v in value)}))"
        if kind == "HashMap" and isinstance(value, dict):
            puts = " ".join(f'put("{k}", {_element(v, chr(34))});' for k, v in value.items())
            return f"new HashMap<String, Object>() {{{{ {puts} }}}}"
    else:
        if kind == "Bigint" and isinstance(value, int):
            return f"{value}n"
        if isinstance(value, list):
            return "[" + ", ".join(_element(v, "'") for v in value) + "]"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {_element(v, chr(39))}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _declared(functions: list[dict], name: str) -> dict[str, Any]:
    return next((f for f in functions if f["name"] == name), functions[0])


def answer_calls(verifier: dict[str, Any], last: bool = False, as_literals: bool = True) -> list[tuple[str, dict]]:
    """The possible answers as calls (name as sent, arguments as the model writes them)."""
    calls = []
    for answer in verifier["answers"]:
        name, params = next(iter(answer.items()))
        properties = _declared(verifier["functions"], name)["parameters"]["properties"]
        arguments = {}
        for param, options in params.items():
            present, value = pick(options, last)
            if not present:
                continue
            if verifier["language"] != "python":
                value = literal(value, properties.get(param, {}), verifier["language"]) if as_literals else (
                    value if isinstance(value, str) else json.dumps(value))
            arguments[param] = value
        calls.append((sent_name(name), arguments))
    return calls


def changed(value: Any) -> Any:
    """Another value of the same type, one BFCL's string rule does not forgive."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 7
    if isinstance(value, str):
        return value + "zq"
    if isinstance(value, list):
        return value + value[:1] if value else ["zq"]
    if isinstance(value, dict):
        return {**value, "zq": 1}
    return "zq"


def retyped(value: Any) -> Any:
    """The same value in another type: a number as text, a text as a number, a whole float as an int."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return 42
    if isinstance(value, list):
        return json.dumps(value)
    return [value]


def _with_argument(calls, index, edit):
    """`calls` with one argument of call `index` edited (the first one, or the call unchanged)."""
    name, arguments = calls[index]
    if not arguments:
        return None
    param = sorted(arguments)[index % len(arguments)]
    edited = dict(arguments)
    edit(edited, param)
    return calls[:index] + [(name, edited)] + calls[index + 1:]


def _normalised(text: str) -> str:
    """What BFCL's string rule forgives: case, spaces and ,./-_*^ punctuation."""
    return text.upper().replace(" ", "-") if " " in text else text.upper() + "."


def variants(verifier: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, assistant message) for one BFCL question."""
    functions, language = verifier["functions"], verifier["language"]
    if verifier["answers"] is None:  # relevance / irrelevance
        first = functions[0] if functions else {"name": "lookup", "parameters": {"required": []}}
        required = {p: "x" for p in first["parameters"].get("required", [])}
        yield "prose", message(content="I cannot help with that using these tools.")
        yield "empty", message(content="")
        yield "call-empty-args", message([(sent_name(first["name"]), {})])
        yield "call-required-args", message([(sent_name(first["name"]), required)])
        yield "call-not-json", message([(sent_name(first["name"]), "{not json")])
        yield "call-args-not-object", message([(sent_name(first["name"]), "[1]")])
        return
    calls = answer_calls(verifier)
    yield "answer", message(calls)
    yield "answer-last-options", message(answer_calls(verifier, last=True))
    if language != "python":
        yield "answer-json-text", message(answer_calls(verifier, as_literals=False))
    python_calls = answer_calls({**verifier, "language": "python"})
    for index in range(len(calls)):
        def change(args, param, i=index):
            value = python_calls[i][1].get(param)
            spec = _declared(functions, next(iter(verifier["answers"][i])))["parameters"]["properties"].get(param, {})
            new = changed(value)
            args[param] = literal(new, spec, language) if language != "python" else new

        def retype(args, param):
            args[param] = retyped(args[param])

        def normalise(args, param):
            if isinstance(args[param], str):
                args[param] = _normalised(args[param])

        for label, edit in (("value-changed", change), ("type-changed", retype), ("string-normalised", normalise)):
            edited = _with_argument(calls, index, edit)
            if edited is not None and edited != calls:
                yield f"{label}#{index}", message(edited)
    name, arguments = calls[0]
    yield "extra-param", message([(name, {**arguments, "zq_extra": 1})] + calls[1:])
    required = _declared(functions, next(iter(verifier["answers"][0])))["parameters"].get("required", [])
    if any(p in arguments for p in required):
        dropped = next(p for p in required if p in arguments)
        yield "missing-required", message([(name, {k: v for k, v in arguments.items() if k != dropped})] + calls[1:])
    optional = [p for p, options in next(iter(verifier["answers"][0].values())).items() if "" in options and p in arguments]
    if optional:
        yield "optional-omitted", message([(name, {k: v for k, v in arguments.items() if k != optional[0]})] + calls[1:])
    yield "call-added", message(calls + calls[-1:])
    yield "call-dropped", message(calls[:-1])
    yield "renamed", message([(name + "_v2", arguments)] + calls[1:])
    original = next(iter(verifier["answers"][0]))
    if "." in original:
        yield "dotted-name", message([(original, arguments)] + calls[1:])
    other = next((f for f in functions if sent_name(f["name"]) != name), None)
    if other is not None:
        yield "other-function", message([(sent_name(other["name"]), arguments)] + calls[1:])
    if len(calls) > 1:
        yield "reordered", message(calls[::-1])
    yield "not-json", message([(name, json.dumps(arguments)[:-1])] + calls[1:])
    yield "args-not-object", message([(name, json.dumps([arguments]))] + calls[1:])
    yield "prose", message(content="The answer is " + json.dumps(arguments))
