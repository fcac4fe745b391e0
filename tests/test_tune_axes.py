"""The launch-knob search (#28 §1) against a simulated runtime: coordinate descent vs the grid, the
noise rule, the KLD gate, the objective; the axes as data (runtimes/*.yaml tune_axes); the new knobs
as flags, overrides and tuned values."""

import random

import pytest

from orchestrator.core.errors import BadInput
from orchestrator.flows.tune import Axis, Candidate, Kld, Measurement, resolve_axes, search_axes, tune, write_tuned_profile
from orchestrator.flows.tune.axes import NOISE_LAUNCHES, score
from orchestrator.flows.tune.files import render_markdown
from orchestrator.plan.decide import decide
from orchestrator.plan.knobs import knob, launch_knobs
from orchestrator.plan.probe import Hardware
from orchestrator.plan.profiles import load_profiles, load_tuned
from orchestrator.plan.rulecheck import GOLDEN_DIR
from orchestrator.runtime.launch import build_command, load_runtime

PROFILES = load_profiles()
LLAMA = load_runtime("llama.cpp")

# Multiplicative effects of each value on (decode, prefill); the runtime's default is 1.0.
EFFECTS = {
    ("flash_attn", "on"): (1.02, 1.25), ("flash_attn", "off"): (0.99, 0.9),
    ("ubatch", 128): (1.0, 0.8), ("ubatch", 256): (1.0, 0.95), ("ubatch", 1024): (1.0, 1.15), ("ubatch", 2048): (0.97, 1.1),
    ("threads_batch", 4): (1.0, 1.12), ("threads_batch", 2): (1.0, 1.0),
    ("cache_type_k", "q8_0"): (1.03, 1.0), ("cache_type_k", "q4_0"): (1.06, 1.0),
    ("load_mode", "mlock"): (1.01, 1.0), ("load_mode", "none"): (0.98, 1.0), ("load_mode", "dio"): (1.0, 1.0),
    ("spec_type", "ngram-mod"): (0.97, 1.0), ("spec_type", "ngram-simple"): (0.96, 1.0),
}
KLD = {("q8_0", "q8_0"): 0.002, ("q8_0", "f16"): 0.001, ("q4_0", "q4_0"): 0.04}


class SimulatedAxesRuntime:
    """Decode 50 and prefill 400 tok/s at llama-server's defaults, each value multiplying them by its
    EFFECTS; `jitter` is the relative noise of one launch (seeded)."""

    def __init__(self, jitter: float = 0.0, seed: int = 0, fails: frozenset = frozenset()):
        self.jitter, self.rng, self.fails = jitter, random.Random(seed), fails
        self.launched: list[Candidate] = []

    def __call__(self, candidate: Candidate) -> Measurement:
        self.launched.append(candidate)
        if any(getattr(candidate, k) == v for k, v in self.fails):
            return Measurement(candidate, False, failure="exited", log_tail="quantized V cache requires flash_attn")
        decode, prefill = 50.0, 400.0
        for name in (k for k in launch_knobs() if knob(k).tunable):
            d, p = EFFECTS.get((name, getattr(candidate, name)), (1.0, 1.0))
            decode, prefill = decode * d, prefill * p
        wobble = lambda: 1 + self.rng.uniform(-self.jitter, self.jitter)  # noqa: E731
        return Measurement(candidate, True, tokens_per_sec=decode * wobble(), prefill_tokens_per_sec=prefill * wobble(),
                           decode_spread=self.jitter, ttft_ms=40.0)


def llama_axes(only=None, physical=2, logical=4, model_in_ram=True):
    return resolve_axes(LLAMA.tune_axes, LLAMA.knobs, physical, logical, model_in_ram, only)


def kld_meter(asked):
    def meter(value):
        asked.append(value)
        return Kld(KLD[(value["cache_type_k"], value["cache_type_v"])], 0.0005)
    return meter


def grid_best(axes, objective, max_kld):
    grid = search_axes(SimulatedAxesRuntime(), Candidate(threads=2), axes, objective, kld_meter([]), max_kld, exhaustive=True)
    return grid, score(grid.best, objective)


