"""toolcall: requests that need one tool, two tools, or none, among a drawn set of tools.

easy: one tool fits, one string argument; medium: the right tool among four with a typed or enum
argument, or restraint (no tool; the answer is a sum the prompt does not state); hard: two
independent calls in one turn (both tools, the right values), or three arguments with a number.
"""

from __future__ import annotations

import random

from orchestrator.evaluate.quality.generators import Generated, generate_with

VERSION = 1
SYSTEM = "You are an assistant with tools. Call a tool only when the request needs one; otherwise answer directly."
CITIES = ("Paris", "Tokyo", "Lima", "Oslo", "Cairo", "Sydney", "Toronto", "Nairobi", "Madrid", "Seoul")
PEOPLE = ("alice", "bob", "carol", "dan", "erin", "femi")


def _tool(name: str, description: str, properties: dict, required: list[str]) -> dict:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": properties, "required": required}}}


TOOLS = {
    "get_weather": _tool("get_weather", "Current weather for a city.", {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit; celsius if not asked"}},
        ["city"]),
    "get_time": _tool("get_time", "Current local time in a city.", {"city": {"type": "string"}}, ["city"]),
    "set_timer": _tool("set_timer", "Start a countdown timer.", {
        "minutes": {"type": "integer", "minimum": 1}, "label": {"type": "string"}}, ["minutes"]),
    "send_email": _tool("send_email", "Send an e-mail.", {
        "to": {"type": "string", "description": "Recipient address"}, "subject": {"type": "string"},
        "body": {"type": "string"}}, ["to", "subject", "body"]),
    "convert_currency": _tool("convert_currency", "Convert an amount between currencies.", {
        "amount": {"type": "number"}, "from_currency": {"type": "string", "description": "ISO code"},
        "to_currency": {"type": "string", "description": "ISO code"}}, ["amount", "from_currency", "to_currency"]),
}


def _tools(rng: random.Random, needed: list[str], total: int) -> list[dict]:
    others = [name for name in sorted(TOOLS) if name not in needed]
    names = needed + rng.sample(others, total - len(needed))
    rng.shuffle(names)
    return [TOOLS[name] for name in names]


def _easy(rng: random.Random) -> tuple[str, list, list, dict, str]:
    city = rng.choice(CITIES)
    if rng.random() < 0.5:
        return (f"What's the weather in {city} right now?", _tools(rng, ["get_weather"], 2),
                [{"check": "first_call", "name": "get_weather"}, {"check": "arg", "name": "city", "contains": city}],
                {"tool_calls": [{"name": "get_weather", "arguments": {"city": city}}]}, "weather for a city")
    return (f"What time is it in {city}?", _tools(rng, ["get_time"], 2),
            [{"check": "first_call", "name": "get_time"}, {"check": "arg", "name": "city", "contains": city}],
            {"tool_calls": [{"name": "get_time", "arguments": {"city": city}}]}, "local time for a city")


def _medium(rng: random.Random) -> tuple[str, list, list, dict, str]:
    kind = rng.choice(("timer", "unit", "restraint"))
    if kind == "timer":
        minutes = rng.randint(2, 90)
        return (f"Set a timer for {minutes} minutes, please.", _tools(rng, ["set_timer"], 4),
                [{"check": "first_call", "name": "set_timer"}, {"check": "arg", "name": "minutes", "equals": minutes}],
                {"tool_calls": [{"name": "set_timer", "arguments": {"minutes": minutes}}]}, "an integer argument")
    if kind == "unit":
        city = rng.choice(CITIES)
        return (f"How warm is it in {city}? Give me the temperature in Fahrenheit.", _tools(rng, ["get_weather"], 4),
                [{"check": "first_call", "name": "get_weather"}, {"check": "arg", "name": "city", "contains": city},
                 {"check": "arg", "name": "unit", "equals": "fahrenheit"}],
                {"tool_calls": [{"name": "get_weather", "arguments": {"city": city, "unit": "fahrenheit"}}]},
                "an enum argument among four tools")
    a, b = rng.randint(11, 49), rng.randint(11, 49)
    return (f"No tools needed: what is {a} plus {b}?", _tools(rng, [], 3),
            [{"check": "no_call"}, {"check": "content", "regex": rf"\b{a + b}\b"}],
            {"content": f"{a} plus {b} is {a + b}."}, "restraint: arithmetic needs no tool")


def _hard(rng: random.Random) -> tuple[str, list, list, dict, str]:
    if rng.random() < 0.5:
        first, second = rng.sample(CITIES, 2)
        return (f"I need the current weather in {first} and the local time in {second}.",
                _tools(rng, ["get_weather", "get_time"], 4),
                [{"check": "called", "names": ["get_weather", "get_time"]}, {"check": "call_count", "min": 2, "max": 2},
                 {"check": "arg", "function": "get_weather", "name": "city", "contains": first},
                 {"check": "arg", "function": "get_time", "name": "city", "contains": second}],
                {"tool_calls": [{"name": "get_weather", "arguments": {"city": first}},
                                {"name": "get_time", "arguments": {"city": second}}]}, "two independent calls")
    amount, source, target = rng.randint(5, 900), *rng.sample(("USD", "EUR", "GBP", "JPY", "CHF"), 2)
    return (f"Convert {amount} {source} to {target}.", _tools(rng, ["convert_currency"], 4),
            [{"check": "first_call", "name": "convert_currency"}, {"check": "arg", "name": "amount", "equals": amount},
             {"check": "arg", "name": "from_currency", "equals": source},
             {"check": "arg", "name": "to_currency", "equals": target}],
            {"tool_calls": [{"name": "convert_currency",
                             "arguments": {"amount": amount, "from_currency": source, "to_currency": target}}]},
            "three arguments with a number")


MAKERS = {"easy": _easy, "medium": _medium, "hard": _hard}


def _make(rng: random.Random, tier: str, scenario_id: str) -> Generated:
    ask, tools, checks, golden, description = MAKERS[tier](rng)
    scenario = {"id": scenario_id, "description": f"generated: {description}", "level": tier,
                "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ask}],
                "tools": tools, "verifier": {"type": "tool_call", "checks": checks}}
    return Generated(scenario, golden)


def generate(seed: int, count: int) -> list[Generated]:
    return generate_with("toolcall", seed, count, _make)
