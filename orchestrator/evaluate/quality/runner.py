"""Entry functions: run pack scenarios through an injected chat function, and the negative control.

`chat(messages, tools, max_tokens, timeout_s) -> (message, finish_reason, error)` is whatever
talks to the runtime (the run phase passes the real client); `message` is the assistant message
`{"content", "reasoning_content", "tool_calls": [{"function": {"name", "arguments": str}}]}` and
`error` is None or a ChatError. Nothing here opens a socket.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

from orchestrator.evaluate.quality.packs import Pack, Scenario
from orchestrator.evaluate.quality.records import Judged, quality_record, response_line, response_ref
from orchestrator.evaluate.sandbox.code import CodeRunner
from orchestrator.evaluate.quality.scoring import case_timeout
from orchestrator.evaluate.quality.verdict import INFRA_MODES, Verdict, fail
from orchestrator.evaluate.quality.verifiers import codeexec, verify


@dataclass(frozen=True)
class ChatError:
    kind: str  # timeout | http_error | server_error
    detail: str

    def __post_init__(self) -> None:
        if self.kind not in INFRA_MODES:
            raise ValueError(f"a chat error is one of {sorted(INFRA_MODES)}, not {self.kind!r}")


Chat = Callable[[list, "list | None", int, float], "tuple[dict | None, str | None, ChatError | None]"]


@dataclass(frozen=True)
class ScenarioResult:
    pack: str
    scenario: str
    repeat_idx: int
    verdict: Verdict
    latency_s: float | None
    timeout_s: float
    message: dict[str, Any]
    finish_reason: str | None


@dataclass(frozen=True)
class QualityRun:
    results: tuple[ScenarioResult, ...]
    records: tuple[dict[str, Any], ...]  # `quality` records, in call order
    responses: tuple[dict[str, Any], ...]  # responses.jsonl lines, one per record


def run_pack_scenarios(packs: Iterable[Pack], chat: Chat, *, cell_id: str = "quality", repeat: int = 1,
                       measured_tps: float | None = None, done: Iterable[tuple] = (),
                       code_runner: CodeRunner | None = None, on_record: Callable[[dict, dict], None] | None = None,
                       clock: Callable[[], float] = time.monotonic) -> QualityRun:
    """Every scenario of every pack, `repeat` times (arm by arm, so a cut-short run has whole arms).

    `done` holds arm keys (cell_id, pack, scenario, repeat_idx) already recorded: resume skips them.
    `on_record(record, response_line)` is called as each verdict lands, so the caller can append
    it to the ledger before the next call starts.
    """
    if repeat < 1:
        raise ValueError("repeat is at least 1")
    done = set(done)
    packs = tuple(packs)
    results, records, responses = [], [], []
    for repeat_idx in range(repeat):
        for pack in packs:
            for scenario in pack.scenarios:
                if (cell_id, pack.id, scenario.id, repeat_idx) in done:
                    continue
                result, record, line = run_arm(pack, scenario, chat, cell_id, repeat_idx, measured_tps, code_runner, clock)
                if on_record:
                    on_record(record, line)
                results.append(result)
                records.append(record)
                responses.append(line)
    return QualityRun(tuple(results), tuple(records), tuple(responses))


def run_arm(pack: Pack, scenario: Scenario, chat: Chat, cell_id: str, repeat_idx: int, measured_tps: float | None,
            code_runner: CodeRunner | None = None,
            clock: Callable[[], float] = time.monotonic) -> tuple[ScenarioResult, dict[str, Any], dict[str, Any]]:
    """One scenario call judged: (result, its `quality` record, its responses.jsonl line)."""
    result = _one(pack, scenario, chat, repeat_idx, measured_tps, code_runner, clock)
    net_isolated = (code_runner or codeexec.default_runner()).net_isolated if scenario.kind == "codeexec" else None
    record = quality_record(Judged(cell_id, pack, scenario.id, repeat_idx, result.verdict), result.timeout_s,
                            result.latency_s, result.finish_reason, net_isolated)
    line = response_line(response_ref(cell_id, pack.id, scenario.id, repeat_idx), result.message, result.finish_reason)
    return result, record, line


def _one(pack: Pack, scenario: Scenario, chat: Chat, repeat_idx: int, measured_tps: float | None,
         code_runner: CodeRunner | None, clock: Callable[[], float]) -> ScenarioResult:
    max_tokens = scenario.max_tokens or pack.max_tokens
    timeout_s = case_timeout(pack, measured_tps, max_tokens)
    started = clock()
    message, finish_reason, error = chat([dict(m) for m in scenario.messages],
                                         [dict(t) for t in scenario.tools] if scenario.tools else None, max_tokens, timeout_s)
    latency = clock() - started
    message = message or {"content": None, "reasoning_content": None, "tool_calls": []}
    if error is not None:
        verdict = fail(error.kind, error.detail)
        latency = None if error.kind == "timeout" else latency
    else:
        verdict = verify(scenario, message, finish_reason, code_runner)
    return ScenarioResult(pack.id, scenario.id, repeat_idx, verdict, latency, timeout_s, message, finish_reason)


# ---------------------------------------------------------------------------------------
# Negative control: a constant junk answer, no endpoint. Every pass is a lenient verifier.

JUNK_KINDS = ("empty", "no-answer", "braces", "echo", "empty-tool-call")


def junk_message(kind: str, messages: list[dict], tools: list[dict] | None) -> dict[str, Any]:
    """What a broken server might answer to this request."""
    if kind == "empty-tool-call":
        name = tools[0]["function"]["name"] if tools else "lookup"
        return {"content": None, "reasoning_content": None, "tool_calls": [{"function": {"name": name, "arguments": "{}"}}]}
    text = {"empty": "", "no-answer": "(no answer)", "braces": "{}",
            "echo": "\n".join(m["content"] for m in messages)}.get(kind)
    if text is None:
        raise ValueError(f"unknown junk kind {kind!r}; choose from {', '.join(JUNK_KINDS)}")
    return {"content": text, "reasoning_content": None, "tool_calls": []}


def junk_may_pass(scenario: Scenario) -> bool:
    return scenario.kind == "bfcl" and scenario.verifier["check"] in ("irrelevance", "relevance")


@dataclass(frozen=True)
class NegativeControl:
    checked: int  # scenario calls judged, over every junk kind
    passes: tuple[tuple[str, str, str], ...]  # (pack, scenario, junk kind): each one a defect


def negative_control(packs: Iterable[Pack], kinds: Iterable[str] = JUNK_KINDS,
                     code_runner: CodeRunner | None = None) -> NegativeControl:
    """Every scenario answered by a server that only says junk of each kind; no endpoint. BFCL's
    (ir)relevance questions are left out: by BFCL's definition any answer without a call passes
    irrelevance, and any call passes relevance."""
    packs = tuple(replace(p, scenarios=tuple(s for s in p.scenarios if not junk_may_pass(s))) for p in packs)
    checked, passes = 0, []
    for kind in kinds:
        def junk_chat(messages, tools, max_tokens, timeout_s, kind=kind):
            return junk_message(kind, messages, tools), "stop", None

        run = run_pack_scenarios(packs, junk_chat, cell_id=f"negative-control:{kind}", code_runner=code_runner,
                                 clock=lambda: 0.0)
        checked += len(run.results)
        passes += [(r.pack, r.scenario, kind) for r in run.results if r.verdict.passed]
    return NegativeControl(checked, tuple(passes))
