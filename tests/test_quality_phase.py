"""The quality phase in the spine, against the FAKE OpenAI server's scripted tool calls: records in
the run's ledger, resume, timeouts, the CLI (run, negative control, rescore, inspect)."""

import json
from collections import Counter

import pytest

from orchestrator.core import datafiles
from orchestrator.cli import main
from orchestrator.core.ledger import read_records, read_state
from orchestrator.measure.phases import load_phase
from orchestrator.flows.pipeline import byo_targets
from orchestrator.evaluate.quality import runner
from orchestrator.evaluate.quality.packs import load_packs
from orchestrator.measure.run import RunOptions, run_suites
from tests.fakes.openai_server import start_in_thread

QUICK = {"mode": "quick", "packs": None, "repeat": 1}


@pytest.fixture()
def fake():
    srv, state, url = start_in_thread()
    state.tool_calls = [("get_weather", {"city": "Paris"})]
    yield state, url
    srv.shutdown()


def targets(url, model="fake-tools"):
    return byo_targets(url, [model], "llamacpp", "node:llamacpp", "node")


def lines(run_dir, kind):
    return [r for r in read_records(run_dir / "run.jsonl") if r["type"] == kind]


def quick_scenarios():
    return [(p.id, s.id) for p in load_packs(("toolcall", "instruct"), mode="quick") for s in p.scenarios]


def test_hello_and_quality_share_one_ledger_every_scenario_judged_and_its_call_timed(fake, tmp_path):
    state, url = fake
    result = run_suites(targets(url), RunOptions(phases=["hello", "quality"], runs=1), tmp_path, "run-1")
    assert result.status == "complete"
    verdicts = lines(tmp_path, "quality")
    assert sorted((v["pack"], v["scenario"]) for v in verdicts) == sorted(quick_scenarios())
    calls = {c["prompt_id"]: c for c in lines(tmp_path, "call") if c["phase"] == "quality"}
    assert len(calls) == len(verdicts) and {c["phase"] for c in lines(tmp_path, "call")} == {"hello", "quality"}
    for verdict in verdicts:
        datafiles.validate(verdict, "quality-record", "test")
        call = calls[f"{verdict['pack']}/{verdict['scenario']}"]
        assert call["first_delta_ms"] is not None and call["finish_reason"] == verdict["finish_reason"]
    # the scripted get_weather(city=Paris) is TC-01's answer, and the tools went out with the request
    assert next(v for v in verdicts if v["scenario"] == "TC-01")["passed"]
    assert all(r.get("tools") for r in state.requests if r["messages"][-1]["content"] == "What's the weather in Paris right now?")
    assert all(r["temperature"] == 0 for r in state.requests[-len(verdicts):])
    saved = {tuple(line["key"]) for line in read_records(tmp_path / "responses.jsonl")}
    assert all(tuple(v["response_ref"]) in saved for v in verdicts)
    meta = lines(tmp_path, "meta")[0]
    assert meta["options"]["quality"] == QUICK and meta["suites"]["quality"]["version"] == "toolcall@2,instruct@2"


def test_timeouts_scale_with_the_speed_calls_decode_rate_and_a_stall_is_a_timeout_verdict(fake, tmp_path, monkeypatch):
    state, url = fake
    state.fixed_rate = 5.0
    run_suites(targets(url, "fake"), RunOptions(phases=["hello", "quality"], runs=1,
                                                 quality={**QUICK, "packs": ["toolcall"]}), tmp_path, "run-1")
    pack = load_packs(("toolcall",), mode="quick")[0]
    rates = [c["tokens_per_sec"] for c in lines(tmp_path, "call") if c["phase"] == "hello"]
    assert all(v["timeout_s"] > pack.case_seconds for v in lines(tmp_path, "quality")) and rates

    monkeypatch.setattr(runner, "case_timeout", lambda *args: 0.3)
    state.stall_s = 2.0
    stalled = tmp_path / "stalled"
    result = run_suites(targets(url, "fake-stall"), RunOptions(phases=["quality"], quality={**QUICK, "packs": ["toolcall"]}),
                        stalled, "run-2")
    assert result.finished
    assert {v["failure_mode"] for v in lines(stalled, "quality")} == {"timeout"}


