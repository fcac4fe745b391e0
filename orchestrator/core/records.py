"""Every kind of ledger line (run.jsonl) as a frozen dataclass: one place that says what is written.

A record's `to_json()` is the line, `type` first and then its fields in declaration order
(the ledger's field order never changes; new fields go at the end). Fields marked OPTIONAL
are left out while None, so a record written before they existed and one written after read
alike: the call key's `step` and `attempt` (a multi-turn task's turn and retry) are such.
Lines are checked against schemas/run-record.schema.json on write in tests and in
--for-publication runs (`Ledger(..., schema=...)`), and on every read.

Adding a kind of line: one dataclass here with its TYPE, an entry in RECORD_TYPES, and its
branch in the schema (tests check the two agree).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

# Tests pin this True (tests/conftest.py); --for-publication runs validate regardless.
validate_on_write = False

def utc_now() -> str:
    """The ledger's timestamp format: UTC to the hundredth of a second."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def rounded(value: float | None, digits: int = 1) -> float | None:
    """Figures go into the ledger at the precision they mean."""
    return None if value is None else round(value, digits)


OPTIONAL = {"optional": True}  # field metadata: omitted from the line while None
SPREAD = {"spread": True}  # field metadata: a dict whose entries become top-level fields


@dataclass(frozen=True)
class Record:
    TYPE: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        line: dict[str, Any] = {"type": self.TYPE}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.metadata.get("spread"):
                line.update(value)
            elif not (spec.metadata.get("optional") and value is None):
                line[spec.name] = value
        return line


@dataclass(frozen=True)
class CallKey:
    """What makes a call unique in a run: resume runs only keys not yet present. `step` and
    `attempt` are additive: a key without them is the ledger-1 five-tuple, unchanged."""

    cell_id: str
    phase: str
    prompt_id: str
    lane: int | None = None
    run_idx: int = 0
    step: int | None = None
    attempt: int | None = None

    def as_tuple(self) -> tuple:
        base = (self.cell_id, self.phase, self.prompt_id, self.lane, self.run_idx)
        return base if self.step is None and self.attempt is None else base + (self.step, self.attempt)

    @classmethod
    def of(cls, line: dict[str, Any]) -> "CallKey":
        return cls(line["cell_id"], line["phase"], line["prompt_id"], line.get("lane"), line["run_idx"],
                   line.get("step"), line.get("attempt"))


@dataclass(frozen=True)
class MetaRecord(Record):
    """The first line: what was run, where, how, and with which facts about the engines."""

    TYPE: ClassVar[str] = "meta"
    schema_version: str
    benchmark_run_id: str
    harness_version: str
    weeyuga_version: str
    git_sha: str | None
    git_dirty: bool | None
    started_at_utc: str
    host: str
    platform: str
    load_avg_start: list[float] | None
    cells_planned: list[str]
    cells: list[dict[str, Any]]
    suites: dict[str, dict[str, Any]]
    options: dict[str, Any]
    canonical_overrides: dict[str, Any]
    submitter_handle: str | None
    device_tag: str | None
    phase_notes: dict[str, str]
    gates: dict[str, Any]
    env: dict[str, str]
    command: list[str]
    # the prompt-cache methodology (profiles/canonical.yaml) and each cell's switch (issue #16)
    prompt_cache: dict[str, Any] | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True)
class CallRecord(Record):
    """One request, timed by client.py's definitions; new metrics go at the end."""

    cell_id: str
    phase: str
    prompt_id: str
    run_idx: int
    lane: int | None
    load_state: str  # cold | warm | process_warm
    cold_kind: str | None  # restart | unload | process_warm
    model: str
    engine: str
    started_at_utc: str
    max_tokens: int
    first_delta_ms: float | None
    ttfb_ms: float | None
    first_answer_ms: float | None
    total_duration_ms: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning_tokens: int | None
    tokens_estimated: bool
    tokens_per_sec: float | None
    server_tokens_per_sec: float | None
    server_prompt_ms: float | None
    rate_disagreement: bool | None
    finish_reason: str | None
    backend: str | None
    error: str | None
    format_ok: bool | None
    marker_hit: float | None
    response_preview: str
    peaks: dict[str, float | None] = field(default_factory=dict, metadata=SPREAD)  # resource maxima during the call
    step: int | None = field(default=None, metadata=OPTIONAL)
    attempt: int | None = field(default=None, metadata=OPTIONAL)
    # issue #16: the prompt cache (client.py's definitions) and other processes' share of the machine
    cache_prompt: bool | None = None  # what the request sent; None: the runtime's API has no switch
    prompt_cached_tokens: int | None = None  # what the runtime says it reused; None: it does not say
    prefill_tokens_per_sec: float | None = None  # the runtime's prefill rate over the uncached tokens
    contention_cpu: float | None = None  # share of all CPUs used by other processes during the call
    contention_gpu_util_percent: float | None = field(default=None, metadata=OPTIONAL)  # others', on NVML GPUs
    contention_gpu_mem_mb: float | None = field(default=None, metadata=OPTIONAL)  # others', on NVML GPUs
    # decode rate over the interval llama-server times (client.py): n - 1 tokens from the first to the finish
    tokens_per_sec_after_first: float | None = field(default=None, metadata=OPTIONAL)
    # issue #28 §4: the throttle tags of the thermal samples during the call (resources.throttle_tags); absent when none
    throttled: list[str] | None = field(default=None, metadata=OPTIONAL)
    TYPE: ClassVar[str] = "call"

    @property
    def key(self) -> CallKey:
        return CallKey(self.cell_id, self.phase, self.prompt_id, self.lane, self.run_idx, self.step, self.attempt)