@pytest.mark.parametrize("objective", ["decode", "prefill", "balanced"])
def test_descent_is_within_3_percent_of_the_grid_with_a_third_of_its_launches(objective):
    axes, skipped = llama_axes()
    assert len(axes) >= 6 and not skipped
    sim = SimulatedAxesRuntime()
    found = search_axes(sim, Candidate(threads=2), axes, objective, kld_meter([]), max_kld=0.01)
    grid, best = grid_best(axes, objective, 0.01)
    assert score(found.best, objective) >= 0.97 * best
    assert found.launches <= grid.launches / 3 and found.launches == len(sim.launched)


def test_the_kld_gate_never_launches_nor_keeps_a_kv_type_over_the_budget():
    axes, _ = llama_axes(["kv_cache_type"])
    asked, sim = [], SimulatedAxesRuntime()
    found = search_axes(sim, Candidate(threads=2), axes, "decode", kld_meter(asked), max_kld=0.01)
    assert found.best.candidate.cache_type_k == "q8_0"  # q4_0 is faster, but loses 0.04 nats
    assert all(c.cache_type_k != "q4_0" for c in sim.launched)
    refused = [r for r in found.evidence["kv_cache_type"]["values"] if r["refused"]]
    assert [r["value"]["cache_type_k"] for r in refused] == ["q4_0"] and refused[0]["kld"] == 0.04
    assert len(asked) == 3  # each lossy value measured once, the default (the reference) never
    generous = search_axes(SimulatedAxesRuntime(), Candidate(threads=2), axes, "decode", kld_meter([]), max_kld=0.1)
    assert generous.best.candidate.cache_type_k == "q4_0"
    without_tool = search_axes(SimulatedAxesRuntime(), Candidate(threads=2), axes, "decode", None, max_kld=0.1)
    assert without_tool.best.candidate.cache_type_k is None
    assert all("no KLD tool" in r["refused"] for r in without_tool.evidence["kv_cache_type"]["values"])
    grid = search_axes(SimulatedAxesRuntime(), Candidate(threads=2), axes, "decode", kld_meter([]), 0.01, exhaustive=True)
    assert grid.best.candidate.cache_type_k == "q8_0" and sum(1 for c in grid.grid if c["refused"]) == 1


def test_the_objective_picks_what_it_measures():
    axes, _ = llama_axes(["batch"])
    decode = search_axes(SimulatedAxesRuntime(), Candidate(threads=2), axes, "decode")
    prefill = search_axes(SimulatedAxesRuntime(), Candidate(threads=2), axes, "prefill")
    assert decode.best.candidate.ubatch is None  # no ubatch speeds decode up: the default stays
    assert prefill.best.candidate.ubatch == 1024
    with pytest.raises(ValueError, match="objective"):
        search_axes(SimulatedAxesRuntime(), Candidate(), axes, "latency")


def test_a_gain_within_the_noise_of_repeated_launches_is_not_kept():
    axes, _ = llama_axes(["load_mode"])  # mlock: +1% decode
    quiet = search_axes(SimulatedAxesRuntime(jitter=0.0), Candidate(threads=2), axes, "decode")
    assert quiet.noise == 0.01 and quiet.best.candidate.load_mode is None  # 1% is not beyond the 1% floor
    # ±5% per launch: dio (no effect at all) is kept by luck rarely (a contender must clear the band twice) ...
    noisy = [search_axes(SimulatedAxesRuntime(jitter=0.05, seed=seed), Candidate(threads=2), axes, "decode")
             for seed in range(40)]
    assert all(s.noise >= 0.01 and len(s.start_scores) == NOISE_LAUNCHES for s in noisy)
    assert sum(s.best.candidate.load_mode == "dio" for s in noisy) <= 4
    # ... while a real 25% prefill gain is kept nearly always.
    fa, _ = llama_axes(["flash_attn"])
    kept = [search_axes(SimulatedAxesRuntime(jitter=0.05, seed=seed), Candidate(threads=2), fa, "prefill").best
            for seed in range(40)]
    assert sum(m.candidate.flash_attn == "on" for m in kept) >= 36


