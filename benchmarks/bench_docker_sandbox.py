"""Cost of the Docker sandbox (#19): the image build offline (cold: debootstrap + import; cached:
import only, and the no-op when the image is current), container start and teardown, one command
through exec, and the overhead per agent task against the process sandbox (a fresh sandbox, the
3-run gate on the reference solution, destroy), with the machine's load average.

    python3 benchmarks/bench_docker_sandbox.py [--cold] [--repeats N]

--cold makes a second root filesystem from Debian's archive in a temporary cache (minutes; needs
root, debootstrap and the archive) and imports it under another tag, removed afterwards.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.evaluate.agent import load_tasks  # noqa: E402
from orchestrator.evaluate.sandbox.process import ProcessSandbox  # noqa: E402
from orchestrator.evaluate.agent.gate import run_gate  # noqa: E402
from orchestrator.evaluate.sandbox.docker.config import load_config  # noqa: E402
from orchestrator.evaluate.sandbox.docker.engine import Container, connect  # noqa: E402
from orchestrator.evaluate.sandbox.docker.image import build_image  # noqa: E402
from orchestrator.evaluate.sandbox.docker.sandbox import DockerSandbox  # noqa: E402

SOLUTIONS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "agent_solutions"


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def builds(client, cold: bool) -> None:
    config = load_config()
    if cold:
        bench = dataclasses.replace(config, image="weeyuga-sandbox-bench")
        with tempfile.TemporaryDirectory(prefix="weeyuga-bench-cache-") as cache:
            os.environ["WEEYUGA_CACHE"] = cache
            try:
                result = build_image(client, bench, "offline", force=True)
            finally:
                del os.environ["WEEYUGA_CACHE"]
        client.images.remove(bench.tag)
        print(f"build offline, cold: debootstrap {result.rootfs_s:.1f} s + pack and import {result.import_s:.1f} s "
              f"= {result.total_s:.1f} s ({result.image.size_mb} MB image; {load()})")
    result = build_image(client, config, "offline", force=False)
    print(f"build, image current: {result.total_s * 1000:.0f} ms ({result.method})")
    replica = dataclasses.replace(config, image="weeyuga-sandbox-bench")
    result = build_image(client, replica, "offline")  # the cached root filesystem, imported under another tag
    client.images.remove(replica.tag)
    print(f"build offline, root filesystem cached: pack and import {result.import_s:.1f} s ({load()})")


def container_cycle(client, repeats: int) -> None:
    config = load_config()
    starts, execs, kills = [], [], []
    with tempfile.TemporaryDirectory(prefix="weeyuga-bench-") as folder:
        for _ in range(repeats):
            container = Container(client, config, Path(folder), "agent")
            started = time.monotonic()
            container.ensure_started()
            starts.append(time.monotonic() - started)
            execs += [container.exec(["true"], Path(folder), {}, 10).duration_s for _ in range(5)]
            stopping = time.monotonic()
            container.remove()
            kills.append(time.monotonic() - stopping)
    print(f"container start {statistics.median(starts):.2f} s, teardown {statistics.median(kills) * 1000:.0f} ms "
          f"(the engine deletes it afterwards), one command via exec {statistics.median(execs) * 1000:.0f} ms "
          f"(medians of {repeats}; {load()})")


def attempt(task, factory) -> float:
    """A fresh sandbox, the reference solution written, the 3-run gate, destroy: wall seconds."""
    started = time.monotonic()
    sandbox = factory()
    try:
        sandbox.prepare(task)
        folder = SOLUTIONS / task.id
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            sandbox.write_file(path.relative_to(folder).as_posix(), path.read_bytes())
        gate = run_gate(sandbox, task, 60)
    finally:
        sandbox.destroy()
    assert gate.passed == (task.kind != "unsatisfiable"), (task.id, gate.reason)
    return time.monotonic() - started


def per_task(client, repeats: int) -> None:
    rows = []
    for task in load_tasks():
        docker = statistics.median(attempt(task, lambda: DockerSandbox(client)) for _ in range(repeats))
        process = statistics.median(attempt(task, ProcessSandbox) for _ in range(repeats))
        rows.append((task.language, docker, process))
        print(f"{task.id:20} docker {docker:6.2f} s  process {process:6.2f} s  overhead {docker - process:+6.2f} s")
    for language in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == language]
        print(f"{language:11} median per task: docker {statistics.median(r[1] for r in mine):.2f} s, process "
              f"{statistics.median(r[2] for r in mine):.2f} s, overhead {statistics.median(r[1] - r[2] for r in mine):+.2f} s")
    print(f"all tasks: overhead {statistics.median(r[1] - r[2] for r in rows):+.2f} s per task (median; {load()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="also time a cold offline build (minutes)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    client = connect()
    print(f"{client.version()['Version']}, storage driver {client.info()['Driver']}, {os.cpu_count()} CPUs; {load()}")
    builds(client, args.cold)
    container_cycle(client, args.repeats)
    per_task(client, args.repeats)


if __name__ == "__main__":
    main()