def test_resume_after_a_kill_runs_only_the_scenarios_without_a_verdict(fake, tmp_path):
    state, url = fake
    options = RunOptions(phases=["quality"], quality={**QUICK, "packs": ["toolcall"]})
    run_suites(targets(url), options, tmp_path, "run-1")
    ledger = tmp_path / "run.jsonl"
    kept = ledger.read_text().splitlines()
    # killed after 4 verdicts and the call line of the 5th (its verdict lost), before the end line
    cut = [i for i, line in enumerate(kept) if json.loads(line)["type"] == "quality"][3]
    ledger.write_text("\n".join(kept[:cut + 2]) + "\n")
    before = len(state.requests)
    run_suites(targets(url), options, tmp_path, resume=True)
    total = len(load_packs(("toolcall",), mode="quick")[0].scenarios)
    assert len(state.requests) - before == total - 4
    verdicts = lines(tmp_path, "quality")
    assert len(verdicts) == total and len({(v["scenario"], v["repeat_idx"]) for v in verdicts}) == total
    assert sum(c.get("attempt") == 1 for c in lines(tmp_path, "call")) == 1  # the call whose verdict was lost
    assert read_state(ledger).finished


def test_repeat_and_smoke_shape_the_units(tmp_path):
    phase = load_phase("quality", options=RunOptions(phases=["quality"], quality={**QUICK, "repeat": 3}))
    units = phase.units(["n:e:m"], RunOptions(phases=["quality"]))
    assert len(units) == 3 * len(quick_scenarios())
    assert Counter(u.keys[0].run_idx for u in units) == {0: len(quick_scenarios()), 1: len(quick_scenarios()), 2: len(quick_scenarios())}
    assert len(phase.units(["n:e:m"], RunOptions(phases=["quality"], smoke=True))) == 3 * 2


def test_cli_quality_run_rescore_and_inspect(fake, tmp_path, capsys):
    state, url = fake
    root = tmp_path / "subs"
    code = main(["quality", "run", "--packs", "toolcall", "--target-url", url, "--models", "fake-tools",
                 "--engine", "llamacpp", "--submissions-dir", str(root), "--submitter-handle", "tester",
                 "--device-tag", "node", "--hardware", "tests/fixtures/hardware/linux-arc-a380-6gb.json"])
    assert code == 0
    (run_dir,) = root.glob("tester/node/run-*")
    ledger_before = (run_dir / "run.jsonl").read_text()
    assert main(["quality", "rescore", str(run_dir)]) == 0
    after = (run_dir / "run.jsonl").read_text()
    assert after.startswith(ledger_before)  # appended, never rewritten
    rescored = lines(run_dir, "quality_rescore")
    assert len(rescored) == len(lines(run_dir, "quality")) and all(r["previous_failure_mode"] for r in rescored)
    capsys.readouterr()
    assert main(["quality", "inspect", str(run_dir), "--scenario", "TC-01"]) == 0
    out = capsys.readouterr().out
    assert "toolcall TC-01 #0: PASS" in out and "get_weather" in out
    assert main(["quality", "inspect", str(run_dir), "--failed", "--diff", str(run_dir)]) == 0
    assert "==" not in capsys.readouterr().out  # a run does not differ from itself


def test_cli_negative_control_needs_no_endpoint_and_finds_no_pass(capsys):
    assert main(["quality", "run", "--negative-control", "--mode", "full"]) == 0
    assert ", 0 passed (must be 0)" in capsys.readouterr().out


