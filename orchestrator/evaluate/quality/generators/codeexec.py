"""codeexec: small Python functions with drawn constants, checked by hidden tests.

Each family has a reference implementation here; the hidden tests assert its values on drawn
inputs, so a test can never disagree with the task. easy: one expression; medium: a loop over a
list or a string; hard: a small algorithm with edge cases (empty input, ties, wrap-around).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

from orchestrator.evaluate.quality.generators import Generated, generate_with

VERSION = 1
SYSTEM = ("Write the Python function asked for, using only the standard library. Reply with the code in a single "
          "```python block.")
WORDS = ("apple", "level", "kayak", "stone", "river", "noon", "cloud", "radar", "tree", "moon")


@dataclass(frozen=True)
class Task:
    entry: str
    signature: str
    ask: str
    reference: Callable[..., Any]
    golden: str  # the reference's source, as a model might write it
    inputs: list[tuple]
    description: str


def _easy(rng: random.Random) -> Task:
    k, c = rng.randint(2, 9), rng.randint(1, 20)
    if rng.random() < 0.5:
        return Task("scale", "scale(x)", f"returns x multiplied by {k}, plus {c}", lambda x: x * k + c,
                    f"def scale(x):\n    return x * {k} + {c}", [(0,), (1,), (-3,), (rng.randint(10, 99),)], "linear function")
    return Task("is_multiple", "is_multiple(n)", f"returns True when the integer n is divisible by {k} and False otherwise",
                lambda n: n % k == 0, f"def is_multiple(n):\n    return n % {k} == 0",
                [(0,), (k,), (k * c,), (k * c + 1,), (-k,)], "divisibility")


def _medium(rng: random.Random) -> Task:
    k = rng.randint(2, 20)
    kind = rng.choice(("sum_above", "count_char", "longest"))
    if kind == "sum_above":
        lists = [[], [k], [rng.randint(-30, 30) for _ in range(8)], [rng.randint(0, 40) for _ in range(6)]]
        return Task("sum_above", "sum_above(numbers)", f"returns the sum of the numbers in the list that are greater "
                    f"than {k} (0 when there are none)", lambda xs: sum(x for x in xs if x > k),
                    f"def sum_above(numbers):\n    return sum(x for x in numbers if x > {k})",
                    [(xs,) for xs in lists], "filtered sum")
    if kind == "count_char":
        letter = rng.choice("aeiou")
        texts = ["", letter.upper() * 2, " ".join(rng.sample(WORDS, 4)), "Banana Bread"]
        return Task("count_letter", "count_letter(text)", f"returns how many times the letter {letter!r} occurs in text, "
                    "ignoring case", lambda t: t.lower().count(letter),
                    f"def count_letter(text):\n    return text.lower().count({letter!r})", [(t,) for t in texts],
                    "letter count")
    texts = [" ".join(rng.sample(WORDS, 3)), "a bb cc", "one"]
    return Task("longest_word", "longest_word(text)", "returns the longest word of text (words are separated by "
                "spaces); on a tie, the first of them", lambda t: max(t.split(), key=len),
                "def longest_word(text):\n    return max(text.split(), key=len)", [(t,) for t in texts], "longest word")


def _rle(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        j = i
        while j < len(text) and text[j] == text[i]:
            j += 1
        out.append(f"{text[i]}{j - i}")
        i = j
    return "".join(out)


RLE_SOURCE = """def run_length(text):
    out, i = [], 0
    while i < len(text):
        j = i
        while j < len(text) and text[j] == text[i]:
            j += 1
        out.append(text[i] + str(j - i))
        i = j
    return "".join(out)"""


def _hard(rng: random.Random) -> Task:
    kind = rng.choice(("caesar", "rle", "palindromes"))
    if kind == "caesar":
        shift = rng.randint(1, 25)
        word = rng.choice(WORDS)

        def caesar(text: str) -> str:
            return "".join(chr((ord(c) - 97 + shift) % 26 + 97) if "a" <= c <= "z" else c for c in text)
        golden = (f"def shift_letters(text):\n    return ''.join(chr((ord(c) - 97 + {shift}) % 26 + 97) "
                  "if 'a' <= c <= 'z' else c for c in text)")
        return Task("shift_letters", "shift_letters(text)", f"shifts every lowercase letter a-z of text {shift} places "
                    "forward in the alphabet, wrapping from z to a, and leaves every other character unchanged",
                    caesar, golden, [("",), (word,), ("xyz abc!",), ("Hello, zebra",)], "Caesar shift with wrap-around")
    if kind == "rle":
        texts = ["", "a", "aaabccdddd", rng.choice(WORDS) * 2]
        return Task("run_length", "run_length(text)", "returns the run-length encoding of text: each run of one "
                    "repeated character becomes the character followed by the run's length (\"aaab\" -> \"a3b1\"); "
                    "an empty text gives an empty string", _rle, RLE_SOURCE, [(t,) for t in texts], "run-length encoding")
    pool = rng.sample(WORDS, 6)
    return Task("palindromes", "palindromes(words)", "returns the words of the list that read the same backwards, "
                "in their original order, without duplicates", lambda ws: list(dict.fromkeys(w for w in ws if w == w[::-1])),
                "def palindromes(words):\n    return list(dict.fromkeys(w for w in words if w == w[::-1]))",
                [([],), (pool,), (pool + pool[:2],)], "palindrome filter")


MAKERS = {"easy": _easy, "medium": _medium, "hard": _hard}


def _tests(task: Task) -> str:
    lines = [f"from solution import {task.entry}", ""]
    for i, args in enumerate(task.inputs):
        call = f"{task.entry}({', '.join(map(repr, args))})"
        lines += [f"def test_{i}():", f"    assert {call} == {task.reference(*args)!r}", ""]
    return "\n".join(lines)


def _make(rng: random.Random, tier: str, scenario_id: str) -> Generated:
    task = MAKERS[tier](rng)
    scenario = {"id": scenario_id, "description": f"generated: {task.description}", "level": tier,
                "messages": [{"role": "system", "content": SYSTEM},
                             {"role": "user", "content": f"Write a function {task.signature} that {task.ask}."}],
                "verifier": {"type": "codeexec", "entry": task.entry, "tests": _tests(task), "seconds": 10}}
    return Generated(scenario, {"content": f"```python\n{task.golden}\n```"})


def generate(seed: int, count: int) -> list[Generated]:
    return generate_with("codeexec", seed, count, _make)
