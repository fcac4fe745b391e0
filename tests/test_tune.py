"""The tune search against a simulated runtime (memory limit, speed curve, OOM), and on the real
llama-server with SmolLM2 (threads; NGL is 0 on this CPU machine)."""

import os

import pytest

from orchestrator.decide import decide
from orchestrator.probe import Hardware
from orchestrator.profiles import load_profiles, load_tuned
from orchestrator.rulecheck import GOLDEN_DIR
from orchestrator.tune import (Candidate, Measurement, best, build_report, search_ngl, search_threads,
                               write_tuned_profile)


class SimulatedRuntime:
    """OOM above `limit` layers; decode speed rises with offload, then dips near the limit."""

    def __init__(self, layers: int, limit: int, dip: int = 0, dip_depth: float = 0.0):
        self.layers, self.limit, self.dip, self.dip_depth = layers, limit, dip, dip_depth
        self.launches = 0

    def speed(self, ngl: int) -> float:
        rate = 5.0 + 45.0 * ngl / self.layers
        if self.dip and ngl > self.limit - self.dip:  # KV spill / compute buffers near the limit
            rate *= 1 - self.dip_depth
        return rate

    def __call__(self, candidate: Candidate) -> Measurement:
        self.launches += 1
        if candidate.ngl is not None and candidate.ngl > self.limit:
            return Measurement(candidate, False, failure="oom", log_tail="cudaMalloc failed: out of memory")
        return Measurement(candidate, True, tokens_per_sec=self.speed(candidate.ngl or 0), ttft_ms=50.0)


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


def test_model_that_fits_nowhere_recommends_nothing():
    sim = SimulatedRuntime(33, -1)
    rec = search_ngl(sim, 33, 20)
    assert best(list(rec.seen.values())) is None
    report = build_report("big", "box", "ngl", rec, None, False)
    assert report.recommended is None and all(c["failure"] == "oom" and c["log_tail"] for c in report.candidates)
    with pytest.raises(Exception, match="nothing to write"):
        write_tuned_profile(report)


def test_max_launches_caps_measurements():
    sim = SimulatedRuntime(65, 40)
    search_ngl(sim, 65, 10, max_launches=4)
    assert sim.launches == 4


def test_thread_search_and_the_profile_decide_then_uses(tmp_path):
    speeds = {1: 40.0, 2: 70.0, 3: 65.0, 4: 50.0}
    prober = lambda c: Measurement(c, True, tokens_per_sec=speeds[c.threads] if c.threads else 60.0)  # noqa: E731
    rec = search_threads(prober, physical=2, logical=4)
    report = build_report("smollm2-135m-instruct", "linux-epyc-4c-8gb", "threads", rec,
                          prober(Candidate()), False)
    assert report.recommended["threads"] == 2 and report.defaults["tokens_per_sec"] == 60.0
    assert report.launches == len(rec.seen) + 1 <= 5
    path = write_tuned_profile(report, tmp_path / "local")
    profiles = load_profiles()
    profiles.tuned.update(load_tuned(tmp_path / "local"))
    hw = Hardware.load(GOLDEN_DIR / "linux-vps-cpu-4c-8gb.json")
    plan = decide(hw, profiles, {"model": "smollm2-135m-instruct", "threads": None})
    assert path.name == "linux-epyc-4c-8gb.yaml" and plan.threads == 2
    tuned = [d for d in plan.deviations if d.source == "tuned"]
    assert [d.knob for d in tuned] == ["threads"] or plan.reason("threads").value == 2


@pytest.mark.integration
def test_real_thread_tune_on_smollm2(llama_server, smollm2, tmp_path):
    from orchestrator.tune import real_prober, tune

    hw = Hardware.load(GOLDEN_DIR / "linux-vps-cpu-4c-8gb.json")
    plan = decide(hw, load_profiles(), {"model": "smollm2-135m-instruct", "num_ctx": 2048})
    cores = os.cpu_count() or 1
    report = tune(plan, real_prober(plan, llama_server.binary, smollm2.path, tmp_path), cores, cores)
    assert report.knob == "threads" and report.recommended and report.defaults["ok"]
    assert report.recommended["tokens_per_sec"] > 0 and all(c["ok"] for c in report.candidates)
    assert report.launches == len(report.candidates) + 1
    assert not list(tmp_path.glob("*.pid"))


from tests.test_integration_llama import llama_server, smollm2  # noqa: E402,F401  (session fixtures)