def test_a_value_that_fails_to_launch_is_recorded_not_kept():
    axes, _ = llama_axes(["kv_cache_type"])
    sim = SimulatedAxesRuntime(fails=frozenset({("cache_type_v", "q8_0")}))
    found = search_axes(sim, Candidate(threads=2), axes, "decode", kld_meter([]), 0.01)
    assert found.best.candidate.cache_type_k == "q8_0" and found.best.candidate.cache_type_v == "f16"
    failed = [r for r in found.evidence["kv_cache_type"]["values"] if r.get("failure")]
    assert failed and failed[0]["ok"] is False


def test_axes_are_data_resolved_for_this_machine():
    axes, _ = llama_axes(physical=2, logical=2)
    tb = next(a for a in axes if a.name == "threads_batch")
    assert tb.values == ({"threads_batch": 2},)  # no SMT: one value
    _, skipped = llama_axes(model_in_ram=False)
    assert "load_mode" in skipped
    ollama = load_runtime("ollama")
    assert resolve_axes(ollama.tune_axes, ollama.knobs, 2, 4, True) == ([], {})
    lacking, why = resolve_axes(LLAMA.tune_axes, ollama.knobs, 2, 4, True)
    assert not any(a.knobs != ("batch", "ubatch") and set(a.knobs) - {"batch"} for a in lacking)
    assert "has no" in why["kv_cache_type"]
    with pytest.raises(ValueError, match="unknown tune axis"):
        llama_axes(["warp_drive"])


def test_every_axis_value_is_a_value_the_knob_takes():
    for name, spec in LLAMA.tune_axes.items():
        for value in spec["values"]:
            for knob_name, v in value.items():
                assert knob_name in LLAMA.knobs and "flag" in LLAMA.knobs[knob_name], (name, knob_name)
                assert knob(knob_name).problem(v) is None or v in ("physical_cores", "logical_cores"), (knob_name, v)


FLAGS = [
    ("flash_attn", "on", ["-fa", "on"]), ("batch", 1024, ["-b", "1024"]), ("ubatch", 256, ["-ub", "256"]),
    ("threads_batch", 4, ["-tb", "4"]), ("cache_type_k", "q8_0", ["-ctk", "q8_0"]), ("cache_type_v", "q4_0", ["-ctv", "q4_0"]),
    ("load_mode", "mlock", ["--load-mode", "mlock"]), ("spec_type", "ngram-mod", ["--spec-type", "ngram-mod"]),
]


def plan_for(machine, **overrides):
    return decide(Hardware.load(GOLDEN_DIR / f"{machine}.json"), PROFILES, overrides, use_tuned=False)


@pytest.mark.parametrize("knob,value,flag", FLAGS)
def test_a_launch_knob_becomes_its_flag_and_unset_gives_none(knob, value, flag):
    plan = plan_for("linux-vps-cpu-4c-8gb", model="smollm2-135m-instruct", **{knob: value})
    argv = build_command(LLAMA, plan, "llama-server", 8080, "/m.gguf", plan.model).argv
    i = argv.index(flag[0])
    assert argv[i:i + 2] == flag
    assert [d.knob for d in plan.deviations if d.source == "user"] == ["model", "quant", knob] or knob in [
        d.knob for d in plan.deviations]
    default = plan_for("linux-vps-cpu-4c-8gb", model="smollm2-135m-instruct")
    assert getattr(default, knob) is None and flag[0] not in build_command(LLAMA, default, "s", 1, "/m", "m").argv
    ollama = build_command(load_runtime("ollama"), plan, "ollama", 8080, None, plan.model)
    assert knob in ollama.unsupported or ollama.request_options.get("num_batch") == value


@pytest.mark.parametrize("knob,value", [("flash_attn", "maybe"), ("batch", 0), ("cache_type_k", "q3_k"), ("ubatch", "64"),
                                        ("load_mode", "mmap+dio")])
def test_a_bad_launch_knob_override_is_one_line(knob, value):
    with pytest.raises(BadInput, match=f"override {knob}="):
        plan_for("linux-vps-cpu-4c-8gb", **{knob: value})


