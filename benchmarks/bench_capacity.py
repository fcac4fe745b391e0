"""Capacity and thermal evidence (#28 §3, §4): what the thermal sampling costs, what this machine exposes,
and the closed-loop capacity sweep on the real llama-server with the embedded model, per slot count.

    nice python3 benchmarks/bench_capacity.py [--slots 1,2,4] [--threads 2] [--answer 96] [--requests-per-user 2]

1. Thermal readings: the sensors this machine exposes (in words), and the median cost of one reading
   (CPU sensors, NVML where pynvml is installed, the throttling judgement) over 200 reads.
2. For each slot count: llama-server launched with that many slots (the plan's -c scaled, as auto does),
   then `measure/phases/capacity.py` sweep(): 1, 2, 4 … users up to the slots, `--requests-per-user`
   calls each, the suite's prompts capped at `--answer` tokens. Per level: aggregate tok/s and its ratio
   to one user's measured in the same launch, per-user tok/s, TTFT p50 / p95, queueing p50; then the
   headline sentence at canonical.yaml's SLO. The load average is printed beside each launch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from orchestrator.core.canonical import capacity_slo, thermal_marks  # noqa: E402
from orchestrator.measure.client import CallRequest, stream_chat  # noqa: E402
from orchestrator.measure.phases.capacity import serving_capacity, sweep  # noqa: E402
from orchestrator.measure.phases.load import load_suite  # noqa: E402
from orchestrator.measure.resources import throttle_tags  # noqa: E402
from orchestrator.plan.decide import decide  # noqa: E402
from orchestrator.plan.probe import load_nvml, probe  # noqa: E402
from orchestrator.plan.probe.sensors import exposed, read_cpu, read_gpus  # noqa: E402
from orchestrator.plan.profiles import load_profiles  # noqa: E402
from orchestrator.runtime.launch import launch  # noqa: E402
from orchestrator.runtime.models import get_model  # noqa: E402
from orchestrator.runtime.selftest import verified_llama_server  # noqa: E402


def load() -> str:
    return "load " + "/".join(f"{x:.1f}" for x in os.getloadavg())


def thermal_cost(reads: int = 200) -> None:
    nvml = load_nvml()
    handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())] if nvml else []
    marks, before = thermal_marks(), None
    cpu, gpus = read_cpu(), read_gpus(nvml, handles)
    print(f"[1] sensors this machine exposes: {', '.join(exposed(cpu, gpus)) or 'none'}")
    times = []
    for _ in range(reads):
        started = time.perf_counter()
        cpu, gpus = read_cpu(), read_gpus(nvml, handles)
        tags = throttle_tags(before, cpu, gpus, 100.0, marks)
        times.append(time.perf_counter() - started)
        before = cpu
    print(f"    one thermal reading: median {statistics.median(times) * 1e6:,.0f} µs, max {max(times) * 1e6:,.0f} µs "
          f"over {reads} (once a second in a run); judgement now: {tags if tags is not None else 'cannot tell'} ({load()})")


def capacity(slot_counts: list[int], threads: int, answer: int, per_user: int) -> None:
    profiles, suite, slo = load_profiles(), load_suite(), capacity_slo()
    runtime = verified_llama_server()
    model_id = profiles.embedded_default
    model = get_model(profiles.model(model_id))
    hardware = probe()
    for slots in slot_counts:
        plan = decide(hardware, profiles, {"model": model_id, "threads": threads, "num_ctx": 2048, "ngl": 0,
                                           "num_parallel": slots})
        with tempfile.TemporaryDirectory() as scratch, httpx.Client(limits=httpx.Limits(max_connections=64)) as http, \
                launch(plan, runtime.binary, str(model.path), Path(scratch) / "llama-server.log",
                       variant_args=runtime.variant_args) as running:

            def call(user: int, turn: int):
                request = CallRequest(running.base_url, "openai", plan.model,
                                      [{"role": "user", "content": suite.prompt(user, turn)}], answer, plan.temperature,
                                      request_fields={"cache_prompt": False})
                return stream_chat(request, "llamacpp", http)

            call(0, 0)  # warm: weights paged in
            print(f"[2] {model_id}, {slots} slot(s), {threads} threads, {answer}-token answers ({load()})")
            levels = sweep(call, slots, per_user, slo, cell_id=f"{slots}-slots")
            one = levels[0].aggregate_tokens_per_sec or 0
            for lv in levels:
                ratio = f"{lv.aggregate_tokens_per_sec / one:.2f}x" if one and lv.aggregate_tokens_per_sec else "–"
                print(f"    {lv.users} user(s): aggregate {lv.aggregate_tokens_per_sec} tok/s ({ratio} one user's), "
                      f"per user {lv.user_tokens_per_sec_p50} tok/s, TTFT p50 {lv.ttft_ms_p50} / p95 {lv.ttft_ms_p95} ms, "
                      f"queueing p50 {lv.queue_ms_p50} ms, {lv.errors} error(s){' (Pareto)' if lv.pareto else ''}")
            print(f"    {serving_capacity(levels, f'{slots}-slots', slo)['sentence']} ({load()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", default="1,2,4", help="slot counts to launch llama-server with (default 1,2,4)")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--answer", type=int, default=96, help="tokens per answer (the load suite's default)")
    parser.add_argument("--requests-per-user", type=int, default=2)
    args = parser.parse_args()
    thermal_cost()
    capacity([int(s) for s in args.slots.split(",")], args.threads, args.answer, args.requests_per_user)


if __name__ == "__main__":
    main()
