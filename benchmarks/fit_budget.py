"""Fit the budget planner's cost model (profiles/budget.yaml `cost`) to measured run folders (#27 §5).

    python3 benchmarks/fit_budget.py RUN_DIR [RUN_DIR …]          # folders holding run.jsonl
    python3 benchmarks/fit_budget.py submissions/*/*/run-*           # every run here

Reads each run's ledger (nothing is launched; a second or two a run) and prints, per run and pooled
(the median over the runs that have the figure):
- the decode rate of its speed calls (the rate the planner plans with) and the prefill rate: their ratio
  is `prefill_per_decode`;
- quality: the share of each answer's cap the model used, pooled (`answer_fill.quality`) and per pack
  (`quality_pack_fill`: a toolcall answer is one call, a BFCL one writes code), prompt characters per
  token (`chars_per_token`), and the per-call overhead left once the model's own time is taken out of the
  phase's wall time (`call_overhead_s`; codeexec's sandbox separately as `verify_s.codeexec`);
- agent: `answer_fill.agent`, `agent_context_fill` (prompt tokens over the context budget), `agent_step_fill`
  (calls over the budgets' ceiling of steps) and the gate's seconds a try (`agent_gate_s`);
- speed: the share of each speed answer's cap used (`speed.answer_fill`), the plain-text prompt's tokens
  as template tokens plus characters over `speed.text_chars_per_token` (a line through the speed calls'
  prompts), and how decoding slows with depth (`decode_depth_tokens`: 1 / (1 + depth / D) through the
  single-stream speed calls' own decode rates);
- per phase: the wall time measured beside the estimate with today's coefficients (rerun it after pasting
  the fitted block to see theirs);
- for an auto run (its manifest has `budget_plan`): the share of --time-budget the run used (the issue's
  target: at least 85%, never more than 105%).
Then the fitted `cost:` block to paste into profiles/budget.yaml. Asserts nothing.
"""

from __future__ import annotations

import json
import statistics
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.core.ledger import read_records  # noqa: E402
from orchestrator.core.runfolder import LEDGER_NAME, MANIFEST_NAME, METADATA_NAME  # noqa: E402
from orchestrator.evaluate.quality.packs import PACK_ORDER, load_packs  # noqa: E402
from orchestrator.flows.budget import speed_decoding  # noqa: E402
from orchestrator.core.runspec import RunOptions  # noqa: E402
from orchestrator.measure.cost import answer_fills, load_budget  # noqa: E402
from orchestrator.measure.phases import load_phase  # noqa: E402
from orchestrator.measure.suites import load_suite  # noqa: E402


def when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def phase_spans(records: list[dict[str, Any]]) -> dict[str, float]:
    """Wall seconds per phase: from its first call to the next phase's first call (or the run's end)."""
    starts: dict[str, float] = {}
    for r in records:
        if r.get("type") == "call":
            starts.setdefault(r["phase"], when(r["started_at_utc"]))
    end = next((when(r["finished_at_utc"]) for r in reversed(records) if r.get("type") == "end"), None)
    ordered = sorted(starts.items(), key=lambda item: item[1])
    spans = {}
    for (phase, start), following in zip(ordered, ordered[1:] + [(None, end)]):
        if following[1] is not None:
            spans[phase] = following[1] - start
    return spans


