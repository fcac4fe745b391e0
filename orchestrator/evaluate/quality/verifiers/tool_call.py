"""tool_call: the right function, the right arguments, the right order, or restraint.

Calls come from `message.tool_calls` only; arguments must decode to a JSON object. A scenario
that expects calls fails on none (`wrong_answer`); a restraint scenario (`no_call`) fails on any
call, and its `content` check demands an answer, so silence never passes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from orchestrator.evaluate.quality.packs import Scenario
from orchestrator.evaluate.quality.verdict import (INVALID_JSON, MISSING_FIELD, NO_ANSWER_FOUND, WRONG_ANSWER, Verdict, answer_text, fail, ok, range_problem)

VERSION = 2  # 2: every check is judged and counted (check-level accuracy); the verdict is the first failure's, as before


def _calls(message: dict[str, Any]) -> list[tuple[str, Any]]:
    """(name, decoded arguments) per call; arguments that are not JSON stay a str."""
    calls = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        raw = function.get("arguments")
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            args = raw
        calls.append((str(function.get("name") or ""), args))
    return calls


def check(scenario: Scenario, message: dict[str, Any]) -> Verdict:
    checks = scenario.verifier["checks"]
    calls = _calls(message)
    text = answer_text(message)
    restraint = any(c["check"] == "no_call" for c in checks)
    if not restraint and not calls:
        return fail(WRONG_ANSWER if text else NO_ANSWER_FOUND, "no tool call", checks=(0, len(checks)))
    for name, args in calls:
        if not isinstance(args, dict):
            return fail(INVALID_JSON, f"arguments of {name or '(unnamed)'} are not a JSON object: {str(args)[:80]!r}",
                        checks=(0, len(checks)))
    problems = [problem for spec in checks if (problem := _problem(spec, calls, text))]
    met = (len(checks) - len(problems), len(checks))
    if problems:
        return fail(*problems[0], checks=met)
    return ok(f"{len(calls)} call(s): {', '.join(n for n, _ in calls) or 'none, as asked'}", checks=met)


def _problem(spec: dict[str, Any], calls: list[tuple[str, dict]], text: str) -> tuple[str, str] | None:
    kind = spec["check"]
    names = [name for name, _ in calls]
    if kind == "no_call":
        return (WRONG_ANSWER, f"called {', '.join(names)} where no tool was needed") if calls else None
    if kind == "content":
        if not text:
            return NO_ANSWER_FOUND, "no text answer"
        return None if re.search(spec["regex"], text, re.I) else (WRONG_ANSWER, f"answer does not match /{spec['regex']}/")
    if kind == "first_call":
        return None if names[0] == spec["name"] else (WRONG_ANSWER, f"first call {names[0]!r}, expected {spec['name']!r}")
    if kind == "call_count":
        low, high = spec.get("min", 1), spec.get("max", len(calls))
        return None if low <= len(calls) <= high else (WRONG_ANSWER, f"{len(calls)} calls, expected {low}..{high}")
    if kind == "call_order":
        expected = spec["names"]
        # A dependent chain cannot be emitted at once (later calls need earlier results): a correct prefix will do.
        wanted = expected[:len(names)] if spec.get("dependent") else expected
        return None if names[:len(wanted)] == wanted else (WRONG_ANSWER, f"call order {names}, expected {expected}")
    if kind == "called":
        missing = [n for n in spec["names"] if n not in names]
        return (WRONG_ANSWER, f"never called {', '.join(missing)}") if missing else None
    if kind == "not_called":
        wrong = [n for n in spec["names"] if n in names]
        return (WRONG_ANSWER, f"called {', '.join(wrong)}") if wrong else None
    if kind == "arg_values":
        seen = [args.get(spec["name"]) for name, args in calls if name == spec["function"]]
        missing = [v for v in spec["values"] if not any(_same(value, v) for value in seen)]
        return (MISSING_FIELD, f"no {spec['function']} call with {spec['name']} = {missing}") if missing else None
    args = _args_of(spec, calls)
    if args is None:
        return WRONG_ANSWER, f"no call to {spec['function']}"
    if kind == "args_absent":
        present = [n for n in spec["names"] if n in args]
        return (WRONG_ANSWER, f"argument(s) {', '.join(present)} should be absent") if present else None
    return _arg_problem(spec, args)


def _args_of(spec: dict[str, Any], calls: list[tuple[str, dict]]) -> dict | None:
    """The first call's arguments, or the first call to `function` when the check names one."""
    if "function" not in spec:
        return calls[0][1]
    return next((args for name, args in calls if name == spec["function"]), None)


def _arg_problem(spec: dict[str, Any], args: dict) -> tuple[str, str] | None:
    name = spec["name"]
    if name not in args:
        return MISSING_FIELD, f"argument {name!r} missing"
    value = args[name]
    if "equals" in spec and not _same(value, spec["equals"]):
        return WRONG_ANSWER, f"{name}={value!r}, expected {spec['equals']!r}"
    if "one_of" in spec and not any(_same(value, option) for option in spec["one_of"]):
        return WRONG_ANSWER, f"{name}={value!r}, expected one of {spec['one_of']}"
    if "regex" in spec and not (isinstance(value, str) and re.search(spec["regex"], value, re.I)):
        return WRONG_ANSWER, f"{name}={value!r} does not match /{spec['regex']}/"
    if "contains" in spec and not (isinstance(value, str) and spec["contains"].lower() in value.lower()):
        return WRONG_ANSWER, f"{name}={value!r} does not contain {spec['contains']!r}"
    problem = range_problem(name, value, spec)
    return (WRONG_ANSWER, problem) if problem else None


def _same(value: Any, expected: Any) -> bool:
    """Equality that forgives case and surrounding space in strings, and 3 == 3.0, but not True == 1."""
    if isinstance(expected, str):
        return isinstance(value, str) and value.strip().casefold() == expected.strip().casefold()
    if isinstance(expected, bool) or isinstance(value, bool):
        return value is expected
    return value == expected
