"""Report, schemas, privacy scan, submit, catalogue and compare, on runs made against the FAKE server."""

import json
import shutil
import subprocess

import jsonschema
import pytest

from orchestrator.core import datafiles
from orchestrator.publish.catalogue import build_catalogue
from orchestrator.cli import main
from orchestrator.publish.compare import compare
from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.core.ledger import read_records
from orchestrator.core.paths import REPO_ROOT
from orchestrator.flows.pipeline import byo_targets, run_recorded
from orchestrator.publish.privacy import default_rules, redact, scan
from orchestrator.publish.manifest import RunContext
from orchestrator.publish.report import percentile, report
from orchestrator.measure.run import RunOptions
from orchestrator.publish.submit import submit
from tests.fakes import example
from tests.fakes.openai_server import start_in_thread

EXAMPLE = REPO_ROOT / "submissions" / "EXAMPLE"


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    """A fresh copy of the generated example: a complete run folder."""
    return example.generate(tmp_path_factory.mktemp("gen") / "EXAMPLE")


@pytest.fixture
def run_dir(example_run, tmp_path):
    target = tmp_path / "subs" / "alice" / "mac-m1-8gb" / example_run.name
    shutil.copytree(example_run, target)
    return target


def validate(doc, name):
    jsonschema.Draft202012Validator(datafiles.schema(name)).validate(doc)


def test_committed_example_is_what_the_tool_generates(example_run):
    committed = next(EXAMPLE.glob("*/run-*"))
    names = sorted(p.name for p in committed.iterdir())
    assert names == sorted(p.name for p in example_run.iterdir())
    for name in names:
        if not name.endswith(".png"):  # PNG bytes depend on the matplotlib build
            assert (committed / name).read_text() == (example_run / name).read_text(), f"{name} is stale: python3 -m tests.fakes.example"
    assert (committed / "run.md").read_text().startswith("> **SYNTHETIC EXAMPLE.**")


def test_artifacts_validate_against_their_schemas(example_run):
    for record in read_records(example_run / "run.jsonl"):
        validate(record, "run-record")
    validate(json.loads((example_run / "manifest.json").read_text()), "manifest")
    validate(json.loads((example_run / "metadata.json").read_text()), "metadata")
    validate(json.loads((example_run / "hardware.json").read_text()), "hardware")


def test_report_is_deterministic_and_follows_metadata_1_0(run_dir):
    first = (run_dir / "metadata.json").read_bytes()
    report(run_dir)
    assert (run_dir / "metadata.json").read_bytes() == first
    metadata = json.loads(first)
    row = next(r for r in metadata["cells"] if r["phase"] == "hello")
    assert row["n_calls"] == 9 and row["n_errors"] == 0 and row["tokens_per_sec_mean"] == 37.98  # 25 ms a clock read (the finish chunk's read included)
    batch = metadata["batches"][0]
    assert batch["cold_kind"] == "process_warm" and batch["warm_success_rate"] == 1.0
    assert metadata["lanes"][0]["lanes"] == 3 and metadata["client_server_agreement"]["median_relative_gap"] == 0.091
    md = (run_dir / "run.md").read_text()
    for section in ("## Speed per cell and phase", "## Methodology", "## Caveats", "## Reproducibility", "## Plots"):
        assert section in md
    assert "weeyuga auto --phases hello,5q,parallel_same" in md


def test_a_model_file_without_a_chat_template_served_in_the_fallback_is_a_caveat(run_dir):
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["models"][0]["chat_template_in_file"] = False
    manifest_path.write_text(json.dumps(manifest))
    caveat = "the model file carries no chat template and none was named"
    assert caveat in report(run_dir, plots=False).markdown
    manifest["knobs"]["chat_template"] = {"value": "gemma", "source": "rule", "rule_id": "models", "why": "x"}
    manifest_path.write_text(json.dumps(manifest))
    assert caveat not in report(run_dir, plots=False).markdown


def test_process_warm_first_calls_stay_out_of_the_cold_columns(run_dir):
    """The example's runtime was never restarted: its first call per prompt is warm, reported on its own."""
    metadata = json.loads((run_dir / "metadata.json").read_text())
    easy = next(b for b in metadata["batches"] if b["prompt_id"] == "P-EASY")
    assert (easy["cold_first_delta_ms"], easy["cold_total_duration_ms"]) == (None, None)
    assert (easy["process_warm_first_delta_ms"], easy["process_warm_total_duration_ms"]) == (50.0, 250.0)
    md = (run_dir / "run.md").read_text()
    assert "| mac-m1-8gb:llamacpp:smollm2-135m-instruct | P-EASY | process_warm | – | – |" in md
    assert "| mac-m1-8gb:llamacpp:smollm2-135m-instruct | P-EASY | 50.0 ms | 250.0 ms |" in md
    # Ledgers written before process_warm was its own load_state said "cold"; they are reported the same way.
    ledger = run_dir / "run.jsonl"
    ledger.write_text(ledger.read_text().replace('"load_state": "process_warm"', '"load_state": "cold"'))
    assert report(run_dir, plots=False).metadata["batches"] == metadata["batches"]