def test_cli_quality_run_without_a_target_is_one_line_exit_2(capsys):
    assert main(["quality", "run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--target-url" in err


def test_an_ollama_cell_gets_the_tools_in_its_native_api(tmp_path):
    from tests.fakes import ollama as fake_ollama

    srv, state, url = fake_ollama.start_in_thread()
    try:
        cell = byo_targets(url, ["smollm2:135m"], "ollama", "node:ollama", "node")
        run_suites(cell, RunOptions(phases=["quality"], quality={**QUICK, "packs": ["toolcall"]}), tmp_path, "run-1")
    finally:
        srv.shutdown()
    chats = [body for path, body in state.requests if path == "/api/chat"]
    assert chats and all(body.get("tools") for body in chats if body["messages"][-1]["content"].startswith("What's the weather"))
    assert len(lines(tmp_path, "quality")) == len(load_packs(("toolcall",), mode="quick")[0].scenarios)


def test_report_has_the_quality_section_and_metadata_and_uses_the_newest_verdict(fake, tmp_path):
    from orchestrator.evaluate.quality.rundir import rescore_run
    from orchestrator.publish.report import report

    state, url = fake
    state.chat_template_caps = {"supports_tools": False}
    run_suites(targets(url), RunOptions(phases=["hello", "quality"], runs=1), tmp_path, "run-1")
    done = report(tmp_path, plots=False)
    assert lines(tmp_path, "meta")[0]["cells"][0]["chat_template_tools"] is False
    assert "never saw the tool declarations" in done.markdown
    datafiles.validate(done.metadata, "metadata", "test")
    (cell,) = done.metadata["quality"]
    assert cell["summary"].startswith("Quality: toolcall 1/") and "(quick, packs v2, " in cell["summary"]
    assert "## Speed per cell and phase" in done.markdown and "## Quality" in done.markdown
    assert "| toolcall (v2) |" in done.markdown and "- toolcall TC-02: " in done.markdown
    # a rescore by a newer verifier wins in the report; the call's own line stays as it was
    rescore_run(tmp_path)
    ledger = tmp_path / "run.jsonl"
    lines_now = ledger.read_text().splitlines()
    newest = json.loads(next(line for line in lines_now if '"quality_rescore"' in line and '"TC-01"' in line))
    newest.update(verifier_version=newest["verifier_version"] + 1, passed=False, failure_mode="wrong_answer", detail="stricter")
    ledger.write_text("\n".join(lines_now + [json.dumps(newest)]) + "\n")
    again = report(tmp_path, plots=False)
    assert again.metadata["quality"][0]["summary"].startswith("Quality: toolcall 0/")


def test_compare_classifies_scenarios_against_three_baselines_and_exits_1_on_a_quality_regression(fake, tmp_path, capsys):
    from orchestrator.publish.report import report

    state, url = fake
    options = RunOptions(phases=["quality"], quality={**QUICK, "packs": ["toolcall"]})
    runs = []
    for index in range(4):
        if index == 3:  # the candidate calls the wrong function: TC-01 regresses
            state.tool_calls = [("send_email", {"to": "a@b.c", "subject": "x", "body": "y"})]
        run_suites(targets(url), options, tmp_path / f"run{index}", f"run-{index}")
        report(tmp_path / f"run{index}", plots=False)
        runs.append(str(tmp_path / f"run{index}"))
    assert main(["compare", *runs, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    classes = {d["scenario"]: d["status"] for d in result["quality"]}
    assert classes["TC-01"] == "regression" and result["quality_regressions"] >= 1
    assert set(classes.values()) <= {"regression", "fix", "stable_pass", "stable_fail"}
    assert main(["compare", *runs, "--exit-on-regression"]) == 1
    assert "| toolcall | TC-01 | 100% | 0% | regression |" in capsys.readouterr().out
    # two baselines are not enough to call a scenario regressed: said, not counted (the fake's timings are
    # noise, so only the quality part is checked)
    main(["compare", *runs[1:], "--json"])
    fewer = json.loads(capsys.readouterr().out)
    assert fewer["quality_regressions"] == 0 and "needs at least 3 baseline run folders" in fewer["quality_note"]


def test_auto_dry_run_plans_the_quality_phase_of_the_chosen_mode(capsys):
    args = ["auto", "--phases", "hello,quality", "--dry-run", "--yes", "--hardware", "tests/fixtures/hardware/linux-arc-a380-6gb.json",
            "--submitter-handle", "t", "--device-tag", "box"]
    assert main(args + ["--quality-mode", "quick"]) == 0
    assert "run  mode quick (toolcall, instruct): 31 scenarios" in capsys.readouterr().out
    assert main(args + ["--quality-mode", "medium"]) == 0
    medium = sum(len(p.scenarios) for p in load_packs(("toolcall", "instruct", "struct", "extract", "math"), mode="medium"))
    assert f"run  mode medium (toolcall, instruct, struct, extract, math): {medium} scenarios" in capsys.readouterr().out


def test_units_go_scenario_by_scenario_across_packs_so_a_cut_leaves_every_pack_a_balanced_prefix():
    options = RunOptions(phases=["quality"], quality={"mode": "medium", "packs": None, "repeat": 1, "generated": 3})
    phase = load_phase("quality", options=options)
    order = [unit.keys[0].prompt_id for unit in phase.units(["c"], options)]
    packs = list(phase.packs.values())
    assert order[:len(packs)] == [f"{p.id}/{p.scenarios[0].id}" for p in packs]
    assert sorted(order) == sorted(f"{p.id}/{s.id}" for p in packs for s in p.scenarios)
    cut = Counter(prompt.split("/")[0] for prompt in order[:len(order) // 2])
    assert max(cut.values()) - min(cut.values()) <= 3  # packs differ only in how many written scenarios they have
