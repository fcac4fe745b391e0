"""Tune figures (#6), side by side in one run on this machine:

- tuned vs llama-server defaults (tok/s ratio, re-measured alternately after the search),
- tuned vs the exhaustive sweep's best, and launches used vs the sweep's,
- the NGL search on the simulated runtime shapes of tests/test_tune.py (no GPU here).

    python3 benchmarks/bench_tune.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.plan.decide import decide  # noqa: E402
from orchestrator.runtime.install import install_llama_cpp  # noqa: E402
from orchestrator.runtime.models import get_model  # noqa: E402
from orchestrator.plan.probe import probe  # noqa: E402
from orchestrator.plan.profiles import load_profiles  # noqa: E402
from orchestrator.flows.tune import Candidate, best, real_prober, search_ngl, tune  # noqa: E402
from tests.test_tune import SHAPES, SimulatedRuntime  # noqa: E402

ROUNDS = 5  # launch-to-launch noise here is about ±8%, so one pair proves nothing


def real() -> None:
    profiles = load_profiles()
    hw = probe()
    model_id = profiles.embedded_default
    plan = decide(hw, profiles, {"model": model_id, "num_ctx": 2048}, use_tuned=False)
    server = install_llama_cpp(plan.backend)
    model = get_model(profiles.model(model_id))
    with tempfile.TemporaryDirectory() as tmp:
        prober = real_prober(plan, server.binary, model.path, Path(tmp))
        searched = tune(plan, prober, hw.cpu.cores, hw.cpu.threads)
        sweep = tune(plan, prober, hw.cpu.cores, hw.cpu.threads, exhaustive=True, measure_defaults=False)
        tuned = Candidate(**{k: searched.recommended[k] for k in ("ngl", "threads") if k in searched.recommended})
        rates = {"defaults": [], "tuned": []}
        for _ in range(ROUNDS):  # alternate, so drift on this shared machine hits both alike
            rates["defaults"].append(prober(Candidate()).tokens_per_sec)
            rates["tuned"].append(prober(tuned).tokens_per_sec)
    d, t = statistics.median(rates["defaults"]), statistics.median(rates["tuned"])
    pairs = sorted(b / a for a, b in zip(rates["defaults"], rates["tuned"]))
    sweep_best = sweep.recommended["tokens_per_sec"]
    print(f"{model_id} on {hw.device_tag} ({searched.knob}): tuned {tuned.label()} {t:.1f} tok/s vs llama-server "
          f"defaults {d:.1f} tok/s -> ratio {t / d:.3f} (medians of {ROUNDS} alternating launches each; "
          f"launch-pair ratios {pairs[0]:.2f}-{pairs[-1]:.2f}; tune's reason: {searched.recommended['why']})")
    print(f"  search best {searched.recommended['tokens_per_sec']:.1f} tok/s vs exhaustive best {sweep_best:.1f} "
          f"({searched.recommended['tokens_per_sec'] / sweep_best:.3f}); search launches {len(searched.candidates)} "
          f"(+1 defaults, +{len(searched.confirmations)} re-measured) vs sweep {sweep.launches} "
          f"(a {hw.cpu.threads}-thread CPU has few candidates)")


def simulated() -> None:
    ratios, quality = [], []
    for layers, limit, dip, depth in SHAPES:
        if layers < 33:
            continue
        sim, sweep = SimulatedRuntime(layers, limit, dip, depth), SimulatedRuntime(layers, limit, dip, depth)
        found = best(list(search_ngl(sim, layers, min(layers, limit + 7)).seen.values()))
        optimum = best(list(search_ngl(sweep, layers, 0, exhaustive=True).seen.values()))
        ratios.append(sim.launches / sweep.launches)
        quality.append(found.tokens_per_sec / optimum.tokens_per_sec)
    print(f"simulated NGL search over {len(ratios)} shapes (33-81 layers, dips near the limit): launches/sweep "
          f"median {statistics.median(ratios):.2f}, max {max(ratios):.2f}; found/best min {min(quality):.3f}")


if __name__ == "__main__":
    simulated()
    if "--simulated" not in sys.argv:
        real()
