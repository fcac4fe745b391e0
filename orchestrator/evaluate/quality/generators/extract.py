"""extract: documents with planted fields, scored per atomic field.

easy: one or two sentences holding two fields; medium: an invoice or booking note with four to
five fields, a number among them; hard: a longer e-mail with distracting figures, a field the
text does not state (expected null) and a list of line items matched by name.
"""

from __future__ import annotations

import json
import random

from orchestrator.evaluate.quality.generators import Generated, generate_with

VERSION = 1
SYSTEM = ("Extract the requested fields from the text. Reply with one JSON object only, using exactly the field "
          "names given. Use null for anything the text does not state.")
PEOPLE = ("Tom Baker", "Ana Silva", "Lee Chen", "Mia Novak", "Raj Patel", "Ola Berg", "Sam Okafor", "Eva Rossi")
COMPANIES = ("Northwind Supplies", "Harbor Cafe", "Blue Fern Ltd", "Acme Tools", "Orchard Foods", "Kite Labs")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
CITIES = ("Lisbon", "Oslo", "Lima", "Cairo", "Osaka", "Quito", "Tunis", "Perth")
GOODS = ("chairs", "lamps", "desks", "cables", "boxes", "mugs")


def _ask(text: str, fields: dict[str, str]) -> str:
    return f"Text:\n{text}\n\nFields: " + ", ".join(f"{name} ({kind})" for name, kind in fields.items())


def _easy(rng: random.Random) -> tuple[str, dict, dict, str]:
    person, age, city = rng.choice(PEOPLE), rng.randint(19, 80), rng.choice(CITIES)
    if rng.random() < 0.5:
        return (_ask(f"My name is {person} and I am {age} years old.", {"name": "string", "age": "number"}),
                {"name": person, "age": age}, {"type": "extract"}, "a name and an age")
    day = rng.choice(DAYS)
    return (_ask(f"{person} flies to {city} on {day}.", {"traveller": "string", "destination": "string", "day": "string"}),
            {"traveller": person, "destination": city, "day": day}, {"type": "extract"}, "a trip in one sentence")


def _medium(rng: random.Random) -> tuple[str, dict, dict, str]:
    number, seller, buyer = f"INV-{rng.randint(1000, 9999)}", *rng.sample(COMPANIES, 2)
    total, days = rng.randint(100, 5000) + rng.choice((0, 0.5, 0.25)), rng.choice((14, 30, 60))
    currency = rng.choice(("EUR", "USD", "GBP"))
    text = (f"Invoice {number}\nFrom: {seller}\nTo: {buyer}\nAmount due: {total} {currency}, "
            f"payable within {days} days of receipt.")
    expected = {"invoice_number": number, "seller": seller, "buyer": buyer, "total": total, "currency": currency,
                "payment_days": days}
    fields = {"invoice_number": "string", "seller": "string", "buyer": "string", "total": "number",
              "currency": "string", "payment_days": "number"}
    return _ask(text, fields), expected, {"type": "extract"}, "an invoice header"


def _hard(rng: random.Random) -> tuple[str, dict, dict, str]:
    person, company, city = rng.choice(PEOPLE), rng.choice(COMPANIES), rng.choice(CITIES)
    goods = rng.sample(GOODS, rng.randint(2, 3))
    counts = [rng.randint(2, 40) for _ in goods]
    ref, day = rng.randint(10000, 99999), rng.choice(DAYS)
    lines = "\n".join(f"- {c} {g}" for g, c in zip(goods, counts))
    text = (f"Hi team,\n\nLast year we ordered about {rng.randint(50, 500)} items from you, and order {ref - 7} was "
            f"late. This time {person} from {company} would like the following delivered to our {city} office "
            f"on {day}:\n{lines}\n\nPlease quote order reference {ref}. Thanks!")
    expected = {"contact": person, "company": company, "city": city, "delivery_day": day, "order_reference": ref,
                "phone": None, "items": [{"name": g, "quantity": c} for g, c in zip(goods, counts)]}
    fields = {"contact": "string", "company": "string", "city": "string", "delivery_day": "string",
              "order_reference": "number", "phone": "string",
              "items": "array of objects with name (string) and quantity (number)"}
    return _ask(text, fields), expected, {"type": "extract", "anchors": {"items": "name"}}, "an order e-mail with distractors"


MAKERS = {"easy": _easy, "medium": _medium, "hard": _hard}


def _make(rng: random.Random, tier: str, scenario_id: str) -> Generated:
    ask, expected, verifier, description = MAKERS[tier](rng)
    scenario = {"id": scenario_id, "description": f"generated: {description}", "level": tier,
                "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ask}],
                "expected": expected, "verifier": verifier}
    return Generated(scenario, {"content": json.dumps(expected)})


def generate(seed: int, count: int) -> list[Generated]:
    return generate_with("extract", seed, count, _make)
