"""Auto's time budget across its three axes: speed phases, a quality set, an agent task set.

The decode rate comes from the best source there is: a tuned value (profiles/local), else a run
measured on this device with this model (its metadata.json), else the plan's estimate. Each axis's
cost follows from its data at that rate: the speed suites' items (phases/speed.py), the packs'
scenarios and token caps, the agent tasks' steps, tries and token caps. profiles/budget.yaml holds
the shares, the candidates (largest first) and the cost models' coefficients. The plan says per
axis what runs and what is skipped and why; the manifest keeps it (`budget_plan`).

The estimate can be wrong (a shared machine slows down mid-run), so each phase also gets the seconds
it may take (RunOptions.phase_seconds), laid end to end as a schedule: the runner starts no new unit
of a phase whose slot has ended (Runner.phase_deadline). What a phase overran (a unit runs whole) comes
out of the phases after it, so the run keeps to the budget; each phase still runs one unit, so every
planned axis has a result.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from orchestrator.core.errors import BadInput
from orchestrator.core.ledger import read_records
from orchestrator.core.runfolder import LEDGER_NAME, METADATA_NAME
from orchestrator.evaluate.quality.packs import selected_packs
from orchestrator.measure.cost import Budget, answer_fills, load_budget, quality_seconds, scenario_seconds

AXES = ("speed", "quality", "agent")
EVERY_GENERATED = 10**6  # Pack.for_mode caps it at the pack's full generated set


@dataclass(frozen=True)
class DecodeRate:
    tokens_per_sec: float
    source: str  # tuned | measured | estimate
    detail: str
    # measured: seconds a call of each speed phase took in that run (a parallel phase: its wall time over its
    # calls), which stand in for the cost model's estimate of those phases (how long a model's answers run is its own)
    call_seconds: dict[str, float] = field(default_factory=dict)
    # the share of each quality pack's answer caps this model used in the newest runs here (whatever the rate's
    # source: a fill does not depend on speed); packs not in it take budget.yaml's table
    answer_fills: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class AxisPlan:
    axis: str
    allowance_s: float  # its share plus what the axes before it left
    seconds: float  # the estimate for what runs
    runs: list[str]  # what will run, in words
    skipped: dict[str, str] = field(default_factory=dict)  # what will not, and why


@dataclass(frozen=True)
class BudgetPlan:
    budget_s: float
    rate: DecodeRate
    axes: tuple[AxisPlan, ...]
    phases: list[str]  # what the run is given
    runs: int  # warm calls per frozen prompt
    phase_notes: dict[str, str]  # phase -> why it was not selected
    quality: dict[str, Any] | None  # RunOptions.quality when quality runs
    agent: dict[str, Any] | None  # RunOptions.agent when the agent phase runs
    phase_seconds: dict[str, float]  # phase -> the time it may take: its estimate, stretched to its axis's allowance
    # (empty under --phases: what the user named runs whole)

    def run_options(self) -> dict[str, Any]:
        """The RunOptions fields it sized: quality and agent settings where they run, and each phase's seconds."""
        return {**{k: v for k, v in (("quality", self.quality), ("agent", self.agent)) if v},
                "phase_seconds": self.phase_seconds}

    def to_json(self) -> dict[str, Any]:
        """The manifest's `budget_plan`."""
        return {"budget_s": round(self.budget_s, 1), "decode_rate": {**asdict(self.rate), "tokens_per_sec": round(self.rate.tokens_per_sec, 2)},
                "axes": [{**asdict(a), "allowance_s": round(a.allowance_s, 1), "seconds": round(a.seconds, 1)} for a in self.axes],
                "phases": self.phases, "runs": self.runs, "phase_seconds": self.phase_seconds}


# ---------------------------------------------------------------------------------------
# The decode rate


def newest_run_files(submissions: Path, device_tag: str, name: str, newest: int) -> list[Path]:
    """The file `name` of this device's run folders, newest first, at most `newest` of them."""
    found = [p for p in submissions.glob(f"*/{device_tag}/run-*/{name}") if p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)[:newest]


