"""math: word problems whose answer is computed from the drawn numbers.

easy: one operation on small numbers; medium: two steps (a price and change, a share of a whole);
hard: three or more steps (percentages, rates, remainders) with larger numbers.
"""

from __future__ import annotations

import random

from orchestrator.evaluate.quality.generators import Generated, generate_with

VERSION = 1
SYSTEM = ("Solve the problem. Show brief working if you like, then finish with a last line of the form "
          "ANSWER: followed by the number alone.")
NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kim", "Lea", "Milo", "Nia", "Omar")
THINGS = ("apples", "pencils", "stickers", "marbles", "books", "cards", "shells", "coins", "stamps", "buttons")


def _easy(rng: random.Random) -> tuple[str, int, str]:
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    a, b = rng.randint(3, 20), rng.randint(2, 12)
    kind = rng.choice(("add", "sub", "mul"))
    if kind == "add":
        return f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?", a + b, "addition"
    if kind == "sub":
        a += b
        return f"{name} has {a} {thing} and gives away {b}. How many {thing} are left?", a - b, "subtraction"
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    return f"There are {a} boxes with {b} {thing} in each box. How many {thing} are there in all?", a * b, "multiplication"


def _medium(rng: random.Random) -> tuple[str, int, str]:
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    kind = rng.choice(("change", "share", "total"))
    if kind == "change":
        price, count = rng.randint(2, 9), rng.randint(2, 6)
        paid = next(note for note in (10, 20, 50, 100) if note >= price * count)
        return (f"{thing.capitalize()} cost ${price} each. {name} buys {count} and pays with a ${paid} note. "
                f"How many dollars of change does {name} get?", paid - price * count, "change from a purchase")
    if kind == "share":
        people, each, extra = rng.randint(2, 6), rng.randint(3, 12), rng.randint(1, 9)
        return (f"{name} shares {people * each + extra} {thing} equally among {people} friends and keeps the "
                f"{extra} left over. How many {thing} does each friend get?", each, "equal shares with a remainder")
    a, b, c = rng.randint(5, 30), rng.randint(5, 30), rng.randint(2, 9)
    return (f"{name} collects {a} {thing} on Monday and {b} on Tuesday, then loses {c}. "
            f"How many {thing} does {name} have?", a + b - c, "two steps")


def _hard(rng: random.Random) -> tuple[str, int, str]:
    name = rng.choice(NAMES)
    kind = rng.choice(("discount", "speed", "workers"))
    if kind == "discount":
        price, off, count = rng.choice((40, 60, 80, 120, 150, 200)), rng.choice((10, 20, 25, 50)), rng.randint(2, 5)
        return (f"A jacket costs ${price}. It is on sale at {off}% off, and {name} buys {count} of them. "
                f"How many dollars does {name} pay in total?", price * (100 - off) // 100 * count, "discount, then a count")
    if kind == "speed":
        first_h, second_h, speed_a, speed_b = rng.randint(1, 4), rng.randint(1, 4), rng.randint(4, 12) * 10, rng.randint(4, 12) * 10
        return (f"A train travels for {first_h} hours at {speed_a} km/h, then for {second_h} hours at {speed_b} km/h. "
                f"How many kilometres does it travel in all?", first_h * speed_a + second_h * speed_b, "distance over two legs")
    per_hour, workers, hours, broken = rng.randint(3, 12), rng.randint(3, 8), rng.randint(2, 6), rng.randint(1, 9)
    return (f"Each of {workers} workers packs {per_hour} crates an hour for {hours} hours. {broken} crates are "
            f"found broken and thrown away. How many good crates are left?", per_hour * workers * hours - broken,
            "a rate times workers times hours, less losses")


MAKERS = {"easy": _easy, "medium": _medium, "hard": _hard}


def _make(rng: random.Random, tier: str, scenario_id: str) -> Generated:
    question, answer, description = MAKERS[tier](rng)
    scenario = {"id": scenario_id, "description": f"generated: {description}", "level": tier,
                "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
                "verifier": {"type": "math", "answer": answer}}
    return Generated(scenario, {"content": f"Working it out.\nANSWER: {answer}"})


def generate(seed: int, count: int) -> list[Generated]:
    return generate_with("math", seed, count, _make)
