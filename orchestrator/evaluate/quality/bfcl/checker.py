"""BFCL's AST matching rules, written from its published checker's behaviour (bfcl-eval 2026.3.23).

Input: the functions as BFCL declares them (its own type names), the model's calls decoded the
way BFCL's OpenAI function-calling handler decodes them (`[{name: arguments}]`), and the
possible answers (`[{name: {param: [allowed values]}}]`). The rules:

- simple: exactly one call; multiple: as many calls as answers (one), the first judged against
  the first answer; parallel (and parallel-multiple): as many calls as answers, matched in any
  order — each answer in turn takes the first not yet matched call that satisfies it.
- a call: the function's name (`.` written `_`); every required parameter present; no parameter
  the function does not declare or the answer does not list; an answer parameter absent only when
  its allowed values include `""`.
- a value: of the declared type (Python: int is accepted for float; bool is not int; a value of
  the possible answer's own type when that differs from the declared one, a "variable", is
  compared as is); strings compared after removing spaces and `,./-_*^`, lowercased, `'` read as
  `"`; lists element by element with the same string rule; dicts key by key; else equality.
- Java and JavaScript values are strings holding literals, read first (literals.py).
- irrelevance: no call decoded; relevance: some call decoded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from orchestrator.evaluate.quality.bfcl.literals import JAVA_TYPES, JAVASCRIPT_TYPES, Unsupported, read_java, read_javascript
from orchestrator.evaluate.quality.bfcl.request import sent_name

PYTHON_TYPES = {"string": str, "integer": int, "float": float, "boolean": bool, "array": list, "tuple": list,
                "dict": dict, "any": str}
PYTHON_LISTS = ("array", "tuple")
JAVA_LISTS = ("Array", "ArrayList")  # the ones whose element type is read
_NOISE = re.compile(r"[ ,./\-_*^]")


@dataclass(frozen=True)
class Mismatch:
    kind: str  # BFCL's error type, e.g. "value_error:string", "simple_function_checker:wrong_count"
    detail: str


def decode_calls(message: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The message's calls as `[{name: arguments}]`, or None where BFCL's decoder fails: arguments
    that are not JSON, or no tool calls with a non-empty text (a reply in prose)."""
    calls = message.get("tool_calls")
    if not calls:  # BFCL then decodes the text as a call list: prose fails, an empty text is no call
        return None if message.get("content") else []
    decoded = []
    for call in calls:
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments"))
        except (TypeError, ValueError):
            return None
        decoded.append({function.get("name"): arguments})
    return decoded


def well_formed(decoded: list[dict[str, Any]]) -> bool:
    """Every call's arguments are an object."""
    return all(isinstance(next(iter(call.values())), dict) for call in decoded)


def has_call(decoded: list[dict[str, Any]] | None) -> bool:
    """What relevance and irrelevance judge: a decoded, well-formed, non-empty call list."""
    return bool(decoded) and well_formed(decoded) and not (len(decoded) == 1 and not decoded[0])


def check(check_kind: str, functions: list[dict[str, Any]], calls: list[dict[str, Any]], answers: list[dict[str, Any]],
          language: str) -> Mismatch | None:
    """None when the calls match; else the first mismatch BFCL's rules find."""
    if check_kind == "parallel":
        return _unordered(functions, calls, answers, language)
    if len(calls) != (1 if check_kind == "simple" else len(answers)):
        return Mismatch(f"{check_kind}_function_checker:wrong_count", f"{len(calls)} call(s), expected {len(answers)}")
    function = functions[0] if check_kind == "simple" else _declared(functions, answers[0])
    return check_call(function, calls[0], answers[0], language)


def _declared(functions: list[dict[str, Any]], answer: dict[str, Any]) -> dict[str, Any]:
    name = next(iter(answer))
    found = next((f for f in functions if f["name"] == name), None)
    if found is None:
        raise Unsupported(f"possible answer names {name!r}, which no function declares")
    return found


def _unordered(functions, calls, answers, language) -> Mismatch | None:
    if len(calls) != len(answers):
        return Mismatch("parallel_function_checker_no_order:wrong_count", f"{len(calls)} call(s), expected {len(answers)}")
    taken: set[int] = set()
    for number, answer in enumerate(answers):
        function = _declared(functions, answer)
        misses = []
        for index, call in enumerate(calls):
            if index in taken:
                continue
            miss = check_call(function, call, answer, language)
            if miss is None:
                taken.add(index)
                break
            misses.append(miss)
        else:
            return Mismatch("parallel_function_checker_no_order:cannot_find_match",
                            f"no call matches answer {number} ({next(iter(answer))}): {misses[-1].detail if misses else ''}")
    return None


def check_call(function: dict[str, Any], call: dict[str, Any], answer: dict[str, Any], language: str) -> Mismatch | None:
    name = sent_name(function["name"])
    if name not in call:
        return Mismatch("simple_function_checker:wrong_func_name", f"called {next(iter(call))!r}, expected {name!r}")
    arguments, allowed = call[name], next(iter(answer.values()))
    declared = function["parameters"]["properties"]
    missing = next((p for p in function["parameters"]["required"] if p not in arguments), None)
    if missing is not None:
        return Mismatch("simple_function_checker:missing_required", f"required parameter {missing!r} missing")
    for param, value in arguments.items():
        if param not in declared or param not in allowed:
            return Mismatch("simple_function_checker:unexpected_param", f"unexpected parameter {param!r}")
        miss = _value_mismatch(param, value, declared[param], allowed[param], language)
        if miss:
            return miss
    omitted = next((p for p, options in allowed.items() if p not in arguments and "" not in options), None)
    if omitted is not None:
        return Mismatch("simple_function_checker:missing_optional", f"parameter {omitted!r} omitted but required by the answer")
    return None