def measured_rate(submissions: Path, device_tag: str, model: str, newest: int) -> tuple[float, str, dict[str, float]] | None:
    """Completion tokens per second of decoding over the speed phases of this device's newest run of
    this model (its metadata.json). A decode rate, as the estimate is: the cost models add prompts and
    first tokens themselves, and wall time would count them twice (edge_append's prefill-heavy calls
    made a wall-time rate 2.6x too slow here, and auto used a third of its budget)."""
    for path in newest_run_files(submissions, device_tag, METADATA_NAME, newest):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            decoded = speed_decoding(doc, model)
            per_call = speed_call_seconds(doc, model)
        except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
            continue  # a damaged folder is the catalogue's business, not the budget's
        if decoded:
            tokens, seconds = decoded
            return (tokens / seconds, f"{tokens} tokens decoded in {seconds:.0f} s of speed calls in run {doc.get('run_id')} here",
                    per_call)
    return None


def measured_answer_fills(submissions: Path, device_tag: str, model: str, newest: int) -> dict[str, float]:
    """Each quality pack's answer fill for this model, pooled over the quality calls of the newest runs here
    (a run cut short answers a pack's first few scenarios only; several runs answer more of them)."""
    calls: list[dict[str, Any]] = []
    for path in newest_run_files(submissions, device_tag, LEDGER_NAME, newest):
        try:  # answer_fills keeps the quality calls
            calls += [c for c in read_records(path) if c.get("type") == "call" and c.get("model") == model]
        except (OSError, BadInput):
            continue  # a damaged folder is the catalogue's business, not the budget's
    return answer_fills(calls)


def speed_rows(metadata: dict[str, Any], model: str | None) -> list[dict[str, Any]]:
    """A run's per-phase rows (its metadata.json's cells) of the speed phases for this model (None: any)."""
    from orchestrator.core.methodology import methodology  # deferred: the methodology loads the suites

    speed_phases = set(methodology().phases)
    return [row for row in metadata.get("cells") or [] if row["phase"] in speed_phases
            and (model is None or row["cell_id"].endswith(f":{model}"))]


def speed_call_seconds(metadata: dict[str, Any], model: str) -> dict[str, float]:
    """Seconds a call of each speed phase took for this model in a run (its metadata.json): the mean call,
    or for a parallel phase its wall time over its calls (its lanes' calls queue for the slots together)."""
    seconds = {row["phase"]: row["duration_ms_mean"] / 1000 for row in speed_rows(metadata, model)
               if row["n_calls"] and row["duration_ms_mean"]}
    for lanes in metadata.get("lanes") or []:
        if lanes["phase"] in seconds and lanes["calls"] and all(c.endswith(f":{model}") for c in lanes["cells"]):
            seconds[lanes["phase"]] = lanes["wall_ms"] / 1000 / lanes["calls"]
    return {phase: round(s, 3) for phase, s in seconds.items()}


def speed_decoding(metadata: dict[str, Any], model: str | None) -> tuple[int, float] | None:
    """(completion tokens, seconds decoding them) over a run's speed phases for this model (None: any),
    from its metadata.json's rows; None when it decoded nothing. benchmarks/fit_budget.py fits the
    cost model at this same rate, so that the coefficients and the rate go together."""
    rows = [row for row in speed_rows(metadata, model) if row["tokens_per_sec_mean"]]
    tokens = sum(row["completion_tokens_total"] for row in rows)
    seconds = sum(row["completion_tokens_total"] / row["tokens_per_sec_mean"] for row in rows)
    return (tokens, seconds) if tokens and seconds else None


def decode_rate(tuned: float | None, measured: tuple[float, str, dict[str, float]] | None, estimate: float,
                fills: dict[str, float] | None = None) -> DecodeRate:
    fills = fills or {}
    if tuned:
        return DecodeRate(float(tuned), "tuned", "profiles/local (weeyuga tune)", answer_fills=fills)
    if measured:
        return DecodeRate(measured[0], "measured", measured[1], measured[2], fills)
    return DecodeRate(estimate, "estimate", "memory bandwidth / model size (no tuned value, no earlier run here)",
                      answer_fills=fills)