def test_a_run_where_every_call_failed_says_so_in_run_md_and_the_catalogue(tmp_path):
    server, _, url = start_in_thread()
    run_id = "66666666-0000-0000-0000-000000000000"
    run_dir = tmp_path / "subs" / "alice" / "box" / f"run-{run_id}"
    try:
        targets = byo_targets(url, ["fake-500"], "llamacpp", "box:llamacpp", "box")
        options = RunOptions(phases=["5q"], submitter_handle="alice", device_tag="box")
        recorded = run_recorded(targets, options, run_dir, run_id, RunContext())
    finally:
        server.shutdown()
    assert recorded.status == "failed"
    report(run_dir, plots=False)
    md = (run_dir / "run.md").read_text()
    title, blank, banner = md.splitlines()[:3]
    assert banner.startswith("> **This run failed:** all 5 calls failed (first error: HTTP 500")
    assert json.loads((run_dir / "metadata.json").read_text())["status"] == "failed"
    catalogue = build_catalogue(tmp_path / "subs")
    validate(catalogue, "catalogue")
    (entry,) = catalogue["runs"]
    assert entry["completeness"] == "failed" and entry["status"] == "failed"
    assert entry["partial_reason"].startswith("status failed: all 5 calls failed")
    assert catalogue["counts"]["failed"] == 1 and catalogue["counts"]["complete"] == 0


def test_report_counts_errors_and_caveats_them(run_dir):
    ledger = run_dir / "run.jsonl"
    lines = ledger.read_text().splitlines()
    for i, line in enumerate(lines):
        record = json.loads(line)
        if record.get("phase") == "5q" and record.get("prompt_id") == "5Q-02":
            record.update(error="HTTP 500: boom", tokens_per_sec=None)
            lines[i] = json.dumps(record)
    ledger.write_text("\n".join(lines) + "\n")
    metadata = report(run_dir, plots=False).metadata
    row = next(r for r in metadata["cells"] if r["phase"] == "5q")
    assert (row["n_calls"], row["n_errors"], row["success_rate"]) == (5, 1, 0.8)
    assert "1 of 5 calls failed" in (run_dir / "run.md").read_text()


def test_percentile_interpolates():
    assert percentile([1, 2, 3, 4], 0.5) == 2.5 and percentile([10], 0.95) == 10 and percentile([], 0.5) is None


SECRETS = {
    "bearer_token": "Authorization: Bearer abcdefghijklmnop123",
    "api_key": "key sk-abcdefghijklmnopqrstuvwx",
    "huggingface_token": "hf_abcdefghijklmnopqrstuvwxyz",
    "github_token": "ghp_abcdefghijklmnopqrstuvwxyz0123",
    "aws_access_key": "AKIAABCDEFGHIJKLMNOP",
    "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----",
    "password": "password=hunter22",
    "home_path": "/home/alice/models/x.gguf",
    "private_ip": "http://192.168.1.20:8080",
    "email": "alice@wonderland-mail.org",
    "host_name": "running on zebrabox now",
}


def test_privacy_scan_finds_every_kind_and_redaction_keeps_json_valid(run_dir):
    ledger = run_dir / "run.jsonl"
    lines = ledger.read_text().splitlines()
    record = json.loads(lines[1])
    record["response_preview"] = " | ".join(SECRETS.values()) + " | C:\\Users\\bob\\x"
    lines[1] = json.dumps(record)
    ledger.write_text("\n".join(lines) + "\n")
    patterns = default_rules("zebrabox", "root")
    findings = scan(run_dir, patterns)
    assert {f.kind for f in findings} == set(SECRETS)
    assert all(str(f).startswith("run.jsonl:2: ") for f in findings)
    assert sum(f.kind == "home_path" for f in findings) == 2
    assert redact(run_dir, patterns) == []
    for line in ledger.read_text().splitlines():
        json.loads(line)
    assert "[REDACTED:api_key]" in ledger.read_text()


def test_privacy_cli_exit_codes(run_dir, capsys):
    assert main(["privacy-scan", str(run_dir)]) == 0
    (run_dir / "notes.md").write_text("mail me: bob@wonderland-mail.org\n")
    assert main(["privacy-scan", str(run_dir)]) == 1
    assert "notes.md:1: email" in capsys.readouterr().out
    assert main(["privacy-scan", str(run_dir), "--redact"]) == 0


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def clone(tmp_path):
    repo = tmp_path / "clone"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "ci@invalid")
    git(repo, "config", "user.name", "ci")
    (repo / "README.md").write_text("benchmarks\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-qm", "init")
    return repo


def test_submit_creates_branch_with_only_the_run_folder(run_dir, clone):
    result = submit(run_dir, clone)
    assert result.branch == "submission/example-mac-m1-8gb-2026-01-01" and not result.pushed
    changed = git(clone, "show", "--name-only", "--format=", "HEAD").split()
    assert changed and all(p.startswith(f"submissions/example/mac-m1-8gb/{run_dir.name}/") for p in changed)
    message = git(clone, "log", "-1", "--format=%B")
    assert "tok/s" in message and "Privacy" in result.pr_description
    assert result.push_command[-2:] == ["origin", result.branch]
    with pytest.raises(BadInput, match="already exists"):
        submit(run_dir, clone)


