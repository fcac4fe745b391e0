"""Auto's per-axis time budget (orchestrator/flows/budget.py): floors, shares, skips with reasons, rate sources."""

import json
import os
from dataclasses import replace
from unittest import mock

import pytest

from orchestrator.core import datafiles
from orchestrator.flows.auto import estimate_phases, plan_auto
from orchestrator.flows.budget import (DecodeRate, agent_candidates, decode_rate, load_budget, measured_rate, plan_budget,
                                 quality_candidates)
from orchestrator.cli import main
from orchestrator.plan.decide import decide
from orchestrator.core.paths import REPO_ROOT
from orchestrator.plan.probe import Hardware
from orchestrator.plan.profiles import load_profiles
from orchestrator.plan.rulecheck import GOLDEN_DIR
from orchestrator.measure.suites import PHASES
from orchestrator.core.runspec import RunOptions
from orchestrator.evaluate.quality.packs import MODES, load_packs
from orchestrator.measure.cost import agent_seconds, quality_seconds
from orchestrator.measure.phases.quality import QualityPhase

PROFILES = load_profiles()
CPU_BOX = GOLDEN_DIR / "linux-vps-cpu-4c-8gb.json"
PLAN = decide(Hardware.load(CPU_BOX), PROFILES, {"model": PROFILES.embedded_default})


def plan_at(tokens_per_sec: float, minutes: float = 15, named=None, **more):
    rate = DecodeRate(tokens_per_sec, "estimate", "test")
    speed = [p for p in named or PHASES if p in PHASES]
    return plan_budget(minutes * 60, rate, lambda runs: estimate_phases(PLAN, tokens_per_sec, speed, runs), named,
                       PLAN.num_predict, **more)


def axis(plan, name):
    return next(a for a in plan.axes if a.axis == name)


def scenarios_run(plan):
    """N of the quality axis's "…: N scenarios"."""
    return int(axis(plan, "quality").runs[0].rsplit(": ", 1)[1].split()[0])


def test_the_budget_file_validates_and_names_real_packs_and_tasks():
    datafiles.load(REPO_ROOT / "profiles" / "budget.yaml", "budget")
    budget = load_budget()
    assert list(budget.shares) == ["speed", "quality", "agent"] and abs(sum(budget.shares.values()) - 1) < 1e-9
    assert len(quality_candidates(budget, 50, 2048, False)) == len(budget.quality_candidates)
    assert len(agent_candidates(budget, 50, 2048)) == len(budget.agent_candidates)  # every task id exists


@pytest.mark.parametrize("rate", [20.0, 40.0, 90.0, 400.0])
def test_a_slow_cpu_still_runs_all_three_axes_within_the_usable_budget(rate):
    plan = plan_at(rate)
    assert "hello" in plan.phases and "quality" in plan.phases and "agent" in plan.phases
    assert sum(a.seconds for a in plan.axes) <= 15 * 60 * load_budget().headroom
    assert plan.quality and plan.agent and plan.agent["workflow"] == "two-try"
    assert plan.run_options() == {"quality": plan.quality, "agent": plan.agent, "phase_seconds": plan.phase_seconds}
    assert set(plan.phase_seconds) == set(plan.phases)  # each phase may take its estimate, stretched to its axis
    for name in ("quality", "agent"):
        assert plan.phase_seconds[name] >= axis(plan, name).seconds


def test_a_faster_machine_buys_more_on_every_axis():
    slow, fast = plan_at(25.0), plan_at(600.0)
    assert len(axis(fast, "speed").runs) > len(axis(slow, "speed").runs)
    assert set(PHASES) - {"parallel_mixed"} <= set(fast.phases)  # mixed needs two models; auto serves one
    assert scenarios_run(fast) > scenarios_run(slow) and fast.quality["mode"] == "full"
    if "generated" in fast.quality:  # the largest set within its allowance: one more generated scenario a pack would not fit
        bigger = load_packs(MODES["full"], generated=fast.quality["generated"] + 1)
        assert quality_seconds(bigger, 600.0, PLAN.num_predict) > axis(fast, "quality").allowance_s
    else:  # the largest candidate of all, `full` with every generated scenario, fits whole
        assert fast.quality == {"mode": "full", "packs": None, "repeat": 1}
    assert len(fast.agent["tasks"]) > len(slow.agent["tasks"])
    assert fast.agent["budgets"]["steps_per_pass"] > slow.agent["budgets"]["steps_per_pass"]