# ---------------------------------------------------------------------------------------
# Candidates per axis


@dataclass(frozen=True)
class Candidate:
    label: str
    settings: dict[str, Any]
    seconds: float  # a filling candidate: its smallest size
    fit: Callable[[float], "Candidate | None"] | None = None  # a filling candidate sized to an allowance, or None


def filling_candidate(entry: dict[str, Any], rate: float, num_predict: int, fills: dict[str, float]) -> Candidate:
    """`fill`: the mode's (or the listed) packs with as many generated scenarios a pack (a prefix, tiers alternating) as the
    allowance holds, so the quality set takes up what its time allows rather than the rung below it. A pack
    without generated scenarios (bfcl) runs as the mode has it."""
    mode, text = entry.get("mode", "quick"), None if "mode" in entry else ",".join(entry["packs"])
    packs = selected_packs(text, mode, EVERY_GENERATED)
    ids = tuple(p.id for p in packs)
    name = f"mode {mode}" if "mode" in entry else "packs"
    fixed = [(p, s) for p in packs for s in (p.scenarios[:p.written] if p.generated else p.scenarios)]
    written = sum(scenario_seconds(p, s, rate, num_predict, fills) for p, s in fixed)
    extra = [p for p in packs if p.generated]
    most = max((len(p.scenarios) - p.written for p in extra), default=0)
    steps = [sum(scenario_seconds(p, p.scenarios[p.written + g], rate, num_predict, fills)
                 for p in extra if p.written + g < len(p.scenarios)) for g in range(most)]
    totals = list(itertools.accumulate(steps, initial=written))  # totals[g]: with g generated a pack

    def sized(generated: int) -> Candidate:
        scenarios = len(fixed) + sum(min(len(p.scenarios) - p.written, generated) for p in extra)
        return Candidate(f"{name} ({', '.join(ids)}) with {generated} generated a pack: {scenarios} scenarios",
                         {"mode": mode, "packs": None if "mode" in entry else list(ids), "repeat": 1,
                          "generated": generated}, totals[generated])

    def fit(allowance: float) -> Candidate | None:
        fitting = bisect.bisect_right(totals, allowance) - 1
        return sized(fitting) if fitting >= 0 else None

    return replace(sized(0), label=f"{name} ({', '.join(ids)}), filled with generated scenarios", fit=fit)


def quality_candidates(budget: Budget, rate: float, num_predict: int, smoke: bool,
                       entries: tuple[dict[str, Any], ...] | None = None,
                       fills: dict[str, float] | None = None) -> list[Candidate]:
    """`entries`: budget.yaml's candidates unless the user fixed one (--quality-mode); `fills`: the packs'
    answer fills measured for this model (DecodeRate.answer_fills)."""
    fills = fills or {}
    out = []
    for entry in entries or budget.quality_candidates:
        text = None if "mode" in entry else ",".join(entry["packs"])
        if entry.get("fill") and not smoke:  # a smoke run calls one scenario a pack: nothing to fill
            out.append(filling_candidate(entry, rate, num_predict, fills))
            continue
        settings = {"mode": entry.get("mode", "quick"), "packs": None, "repeat": 1}
        packs = selected_packs(text, settings["mode"])  # as the phase will load them (a --packs list runs as quick)
        ids = tuple(p.id for p in packs)
        settings["packs"] = None if "mode" in entry else list(ids)
        label = f"mode {entry['mode']} ({', '.join(ids)})" if "mode" in entry else f"packs {', '.join(ids)}"
        scenarios = sum(1 if smoke else len(p.scenarios) for p in packs)
        out.append(Candidate(f"{label}: {scenarios} scenarios", settings,
                             quality_seconds(packs, rate, num_predict, 1, smoke, fills)))
    return out