def rates(run_dir: Path, calls: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """(decode tok/s over the speed phases exactly as the planner reads it, from the run's metadata.json:
    the coefficients fitted here go with that rate; median prefill tok/s over all calls)."""
    metadata = run_dir / METADATA_NAME
    decoded = speed_decoding(json.loads(metadata.read_text(encoding="utf-8")), None) if metadata.is_file() else None
    prefill = [c["prefill_tokens_per_sec"] for c in calls if c.get("prefill_tokens_per_sec")]
    return (decoded[0] / decoded[1] if decoded else None), (statistics.median(prefill) if prefill else None)


def fit_run(run_dir: Path, scenarios: dict[str, Any]) -> dict[str, Any]:
    records = list(read_records(run_dir / LEDGER_NAME))
    meta = records[0]
    calls = [r for r in records if r.get("type") == "call" and not r.get("error")]
    decode, prefill = rates(run_dir, calls)
    spans = phase_spans(records)
    out: dict[str, Any] = {"run": run_dir.name, "decode_tps": decode, "prefill_tps": prefill, "spans": spans,
                           "num_predict": meta["options"].get("num_predict")}
    if decode and prefill:
        out["prefill_per_decode"] = prefill / decode
    quality = [c for c in calls if c["phase"] == "quality"]
    if quality:  # token shares need no timing: a run cut short still gives them
        out["answer_fill_quality"] = sum(c["completion_tokens"] or 0 for c in quality) / sum(c["max_tokens"] for c in quality)
        out["pack_fills"] = answer_fills(quality)
        sized = [(scenarios[c["prompt_id"]], c["prompt_tokens"]) for c in quality
                 if c["prompt_id"] in scenarios and c.get("prompt_tokens")]
        if sized:
            out["chars_per_token"] = sum(len(json.dumps([s.messages, s.tools])) for s, _ in sized) / sum(t for _, t in sized)
    if quality and decode and prefill and "quality" in spans:
        model_s = sum((c["completion_tokens"] or 0) / decode + (c["prompt_tokens"] or 0) / prefill for c in quality)
        code = [c for c in quality if c["prompt_id"].startswith("codeexec/")]
        verdicts = {(r["pack"], r["scenario"]): r for r in records if r.get("type") == "quality"}
        out["quality_calls"] = len(quality)
        # codeexec's sandbox: the gap after its calls beyond the other calls' gap is its verifier's time
        out["call_overhead_s"] = (spans["quality"] - model_s) / len(quality)
        if code and len(code) < len(quality):
            by_start = sorted(quality, key=lambda c: when(c["started_at_utc"]))
            gaps = {c["prompt_id"]: when(n["started_at_utc"]) - when(c["started_at_utc"]) - (c["total_duration_ms"] or 0) / 1000
                    for c, n in zip(by_start, by_start[1:])}
            plain = [g for k, g in gaps.items() if not k.startswith("codeexec/")]
            coded = [g for k, g in gaps.items() if k.startswith("codeexec/")]
            if plain and coded:
                out["verify_codeexec_s"] = max(0.0, statistics.median(coded) - statistics.median(plain))
        out["quality_judged"] = len(verdicts)
    agent = [c for c in calls if c["phase"] == "agent"]
    settings = meta["options"].get("agent") or {}
    budgets = settings.get("budgets") or {}
    if agent and decode and "agent" in spans and budgets:
        out["answer_fill_agent"] = sum(c["completion_tokens"] or 0 for c in agent) / sum(c["max_tokens"] for c in agent)
        prompts = [c["prompt_tokens"] for c in agent if c.get("prompt_tokens")]
        if prompts and budgets.get("context_tokens"):
            out["agent_context_fill"] = statistics.fmean(prompts) / budgets["context_tokens"]
        tries = 2 if settings.get("workflow") == "two-try" else budgets.get("passes", 1)
        ceiling = len(settings.get("tasks") or []) * tries * budgets.get("steps_per_pass", 1)
        if ceiling:
            out["agent_step_fill"] = min(1.0, len(agent) / ceiling)
        passes = [r for r in records if r.get("record") == "agent_pass" or r.get("type") == "agent_pass"]
        if passes:
            calls_s = sum((c["total_duration_ms"] or 0) / 1000 for c in agent)
            out["agent_gate_s"] = max(0.0, (spans["agent"] - calls_s) / len(passes))
    out.update(fit_speed(calls, meta))
    if decode:
        options = RunOptions(phases=[], num_ctx=meta["options"]["num_ctx"])
        out["speed_estimates"] = {name: round(load_phase(name, options=options).estimate_seconds(
            decode, out["num_predict"], meta["options"]["runs"])) for name in spans if name not in ("quality", "agent")}
    manifest = run_dir / MANIFEST_NAME
    if manifest.is_file():
        plan = json.loads(manifest.read_text(encoding="utf-8")).get("budget_plan")
        end = next((when(r["finished_at_utc"]) for r in reversed(records) if r.get("type") == "end"), None)
        if plan and end:
            out["budget_used"] = (end - when(meta["started_at_utc"])) / plan["budget_s"]
    return out


def fit_speed(calls: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """The speed phases' coefficients: answer fill, prompt tokens from characters, decoding's slowdown with depth."""
    speed = [c for c in calls if c["phase"] not in ("quality", "agent") and c.get("max_tokens")]
    if not speed:
        return {}
    out: dict[str, Any] = {"speed_answer_fill": sum(c["completion_tokens"] or 0 for c in speed) / sum(c["max_tokens"] for c in speed)}
    suites = {name: load_suite(name) for name in {c["phase"] for c in speed}}
    # each prompt once (an appended conversation's prompt holds its history, so that phase is left out)
    sized = {(c["phase"], c["prompt_id"]): c["prompt_tokens"] for c in speed if c.get("prompt_tokens")
             and suites[c["phase"]].mode != "append" and any(i.id == c["prompt_id"] for i in suites[c["phase"]].items)}
    points = [(len(suites[p].system or "") + len(next(i for i in suites[p].items if i.id == k).prompt), t)
              for (p, k), t in sized.items()]
    if len(points) >= 3:
        mx, my = statistics.fmean(x for x, _ in points), statistics.fmean(y for _, y in points)
        slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
        out["text_chars_per_token"], out["template_tokens"] = 1 / slope, max(0.0, my - slope * mx)
    single = [c for c in speed if c.get("lane") is None and c.get("server_tokens_per_sec") and (c["completion_tokens"] or 0) >= 32]
    shallow = [c["server_tokens_per_sec"] for c in single if c["prompt_tokens"] + c["completion_tokens"] < 200]
    if shallow and len(single) > len(shallow):
        r0 = statistics.median(shallow)  # rate near depth 0; r0 / r(d) - 1 = d / D, a line through the origin
        xs = [(c["prompt_tokens"] + c["completion_tokens"] / 2, r0 / c["server_tokens_per_sec"] - 1) for c in single]
        slope = sum(x * y for x, y in xs) / sum(x * x for x, _ in xs)
        if slope > 0:
            out["decode_depth_tokens"] = 1 / slope
    return out


FIELDS = {"prefill_per_decode": ("prefill_per_decode",), "answer_fill_quality": ("answer_fill", "quality"),
          "answer_fill_agent": ("answer_fill", "agent"), "chars_per_token": ("chars_per_token",),
          "call_overhead_s": ("call_overhead_s",), "agent_context_fill": ("agent_context_fill",),
          "agent_step_fill": ("agent_step_fill",), "agent_gate_s": ("agent_gate_s",),
          "verify_codeexec_s": ("verify_s", "codeexec"), "decode_depth_tokens": ("decode_depth_tokens",),
          "speed_answer_fill": ("speed", "answer_fill"), "text_chars_per_token": ("speed", "text_chars_per_token"),
          "template_tokens": ("speed", "template_tokens")}


# A per-call overhead below zero means the rates overstate the calls' time a little: the planner takes none.
FLOORS = {"call_overhead_s": 0.0}


def fitted_cost(runs: list[dict[str, Any]], current: dict[str, Any]) -> dict[str, Any]:
    """Today's `cost` with each figure the runs measured replaced by its median over them."""
    cost = json.loads(json.dumps(current))
    for name, path in FIELDS.items():
        values = [run[name] for run in runs if run.get(name) is not None]
        if values:
            node = cost
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = round(max(statistics.median(values), FLOORS.get(name, float("-inf"))), 3)
    per_pack: dict[str, list[float]] = {}
    for run in runs:
        for pack, fill in (run.get("pack_fills") or {}).items():
            per_pack.setdefault(pack, []).append(fill)
    cost["quality_pack_fill"] = {**cost.get("quality_pack_fill", {}),
                                 **{pack: round(statistics.median(v), 3) for pack, v in sorted(per_pack.items())}}
    return cost


def main() -> None:
    dirs = [Path(a) for a in sys.argv[1:] if (Path(a) / LEDGER_NAME).is_file()]
    if not dirs:
        sys.exit("usage: fit_budget.py RUN_DIR [RUN_DIR …] (folders holding run.jsonl)")
    packs = load_packs(PACK_ORDER)
    scenarios = {f"{p.id}/{s.id}": s for p in packs for s in p.scenarios}
    runs = [fit_run(d, scenarios) for d in dirs]
    for run in runs:
        shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in run.items() if k not in ("spans", "speed_estimates")}
        print(f"{run['run']}: {shown}")
        print(f"  phase wall seconds: { {k: round(v) for k, v in run['spans'].items()} }")
        if run.get("speed_estimates"):
            print(f"  speed phases estimated at its decode rate with today's coefficients: {run['speed_estimates']}")
        if "budget_used" in run:
            print(f"  used {run['budget_used']:.0%} of --time-budget (target 85%..105%)")
    cost = fitted_cost(runs, load_budget().cost)
    print("\nfitted (replace profiles/budget.yaml's cost: block with it):")
    print(yaml.safe_dump({"cost": cost}, sort_keys=False, default_flow_style=None), end="")


if __name__ == "__main__":
    main()
