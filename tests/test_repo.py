from orchestrator.core.paths import REPO_ROOT


def test_agent_guides_are_byte_identical():
    assert (REPO_ROOT / "CLAUDE.md").read_bytes() == (REPO_ROOT / "AGENTS.md").read_bytes()


def test_ci_runs_the_readme_test_command():
    readme = (REPO_ROOT / "README.md").read_text()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    command = "python3 -m pip install -e '.[test]' && python3 -m pytest -q"
    assert command in readme and command in ci


def test_top_level_layout():
    for name in ("pyproject.toml", "orchestrator", "profiles", "suites", "runtimes", "submissions", "tests"):
        assert (REPO_ROOT / name).exists(), name


def test_children_go_through_the_process_group_helpers():
    """Every child gets its own process group and is reaped on every exit path (procs.py)."""
    for path in sorted((REPO_ROOT / "orchestrator").rglob("*.py")):
        text = path.read_text()
        forbidden = ["shell" + "=True", "yaml" + ".load(", "os" + ".system("]  # split so greps for them skip this test
        assert not [f for f in forbidden if f in text], path.name
        assert "subprocess.run(" not in text, f"{path.name}: use procs.run_captured"
        if "subprocess.Popen(" in text:
            assert "spawn_options()" in text, f"{path.name}: Popen without procs.spawn_options()"