def test_a_slow_machine_takes_fewer_warm_repeats_before_it_drops_an_axis():
    assert plan_at(2500.0).runs == 5
    slow = plan_at(12.0)
    assert slow.runs < 5 and "warm runs" in axis(slow, "speed").skipped and "agent" in slow.phases
    assert plan_at(12.0, runs=5).runs == 5  # --runs fixes it


def test_each_skip_says_why_and_a_tiny_budget_keeps_hello_and_drops_the_rest_in_reverse_priority():
    plan = plan_at(20.0, minutes=1.5)
    assert plan.phases == ["hello"] and plan.runs == 1
    assert "this run will take longer than --time-budget" in axis(plan, "speed").skipped["time budget"]
    for name in ("quality", "agent"):
        why = plan.phase_notes[name]
        assert "smallest set" in why and "--time-budget" in why and axis(plan, name).skipped[name] == why
    speed = axis(plan, "speed")
    assert speed.runs == ["hello"] and "warm runs" in speed.skipped
    assert all("time budget" in why for phase, why in speed.skipped.items() if phase in PHASES and phase != "parallel_mixed")
    middle = plan_at(20.0, minutes=3.2)  # quality's floor fits before agent's
    assert "quality" in middle.phases and "agent" not in middle.phases


def test_phases_named_run_exactly_and_are_still_sized():
    plan = plan_at(20.0, minutes=1, named=["hello", "5q", "agent"])
    assert plan.phases == ["hello", "5q", "agent"] and plan.quality is None
    assert axis(plan, "quality").skipped == {"quality": "not named in --phases"}
    assert plan.agent["tasks"] == load_budget().agent_candidates[-1]["tasks"]  # over budget: the smallest set
    assert plan_at(2500.0, named=["quality", "agent"]).phases == ["quality", "agent"]
    assert plan.phase_seconds == {}  # what the user named runs whole


def test_quality_mode_fixes_the_quality_set_and_num_predict_caps_agent_tokens():
    plan = plan_at(2500.0, quality_mode="quick")
    assert plan.quality == {"mode": "quick", "packs": None, "repeat": 1}
    capped = plan_budget(900, DecodeRate(2500.0, "estimate", "t"), lambda runs: [], None, 64)
    assert capped.agent["budgets"]["max_tokens"] == 64


def test_a_filling_quality_candidate_takes_as_many_generated_scenarios_as_its_allowance_holds():
    budget = load_budget()
    filling = next(c for c in quality_candidates(budget, 25.0, 512, False) if c.fit and c.settings["mode"] == "medium")
    assert filling.fit(filling.seconds - 1) is None  # not even the written scenarios
    sized = filling.fit(filling.seconds * 3)
    generated = sized.settings["generated"]
    assert sized.seconds <= filling.seconds * 3 and generated > 0 and sized.settings["mode"] == "medium"
    packs = load_packs(MODES["medium"], generated=generated + 1)
    assert quality_seconds(packs, 25.0, 512) > filling.seconds * 3  # one more a pack would not fit
    phase = QualityPhase.from_options(RunOptions(phases=["quality"], quality=sized.settings))
    assert all(len(p.scenarios) == p.written + generated for p in phase.packs.values())
    assert f"{sum(len(p.scenarios) for p in phase.packs.values())} scenarios" in sized.label


def test_what_the_agent_set_leaves_goes_to_quality_and_the_schedule_stays_within_the_usable_budget():
    plan = plan_at(25.0)
    usable = plan.budget_s * load_budget().headroom
    assert sum(plan.phase_seconds.values()) <= usable + 1
    quality, agent = axis(plan, "quality"), axis(plan, "agent")
    spent = sum(s for phase, s in plan.phase_seconds.items() if phase not in ("quality", "agent"))
    # quality took what was left after the agent's estimate, up to its next scenario step
    assert plan.phase_seconds["quality"] == pytest.approx(quality.seconds, abs=0.1)
    assert plan.phase_seconds["agent"] == pytest.approx(agent.seconds, abs=0.1)
    left = usable - spent - quality.seconds - agent.seconds
    assert 0 <= left < 60, "more than a scenario step of the usable budget is unplanned"


