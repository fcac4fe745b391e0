"""`weeyuga sandbox build`: the image `weeyuga-sandbox:<version>` with the tasks' toolchains.

Two ways, recorded on the image (LABEL_BUILT_FROM) and so in every run's manifest:
- registry: where the engine can pull the official base image, a Dockerfile on it installs the
  packages with apt-get;
- offline: where no registry answers, `debootstrap` makes a Debian root filesystem from Debian's
  archive with the packages (cached under ~/.cache/weeyuga/sandbox/, reused by later builds),
  which is pruned, packed and imported as the image.
An image whose LABEL_CONFIG matches profiles/sandbox.yaml's image fields is reused as it is.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from orchestrator.core import procs
from orchestrator.core.errors import WeeyugaError
from orchestrator.core.paths import cache_dir
from orchestrator.evaluate.sandbox.docker.config import SandboxConfig
from orchestrator.evaluate.sandbox.docker.engine import CONTAINER_PATH, LABEL_BUILT_FROM, LABEL_CONFIG
from orchestrator.core.atomic import write_text_atomic

METHODS = ("auto", "registry", "offline")
DEBOOTSTRAP_TIMEOUT_S = 3600
PACK_TIMEOUT_S = 1800


@dataclass(frozen=True)
class ImageStatus:
    tag: str
    present: bool
    current: bool  # built from today's profiles/sandbox.yaml image fields
    digest: str | None  # the image id (sha256:...), content-addressed
    built_from: str | None
    size_mb: float | None


@dataclass(frozen=True)
class BuildResult:
    image: ImageStatus
    method: str  # registry | offline | cached
    rootfs_cached: bool | None  # offline only: the debootstrap root filesystem was reused
    rootfs_s: float  # debootstrap (0 when cached)
    import_s: float  # packing and importing, or the Dockerfile build
    total_s: float


def image_status(client: Any, config: SandboxConfig) -> ImageStatus:
    from docker.errors import ImageNotFound

    try:
        image = client.images.get(config.tag)
    except ImageNotFound:
        return ImageStatus(config.tag, False, False, None, None, None)
    labels = image.labels or {}
    return ImageStatus(config.tag, True, labels.get(LABEL_CONFIG) == config.image_sha256, image.id,
                       labels.get(LABEL_BUILT_FROM), round(image.attrs.get("Size", 0) / 2**20, 1))


def sandbox_cache() -> Path:
    return cache_dir() / "sandbox"


def rootfs_dir(config: SandboxConfig) -> Path:
    return sandbox_cache() / f"rootfs-{config.version}-{config.offline['suite']}"


def rootfs_key(config: SandboxConfig) -> str:
    """What the debootstrap output depends on; an exclude list changed later only re-imports."""
    offline = config.offline
    return " ".join([offline["suite"], offline["mirror"], offline["variant"], ",".join(config.packages)])


def image_labels(config: SandboxConfig, built_from: str) -> dict[str, str]:
    return {LABEL_BUILT_FROM: built_from, LABEL_CONFIG: config.image_sha256}


def registry_reachable(client: Any, config: SandboxConfig) -> bool:
    """Whether the engine can pull the official base image (it pulls it when it can)."""
    from docker.errors import DockerException

    try:
        client.images.pull(config.registry_base)
    except DockerException:
        return False
    return True


def build_image(client: Any, config: SandboxConfig, method: str = "auto", force: bool = False,
                progress: Callable[[str], None] = lambda line: None,
                registry_check: Callable[[Any, SandboxConfig], bool] = registry_reachable) -> BuildResult:
    """The image for `config`: reused when current (unless `force`), else built the `method` way
    (`auto`: registry when one answers, offline otherwise)."""
    started = time.monotonic()
    status = image_status(client, config)
    if status.present and status.current and not force:
        return BuildResult(status, "cached", None, 0.0, 0.0, time.monotonic() - started)
    replaced = status.digest
    result = build_by(client, config, method, force, progress, registry_check, started)
    if replaced and replaced != result.image.digest:
        remove_image(client, replaced)
    return result


def build_by(client: Any, config: SandboxConfig, method: str, force: bool, progress: Callable[[str], None],
             registry_check: Callable[[Any, SandboxConfig], bool], started: float) -> BuildResult:
    if method == "auto":
        method = "registry" if registry_check(client, config) else "offline"
        progress(f"no image registry answered: building offline from {config.offline['mirror']}"
                 if method == "offline" else f"building from {config.registry_base}")
    if method == "registry":
        build_from_dockerfile(client, config)
        return BuildResult(image_status(client, config), method, None, 0.0, time.monotonic() - started,
                           time.monotonic() - started)
    rootfs, cached = make_rootfs(config, force, progress)
    rootfs_s = time.monotonic() - started
    import_rootfs(client, config, rootfs, progress)
    total = time.monotonic() - started
    return BuildResult(image_status(client, config), method, cached, rootfs_s, total - rootfs_s, total)


def remove_image(client: Any, image_id: str) -> None:
    """The image a rebuild replaced (on vfs every image is a full copy); kept if something still uses it."""
    from docker.errors import APIError

    try:
        client.images.remove(image_id)
    except APIError:
        pass


def dockerfile(config: SandboxConfig) -> str:
    built_from = f"dockerfile FROM {config.registry_base}"
    labels = " ".join(f'{key}="{value}"' for key, value in image_labels(config, built_from).items())
    return (f"FROM {config.registry_base}\n"
            "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
            f"{' '.join(config.packages)} && rm -rf /var/lib/apt/lists/*\n"
            f"LABEL {labels}\n")


def build_from_dockerfile(client: Any, config: SandboxConfig) -> None:
    from docker.errors import DockerException

    try:
        client.images.build(fileobj=io.BytesIO(dockerfile(config).encode()), tag=config.tag, rm=True, forcerm=True)
    except DockerException as exc:
        raise WeeyugaError(f"sandbox build: the Dockerfile build on {config.registry_base} failed: "
                           f"{str(exc).splitlines()[0][:300]}") from exc


def make_rootfs(config: SandboxConfig, force: bool, progress: Callable[[str], None]) -> tuple[Path, bool]:
    """The debootstrap root filesystem, reused when a finished one for these image fields exists."""
    target = rootfs_dir(config)
    marker = target.with_name(target.name + ".done")
    if not force and target.is_dir() and marker.is_file() and marker.read_text().strip() == rootfs_key(config):
        progress(f"reusing the root filesystem in {target}")
        return target, True
    debootstrap = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if debootstrap is None:
        raise WeeyugaError("sandbox build: debootstrap is not installed (apt-get install debootstrap), "
                           "and no image registry is reachable")
    if os.geteuid() != 0:
        raise WeeyugaError("sandbox build: debootstrap needs root without a registry; run `sudo weeyuga sandbox build`")
    offline = config.offline
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    marker.unlink(missing_ok=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    progress(f"debootstrap {offline['suite']} from {offline['mirror']} with {', '.join(config.packages)} (minutes)")
    argv = [debootstrap, f"--variant={offline['variant']}", f"--include={','.join(config.packages)}",
            offline["suite"], str(partial), offline["mirror"]]
    finished = run_step(argv, DEBOOTSTRAP_TIMEOUT_S, "debootstrap")
    if finished.returncode != 0:
        tail = (finished.stdout + finished.stderr).strip().splitlines()[-1:] or ["no output"]
        raise WeeyugaError(f"sandbox build: debootstrap exited {finished.returncode}: {tail[0][:300]}")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    write_text_atomic(marker, rootfs_key(config) + "\n")
    return target, False


def import_rootfs(client: Any, config: SandboxConfig, rootfs: Path, progress: Callable[[str], None]) -> None:
    """Pack the root filesystem (not /dev, /proc, /sys: the engine provides them; nor what
    offline.exclude leaves out) and import it."""
    offline = config.offline
    built_from = f"debootstrap --variant={offline['variant']} {offline['suite']} {offline['mirror']}"
    tarball = sandbox_cache() / f"rootfs-{config.version}.tar"
    progress(f"importing {rootfs} as {config.tag}")
    try:
        excluded = [f"--exclude=./{pattern}" for pattern in ("dev/*", "proc/*", "sys/*", *offline["exclude"])]
        packed = run_step(["tar", "--numeric-owner", *excluded, "-C", str(rootfs), "-cf", str(tarball), "."],
                          PACK_TIMEOUT_S, "tar")
        if packed.returncode != 0:
            raise WeeyugaError(f"sandbox build: packing {rootfs} failed: {packed.stderr.strip()[:300]}")
        changes = [f'LABEL {key}="{value}"' for key, value in image_labels(config, built_from).items()]
        changes += [f"ENV PATH={CONTAINER_PATH}", 'CMD ["sleep", "infinity"]']
        client.api.import_image_from_file(str(tarball), repository=config.image, tag=str(config.version), changes=changes)
    finally:
        tarball.unlink(missing_ok=True)  # the root filesystem stays cached; its tarball is 0.5 GB of nothing new


def run_step(argv: list[str], timeout_s: float, what: str) -> subprocess.CompletedProcess:
    try:
        return procs.run_captured(argv, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise WeeyugaError(f"sandbox build: {what} ran past {timeout_s} s") from exc
    except OSError as exc:
        raise WeeyugaError(f"sandbox build: cannot run {what}: {exc}") from exc