def test_tune_searches_the_axes_after_threads_and_the_profile_carries_them(tmp_path):
    plan = plan_for("linux-vps-cpu-4c-8gb", model="smollm2-135m-instruct")
    axes, _ = llama_axes()
    sim = SimulatedAxesRuntime()
    report = tune(plan, sim, 2, 4, axes=axes, objective="balanced", kld=kld_meter([]), max_kld=0.01,
                  axes_skipped={"spec_ngram": "test"})
    rec = report.recommended
    assert rec["flash_attn"] == "on" and rec["cache_type_k"] == "q8_0" and "launch-knob search (balanced)" in rec["why"]
    assert report.axes["skipped"] == {"spec_ngram": "test"} and report.launches == len(sim.launched)
    text = render_markdown(report)
    assert "## Launch knobs (coordinate descent, objective balanced)" in text and "over the budget" in text
    path = write_tuned_profile(report, tmp_path / "local")
    entry = load_tuned(tmp_path / "local")[plan.device_tag]["models"][plan.model]
    assert entry["flash_attn"] == "on" and entry["objective"] == "balanced"
    assert entry["evidence"]["kv_cache_type"]["kept"]["cache_type_k"] == "q8_0"
    profiles = load_profiles()
    profiles.tuned.update(load_tuned(tmp_path / "local"))
    tuned = decide(Hardware.load(GOLDEN_DIR / "linux-vps-cpu-4c-8gb.json"), profiles, {"model": plan.model})
    assert tuned.flash_attn == "on" and tuned.cache_type_k == "q8_0"
    assert {"flash_attn", "cache_type_k"} <= {d.knob for d in tuned.deviations if d.source == "tuned"}
    assert path.exists()


@pytest.mark.integration
def test_real_two_axis_search_refuses_a_q4_0_kv_over_a_tiny_kld_budget(llama_server, smollm2, tmp_path):
    """On the real llama-server and llama-perplexity (built from its tree) with SmolLM2: flash attention
    and the KV type from the defaults; with a budget below what q4_0 (and q8_0) lose, neither is launched."""
    from orchestrator.flows.tune import kld_meter_for, real_prober

    # One thread: this checks the search and the gate, not the speed, and on a busy 2-core host a second
    # thread spinning at ggml's barriers made decode 14x slower (0.8 vs 11 tok/s, minutes apart at load 13-20).
    plan = plan_for("linux-vps-cpu-4c-8gb", model="smollm2-135m-instruct", num_ctx=1024, threads=1)
    meter = kld_meter_for(plan, llama_server, smollm2.path, lambda m, f: None, chunks=1)
    assert meter is not None, "llama-perplexity could not be built from llama-server's tree"
    axes, _ = llama_axes(["flash_attn", "kv_cache_type"])
    prober = real_prober(plan, llama_server.binary, smollm2.path, tmp_path, variant_args=llama_server.variant_args)
    launched = []
    found = search_axes(lambda c: launched.append(c) or prober(c), Candidate(threads=plan.threads), axes, "balanced",
                        meter.meter(smollm2.path), max_kld=1e-5, noise_launches=2)
    rows = {r["value"].get("cache_type_k") + "/" + r["value"].get("cache_type_v"): r
            for r in found.evidence["kv_cache_type"]["values"] if r["value"].get("cache_type_k")}
    assert rows["q4_0/q4_0"]["refused"] and rows["q4_0/q4_0"]["kld"] > 1e-5
    assert rows["q4_0/q4_0"]["kld"] > rows["q8_0/q8_0"]["kld"] > 0  # 4-bit K and V lose more than 8-bit
    assert all(c.cache_type_k is None for c in launched) and found.best.candidate.cache_type_k is None
    assert found.best.ok and found.best.tokens_per_sec > 0 and found.best.prefill_tokens_per_sec > 0
    fa = [r for r in found.evidence["flash_attn"]["values"]]
    assert {r["value"]["flash_attn"] for r in fa} == {"on", "off"} and all(r["ok"] for r in fa)
    assert found.launches == len(launched) and found.evidence["flash_attn"]["values"][0]["decode_spread"] is not None
    assert_every_pidfile_removed()


from tests.test_integration_llama import llama_server, smollm2  # noqa: E402,F401  (session fixtures)
from tests.test_tune import assert_every_pidfile_removed  # noqa: E402
