"""Recorded probe sources: a machine described by files, command outputs and psutil values."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from orchestrator.plan.probe import ProbeSources

GIB = 2**30


def recorded_sources(*, system="Linux", release="6.1.0", machine="x86_64", files=None, commands=None,
                     paths=(), memory_gib=(16, 12), cpu_counts=(4, 8), cpu_info=None, cpu_max_mhz=3600.0,
                     disk_free_gib=100, battery=None, nvml=None, bandwidth=None) -> ProbeSources:
    files = dict(files or {})
    commands = {tuple(k): v for k, v in (commands or {}).items()}
    present = set(paths) | set(files)

    def glob(pattern):
        import fnmatch
        dirs = {f.rsplit("/", 1)[0] for f in files}
        return sorted(d for d in dirs if fnmatch.fnmatch(d, pattern))

    return ProbeSources(
        system=system, release=release, machine=machine,
        read_text=files.get,
        run=lambda argv: commands.get(tuple(argv)),
        exists=lambda p: p in present,
        glob=glob,
        memory=lambda: (int(memory_gib[0] * GIB), int(memory_gib[1] * GIB)),
        cpu_counts=lambda: cpu_counts,
        cpu_info=lambda: cpu_info if cpu_info is not None else {"brand_raw": "AMD Ryzen 7 5800X 8-Core Processor",
                                                                 "flags": ["avx", "avx2", "fma", "sse4_2"]},
        cpu_max_mhz=lambda: cpu_max_mhz,
        disk_free=lambda: int(disk_free_gib * GIB),
        battery=lambda: battery,
        nvml=lambda: nvml,
        bandwidth=lambda: bandwidth,
    )


def battery(percent=50.0, plugged=False):
    return SimpleNamespace(percent=percent, power_plugged=plugged)


__all__ = ["recorded_sources", "battery", "replace"]