def agent_candidates(budget: Budget, rate: float, num_predict: int) -> list[Candidate]:
    from orchestrator.measure.phases.agent import AgentSettings
    from orchestrator.core.runspec import RunOptions

    out = []
    for entry in budget.agent_candidates:
        capped = {**entry["budgets"], "max_tokens": min(entry["budgets"].get("max_tokens", num_predict), num_predict)}
        settings = {"workflow": budget.agent_workflow, "tasks": list(entry["tasks"]), "budgets": capped}
        agent = AgentSettings.of(RunOptions(phases=["agent"], agent=settings))
        languages = sorted({t.language for t in agent.tasks})
        label = (f"{len(agent.tasks)} task(s) ({', '.join(languages)}), {agent.workflow}, {agent.tries} tries x "
                 f"{agent.budgets.steps_per_pass} steps, {agent.budgets.max_tokens} tokens a step")
        out.append(Candidate(label, settings, agent.estimate_seconds(rate)))
    return out


def largest_fitting(candidates: list[Candidate], allowance: float) -> Candidate:
    """The first (largest) candidate within the allowance (a filling one sized to it), else the smallest
    (its floor was reserved)."""
    for candidate in candidates:
        chosen = candidate.fit(allowance) if candidate.fit else candidate if candidate.seconds <= allowance else None
        if chosen:
            return chosen
    return candidates[-1]


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


# ---------------------------------------------------------------------------------------
# The plan


def plan_budget(budget_s: float, rate: DecodeRate, speed_estimates: Callable[[int], list[Any]], named: list[str] | None,
                num_predict: int, smoke: bool = False, quality_mode: str | None = None, runs: int | None = None,
                budget: Budget | None = None) -> BudgetPlan:
    """Floors first, then shares. Each axis's smallest set (speed: hello) is reserved in priority order
    while the usable budget holds it, so all three axes run whenever they can; the rest of the budget
    is shared out, and each axis takes its largest set within its floor, its share and what the axes
    before it left.

    `speed_estimates(runs)`: PhaseEstimate per canonical (or named) speed phase at `rate`, in order.
    `named`: --phases, which fixes what runs (quality and agent only when named; still sized here).
    `quality_mode`: --quality-mode, which fixes the quality set; `runs`: --runs, the warm repeats."""
    budget = budget or load_budget()
    usable = budget_s * budget.headroom
    candidates = {"quality": quality_candidates(budget, rate.tokens_per_sec, num_predict, smoke,
                                                ({"mode": quality_mode},) if quality_mode else None, rate.answer_fills),
                  "agent": agent_candidates(budget, rate.tokens_per_sec, num_predict)}
    ladder = {r: speed_estimates(r) for r in ((runs,) if runs is not None else budget.warm_runs)}
    floors = {"speed": sum(e.seconds for e in ladder[min(ladder)] if named is not None or e.phase == "hello")}
    skipped: dict[str, str] = {}
    reserved = 0.0
    for axis in budget.shares:
        if axis != "speed" and named is not None and axis not in named:
            skipped[axis] = "not named in --phases"
            continue
        floor = floors["speed"] if axis == "speed" else candidates[axis][-1].seconds
        if axis != "speed" and named is None and reserved + floor > usable:
            skipped[axis] = (f"not selected: its smallest set ({candidates[axis][-1].label}) needs about {minutes(floor)}, "
                             f"over the {minutes(max(usable - reserved, 0))} of the time budget left "
                             "(--time-budget, or --phases)")
            continue
        floors[axis] = floor
        reserved += floor
    included = [axis for axis in budget.shares if axis not in skipped]
    share_total = sum(budget.shares[axis] for axis in included) or 1.0
    spare = max(usable - reserved, 0.0)
    carry, axes, phases, notes, chosen, seconds = 0.0, [], [], {}, {}, {}
    for axis in budget.shares:
        if axis in skipped:
            axes.append(AxisPlan(axis, 0.0, 0.0, [], {axis: skipped[axis]}))
            notes[axis] = skipped[axis]
            continue
        allowance = floors[axis] + spare * budget.shares[axis] / share_total + carry
        if axis == "speed":
            warm_runs, plan = plan_speed(ladder, allowance, named)
            if floors["speed"] > usable:  # said up front: no plan can make this run fit
                plan.skipped["time budget"] = (f"{'the named phases' if named else 'hello'} alone need about "
                                               f"{minutes(floors['speed'])}, over the {minutes(usable)} usable: "
                                               "this run will take longer than --time-budget")
            phases += plan.runs
            notes.update({e.phase: plan.skipped[e.phase] for e in ladder[warm_runs] if e.phase in plan.skipped})
            stretch = max(1.0, allowance / plan.seconds) if plan.seconds else 1.0
            slots = {e.phase: round(e.seconds * stretch, 1) for e in ladder[warm_runs] if e.phase in plan.runs}
        else:
            choice = largest_fitting(candidates[axis], allowance)
            plan = AxisPlan(axis, allowance, choice.seconds, [choice.label])
            phases.append(axis)
            chosen[axis] = choice.settings
            slots = {axis: round(max(allowance, choice.seconds), 1)}
        seconds.update(slots)
        axes.append(plan)
        # what its slots leave (nothing where they were stretched to the allowance): the slots laid end to
        # end never pass the usable budget
        carry = allowance - sum(slots.values())
    if named is None and "quality" in chosen:
        refill_quality(axes, chosen, seconds, candidates["quality"], usable)
    if named is not None:  # --phases keeps its own order
        phases = [p for p in named if p in phases]
    return BudgetPlan(budget_s, rate, tuple(axes), phases, warm_runs, notes, chosen.get("quality"), chosen.get("agent"),
                      seconds if named is None else {})  # phases the user named run whole


