"""The tune search against a simulated runtime (memory limit, speed curve, OOM, defaults,
slots), its bounds from GGUF metadata and a FAKE llama-fit-params, Ollama's prober against the
FAKE Ollama, and on the real llama-server with SmolLM2 (threads; NGL is 0 on this CPU machine)."""

import os

import pytest

from orchestrator.plan.decide import decide
from orchestrator.runtime.launch import build_command, load_runtime, pid_dir
from orchestrator.plan.probe import Hardware
from orchestrator.plan.profiles import load_profiles, load_tuned
from orchestrator.plan.rulecheck import GOLDEN_DIR
from orchestrator.flows.tune import (CONFIRM_ROUNDS, Candidate, Measurement, NglBounds, best, choose_slots, fit_params_ngl,
                               gguf_offloadable_layers, ngl_bounds, search_ngl, search_threads, settle, slot_candidates,
                               render_markdown, tune, write_tuned_profile)
from tests.fakes.fit_params import write_fake_fit_params

PROFILES = load_profiles()


def plan_for(machine, **overrides):
    return decide(Hardware.load(GOLDEN_DIR / f"{machine}.json"), PROFILES, overrides, use_tuned=False)


class SimulatedRuntime:
    """OOM above `limit` layers; decode speed rises with offload, then dips near the limit.

    Its own defaults (no -ngl, no --threads) run at `default_ngl` / `default_threads` and say so
    in `effective`, as llama-server's log does. k concurrent streams share `slot_scaling`.
    """

    def __init__(self, layers: int, limit: int, dip: int = 0, dip_depth: float = 0.0, default_ngl: int = 0,
                 default_threads: int = 2, thread_speed: dict | None = None, slot_scaling: float = 0.0):
        self.layers, self.limit, self.dip, self.dip_depth = layers, limit, dip, dip_depth
        self.default_ngl, self.default_threads = default_ngl, default_threads
        self.thread_speed = thread_speed or {}
        self.slot_scaling = slot_scaling
        self.launches = 0
        self.log: list[Candidate] = []

    def speed(self, ngl: int, threads: int | None) -> float:
        rate = 5.0 + 45.0 * ngl / self.layers
        if self.dip and ngl > self.limit - self.dip:  # KV spill / compute buffers near the limit
            rate *= 1 - self.dip_depth
        return rate * self.thread_speed.get(threads, 1.0)

    def __call__(self, candidate: Candidate) -> Measurement:
        self.launches += 1
        self.log.append(candidate)
        ngl = self.default_ngl if candidate.ngl is None else candidate.ngl
        threads = self.default_threads if candidate.threads is None else candidate.threads
        if ngl > self.limit:
            return Measurement(candidate, False, failure="oom", log_tail="cudaMalloc failed: out of memory")
        rate = self.speed(ngl, threads)
        effective = {"ngl": ngl, "threads": threads} if candidate == Candidate() else {}
        if candidate.num_parallel:
            k = candidate.num_parallel
            return Measurement(candidate, True, tokens_per_sec=rate * k / (1 + self.slot_scaling * (k - 1)),
                               per_stream_tokens_per_sec=rate / (1 + self.slot_scaling * (k - 1)), effective=effective)
        return Measurement(candidate, True, tokens_per_sec=rate, ttft_ms=50.0, effective=effective)


