"""Seeded scenario generators, one module per pack: the packs' large, tiered sets.

A pack's meta line names its generator version and seed (`generated`); the loader calls the
module's `generate(seed, count)` and refuses a pack whose generator version is not the module's
`VERSION`, so changing a generator means bumping its VERSION, hence the meta line, hence the pack
version (whose sha256 covers the generated scenarios too). Scenario `i` is drawn from its own
random stream (pack, seed, i) with tier `TIERS[i % 3]`, so every prefix is balanced across tiers
and a smaller set is a prefix of a larger one.

Each generated scenario carries its golden answer beside it (`Generated.golden`, never part of the
scenario): the tests check that every golden passes and every junk answer fails.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

TIERS = ("easy", "medium", "hard")


@dataclass(frozen=True)
class Generated:
    scenario: dict[str, Any]  # a quality-scenario line
    golden: dict[str, Any]  # {"content": …} or {"tool_calls": [{"name", "arguments"}]}, as tests/fixtures goldens


def scenario_id(prefix: str, index: int) -> str:
    return f"{prefix}-G{index + 1:03d}"


def stream(pack: str, seed: int, index: int) -> random.Random:
    """Scenario `index`'s own random stream: string seeds hash with SHA-512, stable across runs and versions."""
    return random.Random(f"{pack}/{seed}/{index}")


def generate_with(pack: str, seed: int, count: int,
                  make: Callable[[random.Random, str, str], Generated]) -> list[Generated]:
    """`make(rng, tier, id)` for each index: the shared loop of every generator module."""
    prefix = {"toolcall": "TC", "instruct": "IF", "struct": "ST", "extract": "EX", "math": "MA", "codeexec": "CE"}[pack]
    return [make(stream(pack, seed, i), TIERS[i % len(TIERS)], scenario_id(prefix, i)) for i in range(count)]
