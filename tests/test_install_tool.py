"""Tools beside llama-server (runtimes/llama.cpp.yaml `tools`): built as one more target of the cmake
tree that built the runtime, with the runtime's self-test flags in the tool's own spelling."""

import json
from pathlib import Path

import pytest

from orchestrator.core.errors import WeeyugaError
from orchestrator.runtime.install import RuntimeInstall, build_tree, install_tool, tool_variant_args
from orchestrator.runtime.launch import load_runtime
from orchestrator.core.paths import cache_dir

VERSION = "11434.0.0"


def cached_runtime(build_id="native", variant_args=()) -> RuntimeInstall:
    """A runtime in the (private, per-test) cache as build_llama_cpp leaves it, with its cmake tree."""
    name = "llama.cpp-11434.0.0-cpu" + ("" if build_id == "native" else f"+{build_id}")
    binary = cache_dir() / "runtimes" / name / "bin" / "llama-server"
    binary.parent.mkdir(parents=True)
    binary.write_text("server")
    build_dir, _ = build_tree(VERSION, "cpu", build_id)
    build_dir.mkdir(parents=True)
    source = cache_dir() / "build" / f"src-{VERSION}" / "llama.cpp"
    (build_dir / "CMakeCache.txt").write_text(f"CMAKE_CACHEFILE_DIR:INTERNAL={build_dir}\n"
                                              f"CMAKE_HOME_DIRECTORY:INTERNAL={source}\n")
    return RuntimeInstall("llama.cpp", str(binary), "b11434", "cpu", "cache",
                          {"package_version": VERSION, "backend": "cpu", "build_id": build_id}, build_id, variant_args)


class FakeCmake:
    """Stands in for `cmake --build`: records the argv and leaves the target in the tree's bin/."""

    def __init__(self):
        self.argvs = []

    def __call__(self, argv, log, progress, label):
        self.argvs.append(argv)
        built = Path(argv[argv.index("--build") + 1]) / "bin" / argv[argv.index("--target") + 1]
        built.parent.mkdir(exist_ok=True)
        built.write_text(f"built {built.name}")


@pytest.mark.parametrize("build_id,tree", [("native", "build-cpu"), ("no-amx", "build-cpu-no-amx")])
def test_a_tool_is_one_more_target_of_the_runtimes_own_tree_and_lands_beside_it(build_id, tree):
    runtime, cmake = cached_runtime(build_id), FakeCmake()
    program = install_tool(runtime, "llama-bench", build_step=cmake, jobs=2)
    assert program == runtime.binary.replace("llama-server", "llama-bench")
    assert open(program).read() == "built llama-bench"
    (argv,) = cmake.argvs
    assert argv[:3] == ["cmake", "--build", str(cache_dir() / "build" / tree)]
    assert argv[argv.index("--target") + 1] == "llama-bench" and argv[-1] == "-j2"
    assert install_tool(runtime, "llama-bench", build_step=cmake) == program and len(cmake.argvs) == 1  # found, not rebuilt


def test_no_tree_or_a_tree_of_another_version_is_one_clear_error():
    runtime = cached_runtime()
    tree, _ = build_tree(VERSION, "cpu")
    (tree / "CMakeCache.txt").write_text("CMAKE_HOME_DIRECTORY:INTERNAL=/c/build/src-99999.0.0/llama.cpp\n")
    with pytest.raises(WeeyugaError, match="no cmake tree to build llama-bench from"):
        install_tool(runtime, "llama-bench", build_step=FakeCmake())
    configured = RuntimeInstall("llama.cpp", runtime.binary, None, None, "configured")
    with pytest.raises(WeeyugaError, match="did not build that llama-server"):
        install_tool(configured, "llama-bench", build_step=FakeCmake())
    with pytest.raises(WeeyugaError, match="unknown llama.cpp tool 'llama-cli'"):
        install_tool(runtime, "llama-cli", build_step=FakeCmake())


def test_the_self_tests_flags_in_the_tools_spelling():
    assert tool_variant_args(RuntimeInstall("llama.cpp", "/x", None, None, "cache", variant_args=("--no-repack",)),
                             "llama-bench") == ["--repack", "0"]
    assert tool_variant_args(RuntimeInstall("llama.cpp", "/x", None, None, "cache"), "llama-bench") == []
    with pytest.raises(WeeyugaError, match="no spelling of --mystery"):
        tool_variant_args(RuntimeInstall("llama.cpp", "/x", None, None, "cache", variant_args=("--mystery",)), "llama-bench")


def test_every_self_test_variant_flag_has_a_spelling_in_every_tool():
    definition = load_runtime("llama.cpp")
    flags = {arg for variant in definition.self_test["variants"] for arg in variant.get("args", [])}
    for name, tool in definition.tools.items():
        assert flags <= set(tool["variant_args"]), name


def test_a_cache_copied_from_another_path_is_not_built_in_place():
    """CMakeCache.txt names the folder it was configured in: a copied cache's tree must be configured afresh."""
    from orchestrator.runtime.install import configured_here

    runtime = cached_runtime()
    tree, _ = build_tree(VERSION, "cpu")
    source = cache_dir() / "build" / f"src-{VERSION}" / "llama.cpp"
    assert configured_here(tree, source)
    (tree / "CMakeCache.txt").write_text("CMAKE_CACHEFILE_DIR:INTERNAL=/old/home/.cache/weeyuga/build/build-cpu\n"
                                         "CMAKE_HOME_DIRECTORY:INTERNAL=/old/home/.cache/weeyuga/build/src-11434.0.0/llama.cpp\n")
    assert not configured_here(tree, source)
    with pytest.raises(WeeyugaError, match="no cmake tree to build llama-bench from"):
        install_tool(runtime, "llama-bench", build_step=FakeCmake())


@pytest.mark.parametrize("content", ["{not json", "[" * 3000 + "]" * 3000, '{"backend": 5}', "[]",
                                     '{"verified": {}}'])
def test_a_damaged_build_info_makes_the_build_unused_never_an_internal_error(content):
    from orchestrator.runtime.install import cached_builds, locate_llama_server, read_build_info

    runtime = cached_runtime()
    build = Path(runtime.binary).parent.parent
    (build / "build-info.json").write_text(json.dumps(runtime.build_info))
    assert cached_builds("cpu") == [build]
    (build / "build-info.json").write_text(content)
    assert read_build_info(build) == {} and cached_builds("cpu") == []
    found = locate_llama_server("cpu")
    assert found is None or found.source == "path"