def _expected_types(spec: dict[str, Any], language: str) -> tuple[type, type | None]:
    """(declared Python type, element type of a list parameter or None)."""
    kind = spec["type"]
    if language == "python":
        return PYTHON_TYPES[kind], PYTHON_TYPES[spec["items"]["type"]] if kind in PYTHON_LISTS else None
    table = JAVA_TYPES if language == "java" else JAVASCRIPT_TYPES
    lists = JAVA_LISTS if language == "java" else ("array",)
    if kind not in table:
        raise Unsupported(f"{language} type {kind!r}")
    return table[kind], table[spec["items"]["type"]] if kind in lists else None


def _read_literal(value: Any, spec: dict[str, Any], language: str) -> Any:
    kind = spec["type"]
    element = spec["items"]["type"] if kind in (JAVA_LISTS if language == "java" else ("array",)) else None
    return (read_java if language == "java" else read_javascript)(value, kind, element)


def _value_mismatch(param: str, value: Any, spec: dict[str, Any], options: list, language: str) -> Mismatch | None:
    expected, element = _expected_types(spec, language)
    if language != "python":
        if type(value) is not str:
            return Mismatch(f"type_error:{'java' if language == 'java' else 'js'}",
                            f"{param!r}: expected a {language} literal in a string, got {type(value).__name__}")
        value = _read_literal(value, spec, language)
    elif spec["type"] == "float" and type(value) is int:
        value = float(value)
    variable, miss = _type_mismatch(param, value, options, spec["type"], expected, element)
    if miss:
        return miss
    if not variable:
        if expected is dict:
            return _dict_mismatch(param, value, options)
        if expected is list and element is dict:
            return _dict_list_mismatch(param, value, options)
        if expected is str:
            return _string_mismatch(param, value, options)
        if expected is list:
            return _list_mismatch(param, value, options)
    if value not in options:
        return Mismatch("value_error:others", f"{param!r} = {value!r}, expected one of {options}")
    return None


def _answer_type(options: Any) -> type | None:
    """The type of the first allowed value that is not the optional marker "" (BFCL writes a
    variable's name as a string where the declared type is another)."""
    return next((type(option) for option in options if option != ""), None)


def _type_mismatch(param: str, value: Any, options: Any, declared: str, expected: type,
                   element: type | None) -> tuple[bool, Mismatch | None]:
    """(is a variable, mismatch). Element types are checked one level deep, against the first
    allowed list whose elements all fit; a non-list allowed value ("" or a variable) lets any
    elements through."""
    answer_type = _answer_type(options)
    variable = answer_type is not None and answer_type is not expected
    if type(value) is expected:
        if element is None:
            return variable, None
        for option in options:
            if type(option) is not list or all(_type_mismatch(param, item, option, str(element), element, None)[1] is None
                                               for item in value):
                return variable, None
        return False, Mismatch("type_error:nested", f"{param!r}: elements of {value!r} are not all {element.__name__}")
    if answer_type is not None and type(value) is answer_type:
        return True, None
    return False, Mismatch("type_error:simple", f"{param!r}: expected {declared}, got {type(value).__name__} {value!r}")


def standard(text: str) -> str:
    return _NOISE.sub("", text).lower().replace("'", '"')


def _standard_items(values: Any) -> list:
    """A sequence with its strings standardised (a string option counts as its characters, as
    BFCL indexes it)."""
    return [standard(item) if type(item) is str else item for item in values]


def _string_mismatch(param: str, value: str, options: list) -> Mismatch | None:
    if standard(value) in [standard(option) for option in options if type(option) is str]:
        return None
    return Mismatch("value_error:string", f"{param!r} = {value!r}, expected one of {options}")


def _list_mismatch(param: str, value: list, options: list) -> Mismatch | None:
    if _standard_items(value) in [_standard_items(option) for option in options]:
        return None
    return Mismatch("value_error:list/tuple", f"{param!r} = {value!r}, expected one of {options}")


def _dict_mismatch(param: str, value: dict, options: list) -> Mismatch | None:
    """The value must fit one allowed dict: only its keys, each value allowed, none omitted unless
    `""` is allowed for it."""
    miss = Mismatch("dict_checker:unclear", f"{param!r} = {value!r}: no allowed dict")
    for option in options:
        if option == "":
            continue
        miss = _one_dict_mismatch(value, option)
        if miss is None:
            return None
    return miss


def _one_dict_mismatch(value: dict, option: dict) -> Mismatch | None:
    for key, item in value.items():
        if key not in option:
            return Mismatch("value_error:dict_key", f"unexpected key {key!r}")
        if (standard(item) if type(item) is str else item) not in _standard_items(option[key]):
            return Mismatch("value_error:dict_value", f"{key!r} = {item!r}, expected one of {option[key]}")
    missing = next((key for key, allowed in option.items() if key not in value and "" not in allowed), None)
    return Mismatch("value_error:dict_key", f"key {missing!r} missing") if missing is not None else None


def _dict_list_mismatch(param: str, value: list, options: list) -> Mismatch | None:
    """The list must fit one allowed list of dicts, dict by dict in order."""
    miss = Mismatch("list_dict_checker:unclear", f"{param!r}: no allowed list of dicts")
    for option in options:
        if len(value) != len(option):
            miss = Mismatch("value_error:list_dict_count", f"{param!r}: {len(value)} dicts, expected {len(option)}")
            continue
        miss = next((m for item, allowed in zip(value, option) if (m := _dict_mismatch(param, item, [allowed]))), None)
        if miss is None:
            return None
    return miss
