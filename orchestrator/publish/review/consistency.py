"""The ledger agrees with itself: rates follow from counts and durations, client and runtime rates
agree, timestamps run forward and the calls fit the wall clock, the end and lanes lines count what
came before them, every planned unit is there once (or skipped with a reason), and a resume only
adds what was missing. Evidence a run always writes (responses.jsonl, samples.jsonl) is there."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any

from orchestrator.core.errors import WeeyugaError
from orchestrator.core.ledger import call_key
from orchestrator.core.runspec import Cell, RunOptions, Target
from orchestrator.measure.client import DISAGREEMENT_THRESHOLD, PREVIEW_CHARS
from orchestrator.measure.phases import load_phase
from orchestrator.publish.review.model import Finding, RunUnderReview, call_label, grouped, reject, tolerances, warn

CHECK = "consistency"
MS_ROUNDING = 0.05  # the ledger keeps milliseconds to 0.1
RATE_ROUNDING = 0.005  # and rates to 0.01


def when(stamp: Any) -> float | None:
    """A ledger timestamp as POSIX seconds; None when it is not one."""
    try:
        return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


def rate_follows(rate: float, tokens: int, ms: float, roundings: int = 1) -> bool:
    """Whether a recorded rate is `tokens` over `ms`, where ms is made of `roundings` rounded times."""
    slack, err = tolerances().rate_recompute_relative, MS_ROUNDING * roundings
    low = tokens / ((ms + err) / 1000) * (1 - slack) - RATE_ROUNDING
    high = tokens / (max(ms - err, 1e-3) / 1000) * (1 + slack) + RATE_ROUNDING
    return low <= rate <= high


def check(run: RunUnderReview) -> list[Finding]:
    return (call_figures(run) + rate_agreement(run) + clock(run) + end_lines(run) + lanes(run) + planned(run)
            + resumes(run) + evidence(run))


def call_figures(run: RunUnderReview) -> list[Finding]:
    rates, order, flags = [], [], []
    for call in run.calls:
        label, tps = call_label(call), call.get("tokens_per_sec")
        first, total, tokens = call.get("first_delta_ms"), call.get("total_duration_ms"), call.get("completion_tokens")
        if call.get("error") is None and tps is not None:
            if first is None or total is None or not tokens or not rate_follows(tps, tokens, total - first, roundings=2):
                rates.append(f"{label}: {tps} tok/s recorded, {tokens} tokens over {total} - {first} ms")
        times = [t for t in (call.get("ttfb_ms"), first, total) if t is not None]
        if times != sorted(times) or (call.get("first_answer_ms") is not None and total is not None
                                      and call["first_answer_ms"] > total + MS_ROUNDING):
            order.append(f"{label}: ttfb {call.get('ttfb_ms')}, first delta {first}, first answer "
                         f"{call.get('first_answer_ms')}, total {total} ms")
        server = call.get("server_tokens_per_sec")
        if tps and server and call.get("rate_disagreement") is not None:
            gap = abs(tps - server) / server
            if abs(gap - DISAGREEMENT_THRESHOLD) > 0.002 and call["rate_disagreement"] != (gap > DISAGREEMENT_THRESHOLD):
                flags.append(f"{label}: rate_disagreement {call['rate_disagreement']} with {tps} vs {server} tok/s")
    return (grouped(CHECK, "a call's tokens_per_sec does not follow from its token count and decode time", rates)
            + grouped(CHECK, "a call's times are out of order (ttfb <= first delta <= total)", order)
            + grouped(CHECK, "a call's rate_disagreement flag does not match its two rates", flags))


def rate_agreement(run: RunUnderReview) -> list[Finding]:
    """The decode time the client measured against the runtime's own, per cell and phase, summed over
    the calls (a few-token answer alone is mostly HTTP noise): both over the steps after the first token."""
    seconds: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for call in run.calls:
        server, steps = call.get("server_tokens_per_sec"), (call.get("completion_tokens") or 0) - 1
        # tokens_per_sec counts n tokens over the n - 1 gaps after the first (client.py): back to steps
        client = call.get("tokens_per_sec_after_first") or (call.get("tokens_per_sec") or 0) * steps / (steps + 1)
        if call.get("error") is None and client and server and steps > 0:
            totals = seconds[(call["cell_id"], call["phase"])]
            totals[0] += steps / client
            totals[1] += steps / server
            totals[2] += 1
    limits, findings = tolerances(), []
    for (cell, phase), (client_s, server_s, calls) in seconds.items():
        if server_s >= limits.agreement_min_decode_s and max(client_s / server_s, server_s / client_s) - 1 > limits.client_runtime_gap:
            findings.append(reject(CHECK, f"{cell} {phase}: the client timed {client_s:.2f} s of decoding, the runtime "
                                          f"{server_s:.2f} s over the same {calls} calls (the longer is at most "
                                          f"{limits.client_runtime_gap:.0%} over the shorter)"))
    return findings


def clock(run: RunUnderReview) -> list[Finding]:
    """Each lane's calls (the sequential ones are a lane of their own) start no earlier than the one
    before had ended, and every call lies between the meta line and the end of the run."""
    slack = tolerances().clock_slack_s
    start = when(run.meta.get("started_at_utc"))
    ends = [t for r in run.of_type("end") if (t := when(r.get("finished_at_utc"))) is not None]
    finish = max(ends) if ends else None
    lane_free: dict[Any, tuple[float, str]] = {}
    overlap, outside, marks = [], [], []
    previous_mark = start
    for record in run.records:
        kind = record.get("type")
        if kind in ("resume", "end"):
            mark = when(record.get("at_utc") if kind == "resume" else record.get("finished_at_utc"))
            if mark is not None and previous_mark is not None and mark + slack < previous_mark:
                marks.append(f"{kind} line at {record.get('at_utc') or record.get('finished_at_utc')}")
            previous_mark = mark if mark is not None else previous_mark
            continue
        if kind != "call":
            continue
        begun, label = when(record.get("started_at_utc")), call_label(record)
        if begun is None:
            outside.append(f"{label}: no timestamp")
            continue
        took = (record.get("total_duration_ms") or 0) / 1000
        lane = (record["cell_id"], record.get("lane")) if record.get("lane") is not None else None
        free = lane_free.get(lane)
        if free is not None and begun + slack < free[0]:
            overlap.append(f"{label} started {free[0] - begun:.2f} s before {free[1]} had ended")
        lane_free[lane] = (begun + took, label)
        if (start is not None and begun + slack < start) or (finish is not None and begun + took > finish + slack):
            outside.append(f"{label} at {record.get('started_at_utc')} for {took:.2f} s")
    return (grouped(CHECK, "calls overlap on one lane: the durations do not fit the wall clock between them", overlap)
            + grouped(CHECK, "calls lie outside the run's own span (meta start to end line)", outside)
            + grouped(CHECK, "the timestamps of resume and end lines run backwards", marks))


def invocations(run: RunUnderReview) -> list[list[dict[str, Any]]]:
    """The ledger cut at each meta or resume line: one list of lines per invocation of weeyuga."""
    parts: list[list[dict[str, Any]]] = []
    for record in run.records:
        if record.get("type") in ("meta", "resume") or not parts:
            parts.append([])
        parts[-1].append(record)
    return parts


def end_lines(run: RunUnderReview) -> list[Finding]:
    findings = []
    for number, part in enumerate(invocations(run), 1):
        ends = [r for r in part if r.get("type") == "end"]
        calls = [r for r in part if r.get("type") == "call"]
        if len(ends) > 1:
            findings.append(reject(CHECK, f"invocation {number} has {len(ends)} end lines"))
        for end in ends[:1]:
            before = [r for r in part[:part.index(end)] if r.get("type") == "call"]
            errors = sum(r.get("error") is not None for r in before)
            if (end.get("calls"), end.get("errors")) != (len(before), errors) or len(before) != len(calls):
                findings.append(reject(CHECK, f"invocation {number}: the end line counts {end.get('calls')} calls and "
                                              f"{end.get('errors')} errors; the ledger holds {len(calls)} calls and "
                                              f"{errors} errors (calls deleted or added?)"))
    if run.manifest.get("status") == "complete" and not any(r.get("type") == "end" for r in invocations(run)[-1]):
        findings.append(reject(CHECK, "the manifest says complete but the last invocation has no end line (lines cut off?)"))
    return findings


def lanes(run: RunUnderReview) -> list[Finding]:
    findings = []
    for number, part in enumerate(invocations(run), 1):
        for record in part:
            if record.get("type") != "lanes" or record.get("resumed"):
                continue  # a resumed lanes line counts only the calls made then
            calls = [r for r in part if r.get("type") == "call" and r.get("phase") == record.get("phase")
                     and r.get("lane") is not None and r.get("cell_id") in record.get("cells", [])]
            good = [c for c in calls if c.get("error") is None]
            tokens = sum(c.get("completion_tokens") or 0 for c in good)
            wall = record.get("wall_ms")
            longest = max((c.get("total_duration_ms") or 0 for c in calls), default=0)
            rate = record.get("aggregate_tokens_per_sec")
            if (record.get("calls"), record.get("errors"), record.get("completion_tokens_total")) != (
                    len(calls), len(calls) - len(good), tokens):
                findings.append(reject(CHECK, f"{record.get('phase')}: the lanes line counts {record.get('calls')} calls, "
                                              f"{record.get('completion_tokens_total')} tokens; its lane calls hold "
                                              f"{len(calls)} calls, {tokens} tokens"))
            elif wall is not None and (wall + MS_ROUNDING < longest or (rate is not None and not rate_follows(rate, tokens, wall))):
                findings.append(reject(CHECK, f"{record.get('phase')}: the lanes line's {rate} tok/s over {wall} ms does "
                                              f"not follow from its {tokens} tokens and longest call ({longest} ms)"))
    return findings


def planned_options(meta: dict[str, Any]) -> RunOptions:
    recorded = meta.get("options") or {}
    return RunOptions(phases=list(recorded.get("phases") or []), runs=recorded.get("runs", 0),
                      num_ctx=recorded.get("num_ctx", 4096), num_predict=recorded.get("num_predict", 2048),
                      smoke=bool(recorded.get("smoke")), quality=recorded.get("quality") or RunOptions([]).quality,
                      agent=recorded.get("agent") or {}, sandbox=recorded.get("sandbox") or {})


def planned(run: RunUnderReview) -> list[Finding]:
    """Every unit the recorded options plan (each suite's prompts x runs, each pack's scenarios, each
    agent task) is in the ledger once, or its cell or phase was skipped with a reason."""
    meta, findings = run.meta, []
    options = planned_options(meta)
    skipped = {(r.get("cell_id"), r.get("phase")) for r in run.of_type("skipped")}
    cells = [c for c in meta.get("cells") or [] if c.get("available", True) and (c.get("cell_id"), None) not in skipped]
    targets = [Target(Cell(c["cell_id"], c.get("engine", ""), c.get("model", ""), "")) for c in cells]
    counts = Counter(call_key(c) for c in run.calls)
    findings += grouped(CHECK, "a call is recorded more than once", [str(k) for k, n in counts.items() if n > 1])
    agent_tasks = {(r.get("cell_id"), r.get("phase"), r.get("task")) for r in run.of_type("agent_run")}
    finished = run.manifest.get("status") == "complete" and any(r.get("type") == "end" for r in invocations(run)[-1])
    missing, unplanned, planned_keys = [], [], set()
    for name in options.phases:
        try:
            phase = load_phase(name, None, options)
        except WeeyugaError as exc:
            findings.append(warn(CHECK, f"phase {name}: its plan cannot be rebuilt here ({exc}); its units are not checked"))
            continue
        recorded_sha = (meta.get("suites") or {}).get(name, {}).get("sha256")
        if recorded_sha and recorded_sha != phase.sha256:
            findings.append(warn(CHECK, f"phase {name}: its suite differs from this weeyuga's; its units are not checked"))
            continue
        groups, refusal = phase.groups(targets)
        for group in groups if not refusal else []:
            for unit in phase.units([t.cell.cell_id for t in group], options):
                for key in unit.keys:
                    if (key.cell_id, key.phase) in skipped:
                        continue
                    if phase.kind == "agent":
                        if (key.cell_id, key.phase, key.prompt_id) not in agent_tasks and finished:
                            missing.append(f"{key.cell_id} {name} task {key.prompt_id}")
                        break  # a task's calls are as many as it took
                    planned_keys.add(key.as_tuple())
                    if key.as_tuple() not in counts and finished:
                        missing.append(f"{key.cell_id} {name} {key.prompt_id}#{key.run_idx}")
        unplanned += [call_label(c) for c in run.calls if c.get("phase") == name and phase.kind != "agent"
                      and call_key(c) not in planned_keys]
    return (findings + grouped(CHECK, "a planned call is neither in the ledger nor skipped with a reason", missing)
            + grouped(CHECK, "a call the run's recorded plan does not have", unplanned))


def resumes(run: RunUnderReview) -> list[Finding]:
    """A resume adds only calls the ledger did not have, and follows a run that had not ended (or a rescore)."""
    seen: set[tuple] = set()
    repeated, after_end = [], []
    parts = invocations(run)
    for number, part in enumerate(parts, 1):
        if part[0].get("type") == "resume" and any(r.get("type") == "end" for r in parts[number - 2]):
            after_end.append(f"invocation {number} at {part[0].get('at_utc')}")
        for record in part:
            if record.get("type") == "call":
                key = call_key(record)
                if key in seen and part[0].get("type") == "resume":
                    repeated.append(call_label(record))
                seen.add(key)
    return (grouped(CHECK, "a resume ran a call the ledger already had (a resume continues where the ledger stopped)",
                    repeated)
            + grouped(CHECK, "a resume follows a finished run (weeyuga never resumes a run that ended)", after_end))


def evidence(run: RunUnderReview) -> list[Finding]:
    """Each call's full answer is in responses.jsonl and matches its preview; the resource samples are there."""
    if not run.calls:
        return []
    findings = []
    if run.samples is None:
        findings.append(reject(CHECK, "samples.jsonl is missing: every run writes its resource samples (removed evidence)"))
    if run.responses is None:
        return findings + [reject(CHECK, "responses.jsonl is missing: every call's answer is saved there (removed evidence)")]
    answers = {tuple(r["key"]): r for r in run.responses if isinstance(r.get("key"), list)}
    absent, differ = [], []
    for call in run.calls:
        saved = answers.get(call_key(call))
        if saved is None:
            absent.append(call_label(call))
        elif isinstance(saved.get("text"), str) and saved["text"][:PREVIEW_CHARS] != call.get("response_preview"):
            differ.append(call_label(call))
    return (findings + grouped(CHECK, "a call's answer is missing from responses.jsonl (removed evidence)", absent)
            + grouped(CHECK, "a call's saved answer does not begin with its response_preview", differ))
