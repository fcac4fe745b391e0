"""struct: data to write in a format, checked by parsing it for real.

easy: a flat JSON object with two or three given values (exact); medium: a JSON array of records
with given fields (a schema, its length, values by path) or a flat YAML mapping; hard: a CSV or
Markdown table with given header and cells, or a nested JSON document with typed fields.
"""

from __future__ import annotations

import csv
import io
import json
import random

import yaml

from orchestrator.evaluate.quality.generators import Generated, generate_with

VERSION = 1
SYSTEM = "Reply with the requested data only: no explanation before or after it."
PEOPLE = ("Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger")
CITIES = {"France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi", "Peru": "Lima", "Egypt": "Cairo",
          "Canada": "Ottawa", "Norway": "Oslo", "Chile": "Santiago", "Spain": "Madrid", "India": "New Delhi"}
ITEMS = ("apples", "pears", "plums", "lemons", "onions", "carrots", "eggs", "rice")


def _easy(rng: random.Random) -> tuple[str, dict, str, str]:
    keys = rng.sample(("name", "city", "age", "score", "active"), rng.randint(2, 3))
    values = {"name": rng.choice(PEOPLE), "city": rng.choice(sorted(CITIES.values())), "age": rng.randint(18, 90),
              "score": rng.randint(0, 100), "active": rng.choice((True, False))}
    doc = {k: values[k] for k in keys}
    parts = [f'the key "{k}" set to {json.dumps(v)}' for k, v in doc.items()]
    ask = f"Return a JSON object with {', '.join(parts[:-1])} and {parts[-1]}. No other keys."
    return ask, {"type": "struct", "format": "json", "checks": [{"check": "equals", "value": doc}]}, \
        json.dumps(doc), "flat JSON object, exact"


def _medium(rng: random.Random) -> tuple[str, dict, str, str]:
    if rng.random() < 0.5:
        names = rng.sample(PEOPLE, rng.randint(2, 4))
        ages = [rng.randint(18, 90) for _ in names]
        rows = [{"name": n, "age": a} for n, a in zip(names, ages)]
        listed = ", ".join(f"{n} ({a})" for n, a in zip(names, ages))
        ask = (f"Return a JSON array with one object per person, in this order, each with a string \"name\" and an "
               f"integer \"age\": {listed}.")
        schema = {"type": "array", "items": {"type": "object", "required": ["name", "age"],
                                             "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}}
        checks = [{"check": "schema", "schema": schema}, {"check": "path", "path": "$", "length": len(rows)}]
        checks += [{"check": "path", "path": f"$[{i}].age", "equals": r["age"]} for i, r in enumerate(rows)]
        return ask, {"type": "struct", "format": "json", "checks": checks}, json.dumps(rows), "JSON array of records"
    host, port, debug = rng.choice(("localhost", "db", "cache", "web")), rng.randint(1024, 9999), rng.choice((True, False))
    ask = f"Write a YAML mapping with the keys host ({host}), port ({port}) and debug ({str(debug).lower()})."
    checks = [{"check": "path", "path": "$.host", "equals": host}, {"check": "path", "path": "$.port", "equals": port},
              {"check": "path", "path": "$.debug", "equals": debug}]
    golden = yaml.safe_dump({"host": host, "port": port, "debug": debug}, sort_keys=False)
    return ask, {"type": "struct", "format": "yaml", "checks": checks}, golden, "flat YAML mapping"



def _hard(rng: random.Random) -> tuple[str, dict, str, str]:
    kind = rng.choice(("csv", "markdown_table", "nested"))
    if kind == "nested":
        name, city, tags = rng.choice(PEOPLE), rng.choice(sorted(CITIES.values())), rng.sample(ITEMS, 2)
        ask = (f"Return a JSON object with exactly the keys \"user\" and \"orders\". \"user\" is an object with "
               f"\"name\" set to \"{name}\" and \"address\", an object whose \"city\" is \"{city}\". \"orders\" is an "
               f"array of {len(tags)} objects, each with a string \"item\" ({' and '.join(tags)}, in that order) and "
               f"an integer \"qty\" of at least 1.")
        doc = {"user": {"name": name, "address": {"city": city}}, "orders": [{"item": t, "qty": 1} for t in tags]}
        checks = [{"check": "keys", "exactly": ["user", "orders"]},
                  {"check": "path", "path": "$.user.name", "equals": name},
                  {"check": "path", "path": "$.user.address.city", "equals": city},
                  {"check": "path", "path": "$.orders", "length": len(tags)},
                  {"check": "schema", "schema": {"type": "object", "properties": {"orders": {"type": "array", "items": {
                      "type": "object", "required": ["item", "qty"],
                      "properties": {"item": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}}}}}}]
        checks += [{"check": "path", "path": f"$.orders[{i}].item", "equals": t} for i, t in enumerate(tags)]
        return ask, {"type": "struct", "format": "json", "checks": checks}, json.dumps(doc), "nested JSON document"
    countries = rng.sample(sorted(CITIES), rng.randint(3, 5))
    header = ["Country", "Capital"]
    rows = [[c, CITIES[c]] for c in countries]
    checks = [{"check": "columns", "names": header}, {"check": "rows", "min": len(rows), "max": len(rows)}]
    checks += [{"check": "cell", "row": i, "column": "Capital", "equals": r[1]} for i, r in enumerate(rows)]
    if kind == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([header] + rows)
        ask = (f"Output a CSV with the header row Country,Capital and one row for each of {', '.join(countries)}, "
               "in that order, giving each country's capital city.")
        return ask, {"type": "struct", "format": "csv", "checks": checks}, out.getvalue(), "CSV with known cells"
    table = "\n".join(["| Country | Capital |", "|---|---|"] + [f"| {c} | {k} |" for c, k in rows])
    ask = (f"Make a Markdown table with the columns Country and Capital for {', '.join(countries)}, in that order, "
           "giving each country's capital city.")
    return ask, {"type": "struct", "format": "markdown_table", "checks": checks}, table, \
        "Markdown table with known cells"


MAKERS = {"easy": _easy, "medium": _medium, "hard": _hard}


def _make(rng: random.Random, tier: str, scenario_id: str) -> Generated:
    ask, verifier, golden, description = MAKERS[tier](rng)
    scenario = {"id": scenario_id, "description": f"generated: {description}", "level": tier,
                "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ask}], "verifier": verifier}
    return Generated(scenario, {"content": golden})


def generate(seed: int, count: int) -> list[Generated]:
    return generate_with("struct", seed, count, _make)