SHAPES = [(layers, limit, dip, depth) for layers in (13, 25, 33, 49, 65, 81) for limit in
          (0, 1, layers // 3, layers // 2, layers - 2, layers) for dip, depth in ((0, 0.0), (2, 0.3), (3, 0.6))]


@pytest.mark.parametrize("layers,limit,dip,depth", SHAPES)
def test_ngl_search_finds_near_best_in_a_third_of_the_launches(layers, limit, dip, depth):
    start = max(0, min(layers, limit + 7))  # the estimate may be optimistic
    sim = SimulatedRuntime(layers, limit, dip, depth)
    found = best(list(search_ngl(sim, layers, start).seen.values()))
    sweep = SimulatedRuntime(layers, limit, dip, depth)
    optimum = best(list(search_ngl(sweep, layers, start, exhaustive=True).seen.values()))
    assert found.candidate.ngl <= limit, "recommended a configuration that ran out of memory"
    assert found.tokens_per_sec >= optimum.tokens_per_sec * 0.97
    if layers >= 33:
        assert sim.launches <= (layers + 1) / 3


def test_model_that_fits_nowhere_recommends_nothing(tmp_path):
    plan = plan_for("linux-gtx1060-6gb", model="qwen3.5-9b", ngl=6)
    sim = SimulatedRuntime(plan.layers_offloadable, -1, default_ngl=plan.layers_offloadable)
    report = tune(plan, sim, 6, 12, bounds=NglBounds(20, plan.layers_offloadable, "test"))
    assert report.knob == "ngl" and report.recommended is None
    assert all(c["failure"] == "oom" and c["log_tail"] for c in report.candidates)
    assert report.defaults["failure"] == "oom" and report.launches == sim.launches
    with pytest.raises(Exception, match="nothing to write"):
        write_tuned_profile(report, tmp_path)


def test_max_launches_caps_measurements():
    sim = SimulatedRuntime(65, 40)
    search_ngl(sim, 65, 10, max_launches=4)
    assert sim.launches == 4


def test_gpu_tune_beats_or_matches_defaults_and_records_the_start():
    plan = plan_for("linux-gtx1060-6gb", model="qwen3.5-9b", ngl=6)
    top = plan.layers_offloadable
    # llama-server's own default offloads everything, which does not fit this card: it fails.
    sim = SimulatedRuntime(top, 11, dip=2, dip_depth=0.3, default_ngl=top)
    report = tune(plan, sim, 6, 12, bounds=NglBounds(14, top, "llama-fit-params"))
    assert report.start == {"start": 14, "top": top, "source": "llama-fit-params"}
    assert report.recommended["ngl"] <= 11 and report.recommended["tokens_per_sec"] > 0
    assert "defaults failed (oom)" in report.recommended["why"]
    assert report.launches == sim.launches == len(report.candidates) + 1
    assert f"NGL search started at 14 of {top} (llama-fit-params)" in render_markdown(report)


def test_settle_keeps_a_clear_winner_without_relaunching():
    sim = SimulatedRuntime(33, 33, default_ngl=10)
    winner, defaults = sim(Candidate(ngl=33)), sim(Candidate())
    choice = settle(sim, winner, defaults, "ngl")
    assert choice.knobs == {"ngl": 33} and not choice.remeasured and "over the runtime's defaults" in choice.why


def test_settle_recognises_the_runtimes_own_choice():
    sim = SimulatedRuntime(33, 33, default_threads=4)
    winner, defaults = sim(Candidate(ngl=0, threads=4)), sim(Candidate())
    defaults.effective.pop("ngl")  # a CPU build logs no offload line
    choice = settle(sim, winner, defaults, "threads")
    assert choice.knobs == {"ngl": 0, "threads": 4} and not choice.remeasured and "picks by itself" in choice.why


def test_settle_remeasures_a_close_call_and_takes_the_defaults_when_they_win():
    noisy = iter([52.0, 49.0, 53.0, 48.0])  # defaults, winner alternately

    def prober(candidate):
        return Measurement(candidate, True, tokens_per_sec=next(noisy), effective={"threads": 2} if candidate == Candidate() else {})

    winner = Measurement(Candidate(ngl=0, threads=1), True, tokens_per_sec=50.5)
    defaults = Measurement(Candidate(), True, tokens_per_sec=50.0, ttft_ms=40.0, effective={"threads": 2, "ngl": 0})
    choice = settle(prober, winner, defaults, "threads")
    assert len(choice.remeasured) == 2 * CONFIRM_ROUNDS
    assert choice.knobs == {"ngl": 0, "threads": 2} and "runtime's own choice" in choice.why


def test_settle_close_call_winner_confirmed():
    rates = iter([50.0, 53.0, 50.0, 53.0])

    def prober(candidate):
        return Measurement(candidate, True, tokens_per_sec=next(rates))

    winner = Measurement(Candidate(threads=1), True, tokens_per_sec=51.0)
    defaults = Measurement(Candidate(), True, tokens_per_sec=50.0, effective={"threads": 2})
    choice = settle(prober, winner, defaults, "threads")
    assert choice.knobs == {"threads": 1} and choice.tokens_per_sec == 53.0 and "median of 3 launches" in choice.why


def test_slots_pick_the_fewest_within_the_gain_threshold():
    assert slot_candidates(6) == [1, 2, 4, 6] and slot_candidates(1) == [1]
    saturating = [Measurement(Candidate(num_parallel=k), True, tokens_per_sec=r) for k, r in ((1, 40), (2, 70), (4, 72), (8, 73))]
    assert choose_slots(saturating).candidate.num_parallel == 2
    flat = [Measurement(Candidate(num_parallel=k), True, tokens_per_sec=r) for k, r in ((1, 40), (2, 41), (4, 39))]
    assert choose_slots(flat).candidate.num_parallel == 1


def test_slots_probes_are_capacity_levels_with_the_capacity_sentence():
    """tune --parallel: the k-stream probe on k slots is the capacity phase's closed-loop level for k users."""
    from orchestrator.flows.tune import slots_capacity
    from orchestrator.flows.tune.probers import capacity_level
    from orchestrator.measure.client import CallResult

    def calls(k, ttft_ms, rate):
        return [CallResult(first_delta_ms=ttft_ms, server_prompt_ms=ttft_ms / 2, tokens_per_sec=rate, completion_tokens=64)
                for _ in range(3 * k)]

    probes = [Measurement(Candidate(num_parallel=k), True, tokens_per_sec=agg,
                          capacity_level=capacity_level(k, calls(k, ttft, rate), agg, 3 * 64 * k / agg))
              for k, ttft, rate, agg in ((1, 400.0, 40.0, 40.0), (2, 900.0, 30.0, 60.0), (4, 2500.0, 18.0, 72.0))]
    summary = slots_capacity(probes)
    assert [(lv["users"], lv["meets_slo"]) for lv in summary["levels"]] == [(1, True), (2, True), (4, False)]
    assert summary["users"] == 2 and summary["sentence"].startswith("serves 2 concurrent users with TTFT p95 ≤ 0.90 s")
    assert slots_capacity([Measurement(Candidate(num_parallel=1), False, failure="oom")]) is None


def test_slots_are_tuned_when_asked_and_written_to_the_profile(tmp_path):
    plan = plan_for("linux-vps-cpu-4c-8gb", model="smollm2-135m-instruct", num_parallel=4)
    sim = SimulatedRuntime(31, 31, default_threads=4, thread_speed={1: 0.5, 2: 0.8, 3: 0.9, 4: 1.0}, slot_scaling=0.2)
    report = tune(plan, sim, 4, 4, most_slots=4)
    assert [c["num_parallel"] for c in report.slots] == [1, 2, 4]
    assert report.recommended["threads"] == 4 and report.recommended["num_parallel"] == 4
    assert report.recommended["aggregate_tokens_per_sec"] > report.recommended["tokens_per_sec"]
    path = write_tuned_profile(report, tmp_path)
    assert load_tuned(tmp_path)[plan.device_tag]["models"]["smollm2-135m-instruct"]["num_parallel"] == 4
    assert path.exists()


def test_thread_search_and_the_profile_decide_then_uses(tmp_path):
    speeds = {1: 40.0, 2: 70.0, 3: 65.0, 4: 50.0}
    prober = lambda c: Measurement(c, True, tokens_per_sec=speeds[c.threads] if c.threads else 60.0,  # noqa: E731
                                   effective={"threads": 4} if c == Candidate() else {})
    rec = search_threads(prober, physical=2, logical=4)
    assert best(list(rec.seen.values())).candidate.threads == 2
    plan = plan_for("linux-vps-cpu-4c-8gb", model="smollm2-135m-instruct")
    report = tune(plan, prober, 2, 4)
    assert report.recommended["threads"] == 2 and report.defaults["tokens_per_sec"] == 60.0
    assert report.launches == len(report.candidates) + 1 <= 5
    path = write_tuned_profile(report, tmp_path / "local")
    profiles = load_profiles()
    profiles.tuned.update(load_tuned(tmp_path / "local"))
    hw = Hardware.load(GOLDEN_DIR / "linux-vps-cpu-4c-8gb.json")
    plan = decide(hw, profiles, {"model": "smollm2-135m-instruct"})
    assert path.name == f"{hw.device_tag}.yaml" and plan.threads == 2
    assert [d.knob for d in plan.deviations if d.source == "tuned"] == ["threads"]


def test_defaults_leave_the_searched_knobs_to_the_runtime():
    defn = load_runtime("llama.cpp")
    plan = plan_for("linux-gtx1060-6gb", model="qwen3.5-9b", ngl=6, num_parallel=2)
    ours = build_command(defn, plan, "llama-server", 8080, "/m.gguf", plan.model).argv
    theirs = build_command(defn, plan, "llama-server", 8080, "/m.gguf", plan.model,
                           leave_to_runtime=frozenset({"ngl", "threads"})).argv
    assert {"-ngl", "--threads", "--fit"} <= set(ours)
    assert not {"-ngl", "--threads", "--fit"} & set(theirs) and {"-c", "--parallel"} <= set(theirs)
    log = "init: llama threadpool init, n_threads = 2\nload_tensors: offloaded 20/37 layers to GPU\n"
    assert defn.effective_values(log) == {"threads": 2, "ngl": 20}


def test_bounds_from_gguf_metadata_and_a_fake_fit_params(tmp_path):
    import gguf

    model = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(model), "llama")
    writer.add_block_count(7)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert gguf_offloadable_layers(str(model)) == 8
    assert gguf_offloadable_layers(str(tmp_path / "missing.gguf")) is None
    plan = plan_for("linux-gtx1060-6gb", model="qwen3.5-9b", ngl=6)
    assert fit_params_ngl(str(write_fake_fit_params(tmp_path / "fit", 5)), str(model), plan, 512, 8) == 5
    assert fit_params_ngl(str(write_fake_fit_params(tmp_path / "all", -1)), str(model), plan, 512, 8) == 8
    assert fit_params_ngl(str(write_fake_fit_params(tmp_path / "bad", 5, exit_code=1)), str(model), plan, 512, 8) is None
    assert ngl_bounds(plan, str(model), str(tmp_path / "fit"), 512) == NglBounds(5, 8, "llama-fit-params")
    fallback = ngl_bounds(plan, str(model), None, 512)
    assert fallback.top == 8 and fallback.start == min(6, 8) and "estimate" in fallback.source


def assert_every_pidfile_removed():
    """Each launch records its runtime as <pid>.json in the test's private state folder and removes
    it when the runtime stops: the folder exists (something was launched) and holds none."""
    assert pid_dir().is_dir(), "no launch wrote a pidfile"
    assert not list(pid_dir().iterdir()), f"pidfiles left behind: {sorted(p.name for p in pid_dir().iterdir())}"


@pytest.mark.integration
def test_real_thread_tune_on_smollm2(llama_server, smollm2, tmp_path):
    from orchestrator.flows.tune import real_prober

    plan = plan_for("linux-vps-cpu-4c-8gb", model="smollm2-135m-instruct", num_ctx=2048)
    cores = os.cpu_count() or 1
    prober = real_prober(plan, llama_server.binary, smollm2.path, tmp_path, variant_args=llama_server.variant_args)
    report = tune(plan, prober, cores, cores, most_slots=2)
    assert report.knob == "threads" and report.recommended and report.defaults["ok"]
    assert report.defaults["effective"].get("threads"), "llama-server's log names the threads it chose"
    assert report.recommended["tokens_per_sec"] > 0 and all(c["ok"] for c in report.candidates + report.slots)
    assert report.recommended["num_parallel"] in (1, 2) and [c["num_parallel"] for c in report.slots] == [1, 2]
    assert report.launches == 1 + len(report.candidates) + len(report.confirmations) + len(report.slots)
    # each slot count is a capacity level, judged by the capacity phase's SLO and sentence
    assert [level["users"] for level in report.capacity["levels"]] == [1, 2]
    assert all(level["ttft_ms_p95"] and level["aggregate_tokens_per_sec"] for level in report.capacity["levels"])
    assert report.capacity["sentence"].startswith(("serves ", "meets the SLO")) and "## Capacity" in render_markdown(report)
    assert_every_pidfile_removed()


@pytest.mark.integration
def test_real_fit_params_answers_for_smollm2(llama_server, smollm2):
    plan = plan_for("linux-vps-cpu-4c-8gb", model="smollm2-135m-instruct", num_ctx=2048)
    top = gguf_offloadable_layers(smollm2.path)
    assert top == PROFILES.model("smollm2-135m-instruct").layers + 1
    # A CPU build has no GPU to fit: llama-fit-params answers -1 (every layer), which we read as the top.
    assert fit_params_ngl(llama_server.fit_params_binary, smollm2.path, plan, 512, top) == top


from tests.test_integration_llama import llama_server, smollm2  # noqa: E402,F401  (session fixtures)


def test_ollama_tune_against_the_fake_reloads_each_candidate(tmp_path, monkeypatch):
    """Against the FAKE Ollama (not evidence about real Ollama): num_gpu per request, OOM above
    what fits, and Ollama's own offload read from its log."""
    from tests.test_launch import fake_ollama_binary
    from orchestrator.flows.tune import tune_on_this_machine

    hw = Hardware.load(GOLDEN_DIR / "linux-gtx1060-6gb.json")
    plan = decide(hw, PROFILES, {"runtime": "ollama", "model": "qwen3.5-4b"}, use_tuned=False)
    monkeypatch.setenv("FAKE_OLLAMA_LAYERS", str(plan.layers_offloadable))
    monkeypatch.setenv("FAKE_OLLAMA_FIT_LAYERS", "20")
    report = tune_on_this_machine(plan, hw, PROFILES, fake_ollama_binary(tmp_path), None, None, tmp_path)
    assert report.knob == "ngl" and report.defaults["effective"] == {"ngl": 18}
    assert all(c["failure"] == "oom" and "out of memory" in c["log_tail"] for c in report.candidates if c["ngl"] > 20)
    assert all(c["ok"] for c in report.candidates if c["ngl"] <= 20)
    assert {20, 21} <= {c["ngl"] for c in report.candidates}  # the search found the edge: the most that fits, the first that does not
    # Which of those that fit is fastest is the fake's wall-clock timing (a millisecond or two per token): on a busy
    # host scheduling noise swamps it, so the choice itself is tested above on synthetic measurements; here, it fits.
    fitting = {c["ngl"] for c in report.candidates if c["ok"]} | {report.defaults["effective"]["ngl"]}
    assert report.recommended["ngl"] in fitting and report.recommended["ngl"] <= 20, report.recommended
    assert_every_pidfile_removed()
    with pytest.raises(Exception, match="OLLAMA_NUM_PARALLEL"):
        tune_on_this_machine(plan, hw, PROFILES, fake_ollama_binary(tmp_path), None, None, tmp_path, most_slots=2)