def test_step_fill_and_verifier_time_enter_the_cost_models():
    base = load_budget()
    packs = load_packs(("codeexec",), mode="quick")

    def at(**cost):
        return mock.patch("orchestrator.measure.cost.load_budget", return_value=replace(base, cost={**base.cost, **cost}))

    with at(agent_step_fill=1.0, verify_s={}):
        ceiling, plain = agent_seconds(2, 2, 6, 256, 2048, 20.0), quality_seconds(packs, 20.0, 512)
    with at(agent_step_fill=0.5, verify_s={"codeexec": 3.0}):
        assert agent_seconds(2, 2, 6, 256, 2048, 20.0) == pytest.approx(ceiling / 2)
        assert quality_seconds(packs, 20.0, 512) - plain == pytest.approx(3.0 * len(packs[0].scenarios))


def test_shares_and_candidates_come_from_the_data_file():
    budget = load_budget()
    speed_first = replace(budget, shares={"speed": 0.98, "quality": 0.01, "agent": 0.01})
    plan = plan_budget(900, DecodeRate(60.0, "estimate", "t"), lambda runs: estimate_phases(PLAN, 60.0, PHASES, runs),
                       None, PLAN.num_predict, budget=speed_first)
    assert len(axis(plan, "speed").runs) > len(axis(plan_at(60.0), "speed").runs)
    assert plan.agent["tasks"] == budget.agent_candidates[-1]["tasks"]


def write_metadata(root, device_tag, model, rows, age_s=0.0):
    folder = root / "someone" / device_tag / f"run-{len(list(root.glob('*/*/run-*')))}"
    folder.mkdir(parents=True)
    path = folder / "metadata.json"
    path.write_text(json.dumps({"run_id": folder.name, "cells": rows}))
    os.utime(path, (1e9 - age_s, 1e9 - age_s))
    return path


def row(model, phase, tokens, mean_ms, calls, ttft_share=0.0):
    """A metadata cell row whose calls spent `ttft_share` of their time before the first token."""
    decode_s = mean_ms * calls / 1000 * (1 - ttft_share)
    return {"cell_id": f"box:llama.cpp:{model}", "phase": phase, "completion_tokens_total": tokens,
            "duration_ms_mean": mean_ms, "n_calls": calls, "n_errors": 0, "tokens_per_sec_mean": tokens / decode_s}


def test_the_rate_is_tuned_else_measured_here_else_estimated(tmp_path):
    assert measured_rate(tmp_path, "box", "m", 20) is None
    write_metadata(tmp_path, "box", "m", [row("m", "hello", 1000, 5000, 4)], age_s=100)  # older: 50 tok/s
    write_metadata(tmp_path, "box", "m", [row("m", "hello", 900, 1000, 3), row("m", "quality", 10, 1, 100),
                                          row("other", "5q", 1, 100000, 9)])
    write_metadata(tmp_path, "elsewhere", "m", [row("m", "hello", 1, 1000, 1)], age_s=-100)
    rate, detail, call_seconds = measured_rate(tmp_path, "box", "m", 20)
    assert rate == pytest.approx(300.0) and "run-1" in detail  # the newest run here, speed phases of this model only
    assert call_seconds == {"hello": 1.0}  # its speed phases' mean call, this model's only
    (tmp_path / "someone" / "box" / "run-1" / "metadata.json").write_text("{damaged")
    assert measured_rate(tmp_path, "box", "m", 20)[0] == pytest.approx(50.0)
    write_metadata(tmp_path, "box", "m", [row("m", "edge_append", 1000, 10000, 1, ttft_share=0.5)])
    assert measured_rate(tmp_path, "box", "m", 20)[0] == pytest.approx(200.0)  # decoding time, not the prefill before it
    assert decode_rate(120.0, (50.0, "x", {}), 10.0).source == "tuned"
    assert decode_rate(None, (50.0, "x", {"hello": 2.0}), 10.0) == DecodeRate(50.0, "measured", "x", {"hello": 2.0})
    assert decode_rate(None, None, 10.0).source == "estimate"


