"""The quality phase's quick mode on the real llama-server with SmolLM2: every scenario gets a
verdict that fits its schema, each with its timed call in the same ledger. The score is not checked
(a 135M model is not the subject). With CI=true nothing here skips."""

from collections import Counter

import pytest

from orchestrator.core import datafiles
from orchestrator.core.ledger import read_records, read_state
from orchestrator.flows.pipeline import byo_targets
from orchestrator.evaluate.quality.packs import MODES, load_packs
from orchestrator.measure.run import RunOptions, run_suites
from tests.test_integration_llama import MODEL, llama_server, smollm2  # noqa: F401  (session fixtures)
from tests.test_integration_run import server  # noqa: F401  (SmolLM2 on the real llama-server, module-scoped)

pytestmark = pytest.mark.integration
MAX_TOKENS = 48  # a short answer or one tool call; 34 calls at ~5 tok/s (2 busy shared cores) take ~5 min


def test_quick_mode_judges_every_scenario_with_its_call_in_the_same_ledger(server, tmp_path):  # noqa: F811
    assert "--jinja" in server.command.argv  # the chat template that renders tools
    targets = byo_targets(server.base_url, [MODEL], "llamacpp", "ci:llamacpp", "ci")
    options = RunOptions(phases=["hello", "quality"], runs=0, num_ctx=2048, num_predict=MAX_TOKENS, force_load=True)
    result = run_suites(targets, options, tmp_path, "run-quality")
    assert result.finished
    records = list(read_records(tmp_path / "run.jsonl"))
    verdicts = [r for r in records if r["type"] == "quality"]
    expected = Counter((p.id, s.id) for p in load_packs(MODES["quick"], mode="quick") for s in p.scenarios)
    assert Counter((v["pack"], v["scenario"]) for v in verdicts) == expected
    calls = {c["prompt_id"]: c for c in records if c["type"] == "call" and c["phase"] == "quality"}
    for verdict in verdicts:
        datafiles.validate(verdict, "quality-record", "quality line")
        call = calls[f"{verdict['pack']}/{verdict['scenario']}"]
        assert call["error"] is None and call["max_tokens"] <= MAX_TOKENS
        assert call["first_delta_ms"] is not None and call["completion_tokens"] > 0
        assert verdict["failure_mode"] not in ("http_error", "server_error")
    # the hello calls' decode rate set the timeouts: never below the packs' own
    assert all(v["timeout_s"] >= 60 for v in verdicts)
    assert {c["phase"] for c in records if c["type"] == "call"} == {"hello", "quality"}
    assert read_state(tmp_path / "run.jsonl").finished
