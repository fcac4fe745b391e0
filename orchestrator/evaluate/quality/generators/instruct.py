"""instruct: a bulleted list on a topic under a drawn combination of checks.

Every scenario asks for exactly N '-' bullets (so an echoed prompt or an empty answer fails);
easy adds nothing, medium one more constraint, hard three or four, drawn from: a letter case, a
word that must appear, an item that must not, no commas, a closing word, a word ceiling. Each
constraint is one IFEval-style check, so check-level accuracy shows partial compliance.
"""

from __future__ import annotations

import random

from orchestrator.evaluate.quality.generators import Generated, generate_with

VERSION = 1
TOPICS = {
    "fruits": ("apple", "banana", "cherry", "grape", "mango", "pear", "plum", "peach"),
    "animals": ("cat", "dog", "horse", "rabbit", "tiger", "whale", "owl", "fox"),
    "colours": ("red", "blue", "green", "yellow", "purple", "orange", "pink", "brown"),
    "countries": ("France", "Japan", "Brazil", "Kenya", "Canada", "India", "Norway", "Chile"),
    "tools": ("hammer", "saw", "drill", "wrench", "chisel", "pliers", "ladder", "shovel"),
    "sports": ("tennis", "football", "rugby", "cricket", "hockey", "golf", "rowing", "judo"),
}
KEYWORDS = ("favourite", "simple", "common", "bright", "small", "useful")
CLOSERS = ("DONE", "END", "FINISHED")
EXTRAS = {"easy": 0, "medium": 1, "hard": (3, 4)}


def _make(rng: random.Random, tier: str, scenario_id: str) -> Generated:
    topic = rng.choice(sorted(TOPICS))
    count = rng.randint(2, 5)
    items = list(TOPICS[topic])
    rng.shuffle(items)
    banned, chosen = items[-1], items[:count]
    extra = EXTRAS[tier] if isinstance(EXTRAS[tier], int) else rng.randint(*EXTRAS[tier])
    kinds = rng.sample(("case", "keyword", "absent", "no_commas", "closer", "words"), extra)
    asks = [f"List {count} {topic} as a bulleted list using '-' bullets, one per line."]
    checks = [{"check": "bullets", "min": count, "max": count, "marker": "-"}]
    keyword = rng.choice(KEYWORDS) if "keyword" in kinds else None
    lines = [f"- {keyword} {item}" if keyword and i == 0 else f"- {item}" for i, item in enumerate(chosen)]
    if "closer" in kinds:
        closer = rng.choice(CLOSERS)
        asks.append(f"After the list, write the word {closer} on its own line.")
        checks.append({"check": "ends_with", "text": closer})
        lines.append(closer)
    golden = "\n".join(lines)
    if "case" in kinds:
        case = rng.choice(("lower", "upper"))
        asks.append(f"Write everything in {case}case letters.")
        checks.append({"check": "case", "is": case})
        golden = golden.lower() if case == "lower" else golden.upper()
    if keyword:
        asks.append(f"Use the word '{keyword}' somewhere in your answer.")
        checks.append({"check": "contains", "phrases": [keyword]})
    if "absent" in kinds:
        asks.append(f"Do not mention {banned}.")
        checks.append({"check": "absent", "phrases": [banned]})
    if "no_commas" in kinds:
        asks.append("Do not use any commas.")
        checks.append({"check": "no_chars", "chars": ","})
    if "words" in kinds:
        ceiling = count * 3 + 3
        asks.append(f"Use at most {ceiling} words in total.")
        checks.append({"check": "words", "min": count, "max": ceiling})
    scenario = {"id": scenario_id, "description": f"generated: {count} {topic}, {len(checks)} check(s)", "level": tier,
                "messages": [{"role": "user", "content": " ".join(asks)}],
                "verifier": {"type": "instruct", "checks": checks}}
    return Generated(scenario, {"content": golden})


def generate(seed: int, count: int) -> list[Generated]:
    return generate_with("instruct", seed, count, _make)