def refill_quality(axes: list[AxisPlan], chosen: dict[str, Any], seconds: dict[str, float], candidates: list[Candidate],
                   usable: float) -> None:
    """What the axes after quality left of the usable budget (a discrete agent set rarely fills its share) goes back
    to quality, the one axis that can take any amount: its set is sized again with it, and the phases after it
    keep their estimates' seconds, so the schedule still ends within the usable budget."""
    index = next(i for i, a in enumerate(axes) if a.axis == "quality")
    later = [a for a in axes[index + 1:] if a.runs]
    speed = sum(s for phase, s in seconds.items() if phase not in AXES)  # speed's slots, stretched as planned
    left = usable - speed - axes[index].seconds - sum(a.seconds for a in later)
    if left <= 0:
        return
    quality = axes[index]
    bigger = largest_fitting(candidates, quality.seconds + left)
    if bigger.seconds <= quality.seconds:
        return
    axes[index] = replace(quality, allowance_s=quality.seconds + left, seconds=bigger.seconds, runs=[bigger.label])
    chosen["quality"] = bigger.settings
    seconds["quality"] = tenths_up(bigger.seconds)
    for axis in later:
        seconds[axis.axis] = tenths_up(axis.seconds)


def tenths_up(seconds: float) -> float:
    """Rounded up to a tenth: a slot never shorter than its estimate."""
    return math.ceil(seconds * 10) / 10


def plan_speed(ladder: dict[int, list[Any]], allowance: float, named: list[str] | None) -> tuple[int, AxisPlan]:
    """The most warm repeats whose hello (or named phases) fit, else the fewest; then the other speed
    phases in order while they fit. --phases runs exactly what it names."""
    floor = lambda est: sum(e.seconds for e in est if named is not None or e.phase == "hello")  # noqa: E731
    runs = next((r for r in sorted(ladder, reverse=True) if floor(ladder[r]) <= allowance), min(ladder))
    chosen, skipped, spent = [], {}, 0.0
    for est in ladder[runs]:
        if est.skip and named is None:
            skipped[est.phase] = f"not selected: {est.skip}; auto serves one model"
        elif named is not None or est.phase == "hello" or spent + est.seconds <= allowance:
            chosen.append(est.phase)
            spent += est.seconds
        else:
            skipped[est.phase] = (f"not selected: about {minutes(est.seconds)} more would exceed the "
                                  f"{minutes(max(allowance, 0))} of the time budget left for speed (--time-budget, or --phases)")
    if runs < max(ladder):
        skipped["warm runs"] = (f"{runs} warm call(s) per frozen prompt, not {max(ladder)}: hello's repeats would not fit "
                                f"the {minutes(max(allowance, 0))} left for speed (a recorded `runs` deviation)")
    return runs, AxisPlan("speed", allowance, spent, chosen, skipped)
