"""What a phase costs in seconds at a decode rate, from the packs' and tasks' own sizes, and the
coefficients behind it (profiles/budget.yaml). The phases size themselves with these, and auto's
budget planner (flows/budget.py) buys sets with them: one home, below both."""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from orchestrator.core import datafiles
from orchestrator.core.paths import data_dir


@dataclass(frozen=True)
class Budget:
    """profiles/budget.yaml."""

    headroom: float
    shares: dict[str, float]  # axis -> share, in planning order
    warm_runs: tuple[int, ...]  # speed's candidates, largest first
    quality_candidates: tuple[dict[str, Any], ...]
    agent_workflow: str
    agent_candidates: tuple[dict[str, Any], ...]
    cost: dict[str, Any]
    newest_runs: int


@functools.cache
def load_budget(path: Path | None = None) -> Budget:
    doc = datafiles.load(path or data_dir("profiles") / "budget.yaml", "budget")
    return Budget(doc["headroom"], {a["axis"]: a["share"] for a in doc["axes"]}, tuple(doc["speed"]["warm_runs"]),
                  tuple(doc["quality"]["candidates"]),
                  doc["agent"]["workflow"], tuple(doc["agent"]["candidates"]), doc["cost"], doc["measured"]["newest_runs"])


def call_seconds(prompt_tokens: float, answer_tokens: float, rate: float) -> float:
    """One call: its prompt prefilled, then its answer decoded at the depth it reaches (decoding slows as
    1 / (1 + depth / decode_depth_tokens): each token reads the K/V cache of every token before it), one overhead."""
    cost = load_budget().cost
    depth = prompt_tokens + answer_tokens / 2
    decode = answer_tokens * (1 + depth / cost["decode_depth_tokens"])
    return (prompt_tokens / cost["prefill_per_decode"] + decode) / rate + cost["call_overhead_s"]


def text_tokens(chars: int) -> float:
    """Prompt tokens of a plain-text prompt of `chars` characters, the chat template's own tokens included."""
    speed = load_budget().cost["speed"]
    return speed["template_tokens"] + chars / speed["text_chars_per_token"]


def speed_answer_tokens(cap: int) -> float:
    return cap * load_budget().cost["speed"]["answer_fill"]


def pack_fill(pack_id: str, measured: Mapping[str, float] | None = None) -> float:
    """The share of a quality pack's answer caps a model uses: measured for this model (a run's `answer_fills`)
    where there is one, else budget.yaml's table for the pack, else the packs' pooled fill. Packs differ
    threefold (a toolcall answer is one call; a BFCL answer writes code), and models differ too."""
    cost = load_budget().cost
    if measured and pack_id in measured:
        return measured[pack_id]
    return cost["quality_pack_fill"].get(pack_id, cost["answer_fill"]["quality"])


def answer_fills(calls: Iterable[dict[str, Any]], least_calls: int = 3) -> dict[str, float]:
    """Each quality pack's share of its answers' caps used (completion tokens over max_tokens, summed), from a
    run's ledger call records; packs with fewer than `least_calls` answered calls are left to the table."""
    used: dict[str, int] = defaultdict(int)
    caps: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    for call in calls:
        cap, answer = call.get("max_tokens"), call.get("completion_tokens") or 0
        if (call.get("phase") == "quality" and not call.get("error") and isinstance(cap, int) and cap > 0
                and isinstance(answer, int)):
            pack = str(call.get("prompt_id") or "").split("/", 1)[0]
            used[pack] += min(max(answer, 0), cap)
            caps[pack] += cap
            counts[pack] += 1
    return {pack: round(used[pack] / caps[pack], 3) for pack in caps if counts[pack] >= least_calls and used[pack]}


def scenario_seconds(pack: Any, scenario: Any, rate: float, num_predict: int,
                     fills: Mapping[str, float] | None = None) -> float:
    """One scenario: its prompt (messages and tools) prefilled, its capped answer partly decoded (its pack's
    fill, `fills` measured for the model where given), one overhead, and its verifier's own time where it runs
    something (codeexec's sandbox)."""
    cost = load_budget().cost
    answer = min(scenario.max_tokens or pack.max_tokens, num_predict) * pack_fill(pack.id, fills)
    prompt = len(json.dumps([scenario.messages, scenario.tools])) / cost["chars_per_token"]
    # no depth term: the quality coefficients were fitted without one (prompts and answers are short)
    return ((answer + prompt / cost["prefill_per_decode"]) / rate + cost["call_overhead_s"]
            + cost.get("verify_s", {}).get(scenario.kind, 0.0))


def quality_seconds(packs: Any, rate: float, num_predict: int, repeat: int = 1, smoke: bool = False,
                    fills: Mapping[str, float] | None = None) -> float:
    """Every scenario of the packs (smoke: each pack's first), `repeat` times."""
    return repeat * sum(scenario_seconds(pack, scenario, rate, num_predict, fills)
                        for pack in packs for scenario in (pack.scenarios[:1] if smoke else pack.scenarios))


def agent_seconds(task_count: int, tries: int, steps_per_pass: int, max_tokens: int, context_tokens: int,
                  rate: float) -> float:
    """The budgets' ceiling (every step of every try a call, its context part full, the gate per try), times the
    share of that ceiling runs take (`agent_step_fill`: tasks pass or stop early, and a passed try has no second)."""
    cost = load_budget().cost
    # no depth term: the agent's coefficients were fitted without one (its fills absorb it)
    prompt = context_tokens * cost["agent_context_fill"] / cost["prefill_per_decode"]
    per_call = (max_tokens * cost["answer_fill"]["agent"] + prompt) / rate + cost["call_overhead_s"]
    return task_count * tries * cost.get("agent_step_fill", 1.0) * (steps_per_pass * per_call + cost["agent_gate_s"])