@dataclass(frozen=True)
class SkippedRecord(Record):
    TYPE: ClassVar[str] = "skipped"
    cell_id: str
    phase: str | None  # None: the whole cell
    reason: str
    at_utc: str

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.cell_id, self.phase)


@dataclass(frozen=True)
class LanesRecord(Record):
    """A parallel phase's aggregate over its lanes."""

    TYPE: ClassVar[str] = "lanes"
    phase: str
    cells: list[str]
    lanes: int
    calls: int
    errors: int
    wall_ms: float | None
    completion_tokens_total: int
    aggregate_tokens_per_sec: float | None
    resumed: bool


@dataclass(frozen=True)
class CapacityRecord(Record):
    """One level of the capacity phase (phases/capacity.py): `users` concurrent users back to back
    (closed loop), or requests arriving every 1 / arrival_rate_per_s seconds (open loop)."""

    TYPE: ClassVar[str] = "capacity"
    cell_id: str
    phase: str
    level: str  # the calls' prompt_id: users-<n> or rate-<percent of the closed loop's best request rate>
    loop: str  # closed | open
    users: int | None  # closed loop: concurrent users
    arrival_rate_per_s: float | None  # open loop: requests started per second
    calls: int
    errors: int
    wall_ms: float | None
    completion_tokens_total: int
    aggregate_tokens_per_sec: float | None
    requests_per_sec: float | None
    resumed: bool


@dataclass(frozen=True)
class EnduranceRecord(Record):
    """One time bucket of the endurance phase (phases/endurance.py): its decode rate and the thermal
    readings of the samples taken during it (resources.py)."""

    TYPE: ClassVar[str] = "endurance"
    cell_id: str
    phase: str
    bucket: int
    started_s: float  # since the phase's first bucket began
    seconds: float
    users: int
    calls: int
    errors: int
    completion_tokens_total: int
    aggregate_tokens_per_sec: float | None
    decode_tokens_per_sec_p50: float | None
    cpu_freq_mhz_mean: list[float] | None  # per core, over the bucket's thermal samples
    cpu_temp_c_max: float | None
    gpu_temp_c_max: float | None
    gpu_sm_clock_mhz_min: float | None
    throttling: list[str] | None  # tags seen in the bucket; [] when the sensors said no; None when none can tell
    sensors: list[str]  # what this machine exposes, in words


@dataclass(frozen=True)
class EndRecord(Record):
    """The closing line: nothing is left to run (until a `resume` line follows it)."""

    TYPE: ClassVar[str] = "end"
    finished_at_utc: str
    load_avg_end: list[float] | None
    calls: int
    errors: int
    status: str  # complete | failed
    status_reason: str | None


@dataclass(frozen=True)
class ResumeRecord(Record):
    """A later invocation continuing the run, with its own gates and command."""

    TYPE: ClassVar[str] = "resume"
    at_utc: str
    load_avg: list[float] | None
    gates: dict[str, Any]
    command: list[str]


@dataclass(frozen=True)
class QualityRecord(Record):
    """A scenario's verdict: its fields are built by quality/records.py and checked by
    quality-record.schema.json, which the run-record schema refers to."""

    TYPE: ClassVar[str] = "quality"
    verdict: dict[str, Any] = field(metadata=SPREAD)


@dataclass(frozen=True)
class QualityRescoreRecord(QualityRecord):
    """A later verdict on a saved response (`weeyuga quality rescore`); the call's own line is never edited."""

    TYPE: ClassVar[str] = "quality_rescore"


@dataclass(frozen=True)
class AgentRecord(Record):
    """An agent task's `agent_pass` (one ralph pass or two-try try) or `agent_run` (one attempt's
    outcome) line: the agent library's record (schemas/agent-record.schema.json, checked here)
    under the cell and phase that ran it. Its model calls are `call` lines (step, attempt)."""

    TYPE: ClassVar[str] = "agent"
    cell_id: str
    phase: str
    fields: dict[str, Any] = field(default_factory=dict, metadata=SPREAD)

    @classmethod
    def of(cls, cell_id: str, phase: str, library_record: dict[str, Any]) -> "AgentRecord":
        from orchestrator.core.datafiles import validate  # records.py stays import-light for the ledger readers
        validate(library_record, "agent-record", f"{library_record.get('record')} record of task {library_record.get('task')}")
        kind = {"agent_pass": AgentPassRecord, "agent_run": AgentRunRecord}[library_record["record"]]
        return kind(cell_id, phase, {k: v for k, v in library_record.items() if k != "record"})

    def library_form(self) -> dict[str, Any]:
        return {"record": self.TYPE, **self.fields}


@dataclass(frozen=True)
class AgentPassRecord(AgentRecord):
    TYPE: ClassVar[str] = "agent_pass"


@dataclass(frozen=True)
class AgentRunRecord(AgentRecord):
    TYPE: ClassVar[str] = "agent_run"


RECORD_TYPES: dict[str, type[Record]] = {cls.TYPE: cls for cls in (
    MetaRecord, CallRecord, SkippedRecord, LanesRecord, ResumeRecord, EndRecord, QualityRecord, QualityRescoreRecord,
    AgentPassRecord, AgentRunRecord, CapacityRecord, EnduranceRecord)}