def test_auto_plan_uses_a_measured_run_and_the_manifest_field_validates(tmp_path):
    hw = Hardware.load(CPU_BOX)
    write_metadata(tmp_path, hw.device_tag, PROFILES.embedded_default, [row(PROFILES.embedded_default, "hello", 4000, 10000, 20)])
    auto_plan = plan_auto(hw, PROFILES, {}, None, 5, 15, tmp_path, "ci", None)
    assert auto_plan.budget.rate == DecodeRate(20.0, "measured", auto_plan.budget.rate.detail, {"hello": 10.0})
    assert auto_plan.estimates[0].seconds == 10.0 * auto_plan.estimates[0].calls  # hello: its measured call
    assert auto_plan.phases == auto_plan.budget.phases and {"hello", "quality", "agent"} <= set(auto_plan.phases)
    schema = json.loads((REPO_ROOT / "orchestrator" / "core" / "schemas" / "manifest.schema.json").read_text())
    import jsonschema
    jsonschema.validate(auto_plan.budget.to_json(), schema["properties"]["budget_plan"])


def test_a_measured_runs_call_seconds_stand_in_for_the_speed_phases_cost_model(tmp_path):
    """How long a model's answers run is its own: hello measured at 6 s a call is planned at 6 s a call (its 3
    items x (1 cold + 5 warm) = 18 calls); a parallel phase at its lanes' wall over its calls (they queue)."""
    model = PROFILES.embedded_default
    path = write_metadata(tmp_path, "box", model, [row(model, "hello", 6000, 6000, 18), row(model, "parallel_same", 3000, 6000, 18)])
    doc = json.loads(path.read_text())
    doc["lanes"] = [{"phase": "parallel_same", "cells": [f"box:llama.cpp:{model}"], "lanes": 3, "calls": 18, "wall_ms": 36000.0}]
    path.write_text(json.dumps(doc))
    rate, _, call_seconds = measured_rate(tmp_path, "box", model, 20)
    assert call_seconds == {"hello": 6.0, "parallel_same": 2.0}
    hello, parallel, edge = estimate_phases(PLAN, rate, ["hello", "parallel_same", "edge_suite"], 5, call_seconds)
    assert (hello.calls, hello.seconds) == (18, 108.0) and (parallel.calls, parallel.seconds) == (18, 36.0)
    assert edge.seconds == estimate_phases(PLAN, rate, ["edge_suite"], 5)[0].seconds > 0  # not measured: the cost model
    # an appended conversation stops near num_ctx, after as many calls as its answers allow: its cost model
    appended = estimate_phases(PLAN, rate, ["edge_append"], 5, {"edge_append": 30.0})[0]
    assert appended.seconds == estimate_phases(PLAN, rate, ["edge_append"], 5)[0].seconds
    mixed, = estimate_phases(PLAN, rate, ["parallel_mixed"], 5)
    assert (mixed.calls, mixed.seconds) == (0, 0.0) and "two models" in mixed.skip  # auto serves one: it costs nothing
    assert "two models" in axis(plan_at(60.0), "speed").skipped["parallel_mixed"]  # and the plan says why it is not run


def test_dry_run_lists_each_axis_with_what_runs_and_what_is_skipped(tmp_path, capsys):
    assert main(["auto", "--dry-run", "--yes", "--hardware", str(CPU_BOX), "--submitter-handle", "ci",
                 "--submissions-dir", str(tmp_path), "--time-budget", "2"]) == 0
    out = capsys.readouterr().out
    assert "time budget 2.0 min; decode rate" in out and "speed (" in out
    assert "quality (" in out and "agent (" in out and ("skip not selected" in out or "run  " in out)
    assert not any(tmp_path.iterdir())


def quality_call(pack, answer, cap=512, model="m", error=None):
    return {"type": "call", "phase": "quality", "prompt_id": f"{pack}/S-1", "model": model, "max_tokens": cap,
            "completion_tokens": answer, "error": error}