def test_submit_refuses_privacy_findings_and_missing_files(run_dir, clone):
    (run_dir / "run.md").write_text("see /home/alice/secret\n")
    with pytest.raises(WeeyugaError, match="privacy scan found"):
        submit(run_dir, clone)
    (run_dir / "metadata.json").unlink()
    with pytest.raises(BadInput, match="missing metadata.json"):
        submit(run_dir, clone)


def test_submit_rejects_a_handle_that_escapes(run_dir, clone):
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["submitter_handle"] = "../../etc"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BadInput, match="submitter.handle"):
        submit(run_dir, clone)


def test_submit_never_copies_through_a_linked_handle_folder(run_dir, clone, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (clone / "submissions").mkdir()
    (clone / "submissions" / "example").symlink_to(outside)
    with pytest.raises(BadInput, match="symbolic link in the clone"):
        submit(run_dir, clone)
    assert not any(outside.iterdir())


def test_a_git_failure_after_the_branch_leaves_the_clone_as_it_was_and_a_retry_works(run_dir, clone):
    hook = clone / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho refused by a hook >&2\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(WeeyugaError, match="git commit"):
        submit(run_dir, clone)
    assert git(clone, "symbolic-ref", "--short", "HEAD").strip() == "main"
    assert git(clone, "branch", "--list", "submission/*") == "" and git(clone, "diff", "--cached", "--name-only") == ""
    assert not (clone / "submissions").exists() or not any((clone / "submissions").rglob("*.json"))
    hook.unlink()
    assert submit(run_dir, clone).branch == "submission/example-mac-m1-8gb-2026-01-01"


def clone_run(src, root, handle, run_id, scale=1.0):
    target = root / handle / "mac-m1-8gb" / f"run-{run_id}"
    shutil.copytree(src, target)
    for name in ("manifest.json", "metadata.json"):
        doc = json.loads((target / name).read_text())
        doc["run_id"] = run_id
        doc["submitter_handle"] = handle
        if name == "metadata.json":
            for row in doc["cells"]:
                for key in ("warm_first_delta_ms_p50", "warm_total_duration_ms_p50"):
                    row[key] = round(row[key] * scale, 1)
                row["warm_tokens_per_sec_mean"] = round(row["warm_tokens_per_sec_mean"] / scale, 2)
        (target / name).write_text(json.dumps(doc))
    return target


def test_catalogue_indexes_runs_skips_example_and_lists_invalid(example_run, tmp_path):
    root = tmp_path / "subs"
    shutil.copytree(example_run.parent.parent, root / "EXAMPLE")
    for i in range(3):
        clone_run(example_run, root, f"user{i}", f"1111111{i}-0000-0000-0000-000000000000")
    broken = clone_run(example_run, root, "broken", "22222222-0000-0000-0000-000000000000")
    (broken / "metadata.json").write_text('{"schema_version": "metadata-1.0"}')
    first = build_catalogue(root)
    assert first == build_catalogue(root)
    validate(first, "catalogue")
    assert first["counts"] == {"runs": 3, "complete": 0, "partial": 3, "invalid": 1, "failed": 0, "outliers": 0}
    assert "metadata.json" in first["invalid"][0]["reason"]
    entry = first["runs"][0]
    assert entry["partial_reason"].startswith("phases not run") and entry["knobs"]["model"] == "smollm2-135m-instruct"
    assert main(["catalogue", "--submissions-dir", str(root), "--out", str(tmp_path / "c.json")]) == 0


def test_compare_flags_regressions_wins_and_noise_band(example_run, tmp_path, capsys):
    root = tmp_path / "subs"
    baselines = [clone_run(example_run, root, "base", f"3333333{i}-0000-0000-0000-000000000000", scale)
                 for i, scale in enumerate((1.0, 1.05, 0.95))]
    slower = clone_run(example_run, root, "cand", "44444444-0000-0000-0000-000000000000", 1.5)
    faster = clone_run(example_run, root, "cand", "55555555-0000-0000-0000-000000000000", 0.6)
    load = lambda p: json.loads((p / "metadata.json").read_text())  # noqa: E731
    result = compare([load(b) for b in baselines], load(slower))
    assert result.regressions == len(result.cells) and result.wins == 0
    assert result.cells[0].metrics[0].noise_band == pytest.approx(0.1, abs=0.01)
    assert compare([load(b) for b in baselines], load(faster)).wins == len(result.cells)
    args = ["compare", *map(str, baselines), str(slower)]
    assert main(args) == 0 and "regression" in capsys.readouterr().out
    assert main(args + ["--exit-on-regression"]) == 1
    capsys.readouterr()
    assert main(args + ["--json"]) == 0 and json.loads(capsys.readouterr().out)["regressions"] > 0
    assert main(["compare", str(slower)]) == 2
