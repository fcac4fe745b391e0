"""Tune figures (#6, #28 §1), side by side in one run on this machine:

- the whole search (NGL/threads, then every launch-knob axis of runtimes/llama.cpp.yaml with the KLD
  gate): axes searched, what it kept, launches, and every KV type's KLD against the budget;
- its choice vs llama-server's defaults, re-measured alternately (ratio of medians, both spreads);
- coordinate descent vs the exhaustive grid on the same axes (--grid-axes): launches used, and the two
  choices re-measured alternately (the grid's best is a maximum over many noisy launches, so its own
  figure is biased upward: only the side-by-side re-measurement compares them fairly);
- the same two searches on the simulated runtimes of tests/ (NGL shapes, launch-knob effects).

    nice python3 benchmarks/bench_tune.py [--objective decode|prefill|balanced] [--rounds 5]
                                          [--grid-axes flash_attn,batch,kv_cache_type] [--simulated]
                                          [--comparison-only]

On a quiet 2-core machine with SmolLM2-135M: about 35 minutes (each launch ~20 s; the grid ~45 of them).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.flows.tune import (Candidate, best, kld_meter_for, real_prober, resolve_axes, search_axes,  # noqa: E402
                                     search_ngl, tune)
from orchestrator.flows.tune.axes import relative_spread, score  # noqa: E402
from orchestrator.plan.decide import decide  # noqa: E402
from orchestrator.plan.probe import probe  # noqa: E402
from orchestrator.plan.profiles import load_profiles  # noqa: E402
from orchestrator.plan.runtimes import load_runtime  # noqa: E402
from orchestrator.runtime.install import install_llama_cpp  # noqa: E402
from orchestrator.runtime.models import get_model  # noqa: E402
from tests.test_tune import SHAPES, SimulatedRuntime  # noqa: E402
from tests.test_tune_axes import SimulatedAxesRuntime, kld_meter, llama_axes  # noqa: E402

CANDIDATE_FIELDS = {f.name for f in dataclasses.fields(Candidate)}


def alternate(prober, arms: dict[str, Candidate], rounds: int, objective: str) -> dict[str, list[float]]:
    """Each arm launched once per round, the order reversed every round, so a drifting load weighs on all alike."""
    scores: dict[str, list[float]] = {name: [] for name in arms}
    for i in range(rounds):
        for name, candidate in (list(arms.items()) if i % 2 == 0 else list(reversed(arms.items()))):
            m = prober(candidate)
            if score(m, objective):
                scores[name].append(score(m, objective))
        print(f"    round {i + 1}: " + ", ".join(f"{n} {s[-1]:.1f}" for n, s in scores.items() if s), flush=True)
    return scores


def compared(scores: dict[str, list[float]], mine: str, theirs: str) -> str:
    a, b = statistics.median(scores[mine]), statistics.median(scores[theirs])
    paired = sorted(x / y for x, y in zip(scores[mine], scores[theirs]))
    return (f"{mine} {a:.1f} (spread ±{relative_spread(scores[mine]) / 2:.1%}) vs {theirs} {b:.1f} "
            f"(spread ±{relative_spread(scores[theirs]) / 2:.1%}): ratio {a / b:.3f}, medians of {len(scores[mine])} "
            f"alternating launches each; per round {mine}/{theirs} median {statistics.median(paired):.3f}"
            f"{median_interval(paired)}, {mine} ahead in {sum(r > 1 for r in paired)} of {len(paired)} rounds")


def median_interval(ordered: list[float]) -> str:
    """A distribution-free ~95% interval for the median of paired ratios (binomial order statistics),
    where there are enough rounds for one."""
    n = len(ordered)
    # the k-th smallest and k-th largest bound the median with >= 95% confidence (sign test)
    k = next((k for k in range(n // 2, 0, -1)
              if sum(math.comb(n, i) for i in range(k)) * 2 / 2 ** n <= 0.05), None)
    return f" (95% interval {ordered[k - 1]:.3f}..{ordered[n - k]:.3f})" if k else ""


def real(objective: str, rounds: int, grid_axes: list[str], whole_search: bool) -> None:
    profiles = load_profiles()
    hw = probe()
    model_id = profiles.embedded_default
    plan = decide(hw, profiles, {"model": model_id, "num_ctx": 2048}, use_tuned=False)
    server = install_llama_cpp(plan.backend)
    model = get_model(profiles.model(model_id))
    defn = load_runtime(plan.runtime)
    say = lambda m, f: print(f"  {m}", flush=True) if f is None else None  # noqa: E731
    meter = kld_meter_for(plan, server, model.path, say)
    kld = meter.meter(model.path) if meter else None
    budget = defn.tune_quality["max_kld_kv"]
    every, skipped = resolve_axes(defn.tune_axes, defn.knobs, hw.cpu.cores, hw.cpu.threads,
                                  plan.budget.usable_ram_gb >= 2 * plan.model_size_gb)
    with tempfile.TemporaryDirectory() as tmp:
        prober = real_prober(plan, server.binary, model.path, Path(tmp), variant_args=server.variant_args)
        if whole_search:
            start = whole(plan, prober, hw, every, skipped, objective, kld, budget, rounds)
        else:
            start = Candidate(ngl=plan.ngl, threads=plan.threads)
        axes = [a for a in every if a.name in grid_axes]
        # no n-gram axis here: the repetitive prompt set (what drafting is judged on) is left out of each launch
        lean = real_prober(plan, server.binary, model.path, Path(tmp), variant_args=server.variant_args,
                           repetitive=any(a.name == "spec_ngram" for a in axes))
        print(f"  descent vs grid on {', '.join(a.name for a in axes)} from {start.label()}, objective {objective}:", flush=True)
        descent = search_axes(lean, start, axes, objective, kld, budget)
        grid = search_axes(lean, start, axes, objective, kld, budget, exhaustive=True, noise_launches=1)
        print(f"  launches: descent {descent.launches} vs grid {grid.launches} "
              f"({descent.launches / grid.launches:.2f} of the grid's); descent chose {descent.best.candidate.label()}, "
              f"the grid {grid.best.candidate.label()}")
        if descent.best.candidate == grid.best.candidate:
            print("  the same configuration: speed ratio 1.000 by construction")
        else:
            scores = alternate(lean, {"descent": descent.best.candidate, "grid": grid.best.candidate}, rounds, objective)
            print("  " + compared(scores, "descent", "grid"))


def whole(plan, prober, hw, every, skipped, objective, kld, budget, rounds) -> Candidate:
    """The whole search and its choice against llama-server's defaults; returns the NGL/threads it chose."""
    print(f"{plan.model} on {hw.device_tag}, objective {objective}: the whole search ({len(every)} launch-knob axes "
          f"+ {'NGL' if plan.backend != 'cpu' else 'threads'}; not searched: {skipped or 'none'})", flush=True)
    searched = tune(plan, prober, hw.cpu.cores, hw.cpu.threads, axes=every, objective=objective, kld=kld,
                    max_kld=budget, axes_skipped=skipped)
    chosen = Candidate(**{k: v for k, v in searched.recommended.items() if k in CANDIDATE_FIELDS})
    print(f"  chose {chosen.label()} in {searched.launches} launches ({searched.recommended['why']})")
    for row in searched.axes["axes"].get("kv_cache_type", {}).get("values", []):
        print(f"  KV {row['value']}: KLD {row['kld']} (budget {budget}) -> "
              f"{row['refused'] or ('launched, score ' + str(row.get('score')))}")
    kept_kv = {k: chosen.__dict__[k] for k in ("cache_type_k", "cache_type_v") if chosen.__dict__[k]}
    if kept_kv:
        row = next(r for r in searched.axes["axes"]["kv_cache_type"]["values"] if r["value"] == kept_kv)
        print(f"  kept KV {kept_kv} with KLD {row['kld']} {'<=' if row['kld'] <= budget else '> (A BUG)'} {budget}")
    print("  chosen vs llama-server's defaults, alternately:", flush=True)
    scores = alternate(prober, {"chosen": chosen, "defaults": Candidate()}, rounds, objective)
    print("  " + compared(scores, "chosen", "defaults"))
    return Candidate(**{k: v for k, v in searched.recommended.items() if k in ("ngl", "threads")})


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
    axes, _ = llama_axes()
    for objective in ("decode", "prefill", "balanced"):
        for jitter in (0.0, 0.03):
            found = [search_axes(SimulatedAxesRuntime(jitter, seed), Candidate(threads=2), axes, objective, kld_meter([]), 0.01)
                     for seed in range(20)]
            grid = search_axes(SimulatedAxesRuntime(), Candidate(threads=2), axes, objective, kld_meter([]), 0.01,
                               exhaustive=True, noise_launches=1)
            noisy_grid = search_axes(SimulatedAxesRuntime(jitter, 99), Candidate(threads=2), axes, objective,
                                     kld_meter([]), 0.01, exhaustive=True, noise_launches=1)
            exact = SimulatedAxesRuntime()  # the true (noise-free) score of each choice
            truth = [score(exact(f.best.candidate), objective) / score(grid.best, objective) for f in found]
            grid_truth = score(exact(noisy_grid.best.candidate), objective) / score(grid.best, objective)
            print(f"simulated launch-knob descent, {len(axes)} axes, {objective}, ±{jitter:.0%} launch noise: launches "
                  f"{statistics.median(f.launches for f in found):.0f} vs grid {grid.launches}; true speed of its choice / "
                  f"true best: median {statistics.median(truth):.3f}, min {min(truth):.3f} (the noisy grid's own choice: "
                  f"{grid_truth:.3f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", choices=("decode", "prefill", "balanced"), default="decode")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--grid-axes", default="flash_attn,batch,kv_cache_type")
    parser.add_argument("--simulated", action="store_true", help="only the simulated searches (seconds)")
    parser.add_argument("--comparison-only", action="store_true",
                        help="only descent vs grid, from the plan's NGL and threads (not the whole search first)")
    args = parser.parse_args()
    simulated()
    if not args.simulated:
        real(args.objective, args.rounds, args.grid_axes.split(","), not args.comparison_only)
