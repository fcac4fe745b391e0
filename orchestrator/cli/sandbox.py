"""`sandbox build|status`: the Docker image model-written code runs in, and `--sandbox` for the
commands that run such code (agent run, quality run, auto)."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.cli.common import command


def add_sandbox_option(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--sandbox", choices=["process", "docker", "auto", "none"], default=default,
                   help="where model-written code runs: process (contained by bwrap, or sandbox-exec on macOS), "
                        "docker (a container; needs `weeyuga sandbox build`), auto (docker when ready, else process); "
                        "where neither contains, agent tasks and codeexec do not run unless `none` (uncontained, "
                        f"recorded) is asked for (default {default})")


def sandbox_record(args: argparse.Namespace) -> dict[str, Any]:
    """The run's recorded choice; a resume keeps the one its run recorded."""
    from orchestrator.evaluate.sandbox.docker.choice import choose_sandbox

    if getattr(args, "resume", None):
        return {}
    choice = choose_sandbox(args.sandbox)
    if choice.runs_code:
        print(f"sandbox: {choice.kind}, {choice.strength} ({choice.reason})")
    else:
        print(f"sandbox: none: {choice.reason}")
    return choice.record()


@command("sandbox")
def cmd_sandbox(args: argparse.Namespace) -> int:
    return {"build": sandbox_build, "status": sandbox_status}[args.sandbox_command](args)


def sandbox_build(args: argparse.Namespace) -> int:
    from orchestrator.evaluate.sandbox.docker.config import load_config
    from orchestrator.evaluate.sandbox.docker.engine import connect
    from orchestrator.evaluate.sandbox.docker.image import build_image

    result = build_image(connect(), load_config(), args.method, args.force, progress=print)
    image = result.image
    print(f"{image.tag}: {image.digest} ({image.size_mb} MB), {image.built_from}")
    if result.method == "cached":
        print("already built from today's profiles/sandbox.yaml (--force rebuilds)")
    else:
        rootfs = "" if result.rootfs_cached is None else (
            f"root filesystem {'reused' if result.rootfs_cached else f'made in {result.rootfs_s:.0f} s'}, ")
        print(f"built {result.method}: {rootfs}image in {result.import_s:.0f} s, {result.total_s:.0f} s in all")
    return 0


def sandbox_status(args: argparse.Namespace) -> int:
    from orchestrator.evaluate.sandbox.contain import probe_containment
    from orchestrator.evaluate.sandbox.docker.choice import choose_sandbox, docker_readiness
    from orchestrator.evaluate.sandbox.docker.engine import EngineUnavailable, connect, reap_leftovers

    readiness = docker_readiness()
    print(f"engine: {readiness.engine or 'not reachable'}")
    print(f"image:  {readiness.reason}")
    if readiness.engine:
        try:
            reaped = reap_leftovers(connect())
        except EngineUnavailable:
            reaped = []
        if reaped:
            print(f"removed {len(reaped)} sandbox container(s) left by a weeyuga that died: {', '.join(reaped)}")
    chosen = choose_sandbox("auto", lambda: readiness)
    print(f"process sandbox: {chosen.containment if chosen.kind != 'docker' else probe_containment().detail}")
    print(f"--sandbox auto uses: {chosen.kind}" + ("" if chosen.runs_code else f" ({chosen.reason})"))
    return 0 if readiness.ready else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("sandbox", help="where model-written code runs: build the Docker image, check what contains it")
    sandbox = group.add_subparsers(dest="sandbox_command", required=True, metavar="SUBCOMMAND")
    p = sandbox.add_parser("build", help="make the image weeyuga-sandbox:<version> (profiles/sandbox.yaml)")
    p.add_argument("--method", choices=["auto", "registry", "offline"], default="auto",
                   help="registry: a Dockerfile on the official base image; offline: debootstrap from Debian's "
                        "archive, imported; auto: registry when one answers (default auto)")
    p.add_argument("--force", action="store_true", help="rebuild even when a current image is there")
    sandbox.add_parser("status", help="is Docker reachable, which image is present, what contains the process sandbox, "
                                      "what --sandbox auto uses")