def write_ledger(root, device_tag, records, age_s=0.0):
    folder = root / "someone" / device_tag / f"run-{len(list(root.glob('*/*/run-*')))}"
    folder.mkdir(parents=True)
    path = folder / "run.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.utime(path, (1e9 - age_s, 1e9 - age_s))
    return path


def test_answer_fills_are_per_pack_from_quality_calls_and_ignore_what_cannot_be_counted():
    from orchestrator.measure.cost import answer_fills

    calls = [quality_call("toolcall", 64)] * 3 + [quality_call("bfcl-java", 400)] * 3 + [
        quality_call("bfcl-java", 2000),  # over its cap (a server that ignored it): counted as the cap
        quality_call("math", 100), quality_call("math", 100),  # two calls: too few to stand in for the table
        quality_call("toolcall", 500, error="timeout"), {**quality_call("toolcall", 500), "phase": "hello"},
        {**quality_call("toolcall", "many"), "max_tokens": 512}, {**quality_call("toolcall", 500), "max_tokens": None}]
    assert answer_fills(calls) == {"toolcall": 0.125, "bfcl-java": round((3 * 400 + 512) / (4 * 512), 3)}


def test_a_packs_fill_is_measured_else_the_table_else_the_pooled_default():
    from orchestrator.measure.cost import pack_fill

    cost = load_budget().cost
    from orchestrator.evaluate.quality.packs import PACK_ORDER, bfcl_pack_ids

    assert set(cost["quality_pack_fill"]) <= {*PACK_ORDER, *bfcl_pack_ids()}  # every key a real pack
    assert pack_fill("bfcl-java", {"bfcl-java": 0.9}) == 0.9
    assert pack_fill("bfcl-java", {"toolcall": 0.9}) == cost["quality_pack_fill"]["bfcl-java"]
    assert pack_fill("codeexec") == cost["answer_fill"]["quality"]  # in neither


def quality_packs_of(mode):
    from orchestrator.evaluate.quality.packs import selected_packs

    return selected_packs(None, mode)


def test_measured_answer_fills_pool_the_newest_runs_of_this_model_on_this_device(tmp_path):
    from orchestrator.flows.budget import measured_answer_fills

    write_ledger(tmp_path, "box", [quality_call("toolcall", 128)] * 3, age_s=100)
    write_ledger(tmp_path, "box", [quality_call("toolcall", 256)] * 3 + [quality_call("struct", 512, model="other")] * 3)
    write_ledger(tmp_path, "elsewhere", [quality_call("math", 512)] * 3)
    (tmp_path / "someone" / "box" / "run-9").mkdir()
    (tmp_path / "someone" / "box" / "run-9" / "run.jsonl").write_text("[1, 2]\n")  # damaged: skipped
    os.utime(tmp_path / "someone" / "box" / "run-9" / "run.jsonl", (1e9 - 200, 1e9 - 200))
    assert measured_answer_fills(tmp_path, "box", "m", 20) == {"toolcall": 0.375}
    assert measured_answer_fills(tmp_path, "box", "m", 1) == {"toolcall": 0.5}  # newest only


def test_measured_fills_price_a_quality_set_by_its_own_answers(tmp_path):
    """A model whose BFCL answers run long buys fewer scenarios than the table's fills would, and the plan says
    so; the fills reach the manifest's budget_plan."""
    table = plan_at(60.0)
    wordy = {p.id: 0.95 for p in quality_packs_of("quick")}
    rate = DecodeRate(60.0, "estimate", "test", answer_fills=wordy)
    plan = plan_budget(15 * 60, rate, lambda runs: estimate_phases(PLAN, 60.0, list(PHASES), runs), None, PLAN.num_predict)
    assert scenarios_run(plan) < scenarios_run(table)
    assert plan.to_json()["decode_rate"]["answer_fills"] == wordy
    assert sum(a.seconds for a in plan.axes) <= 15 * 60 * load_budget().headroom
    assert decode_rate(None, None, 10.0, {"math": 0.2}).answer_fills == {"math": 0.2}
    assert decode_rate(5.0, None, 10.0, {"math": 0.2}).answer_fills == {"math": 0.2}  # a tuned rate keeps them
