"""`weeyuga review` (issue #26 §1): genuine run folders, made by weeyuga against the FAKE server with
a real clock, are accepted; forged copies of them are rejected, each for its own reason. A forger
here ranges from careless (edits a file) to one who runs weeyuga's own code (re-chains the ledger
and regenerates the report), so each deeper check is shown catching what the shallower ones miss."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.core.ledger import read_records, seal
from orchestrator.core.paths import REPO_ROOT
from orchestrator.flows.auto import managed_context
from orchestrator.flows.pipeline import run_recorded
from orchestrator.measure.run import Cell, RunOptions, Target
from orchestrator.plan.decide import decide
from orchestrator.plan.probe import Hardware
from orchestrator.plan.profiles import load_profiles
from orchestrator.publish.manifest import hardware_summary, write_json_atomic
from orchestrator.publish.report import report
from orchestrator.publish.review import review
from tests.fakes.agent_model import solver_turns
from tests.fakes.openai_server import FakeServerState, start_in_thread

RUN_ID = "12345678-1234-4123-8123-123456789abc"
DEVICE = "linux-vps-cpu-4c-8gb"
HOST_GBPS = 20.0  # what a small VPS measures
MODEL = "smollm2-135m-instruct"
# SmolLM2-135M Q4_1's tensor table in round figures: 30 layers, the output tied to the embedding
FACTS = {"architecture": "llama", "n_layer": 30, "layer_bytes": [2_600_000] * 30, "output_bytes": 17_700_000,
         "other_bytes": 100_000, "embedding_row_bytes": 360, "kv_elements_per_token": [384] * 30,
         "experts_active_share": 1.0}


def speed_and_quality_run(root: Path) -> Path:
    """A managed llama.cpp run on a CPU-only machine: hello, 5q, parallel_same and the toolcall pack."""
    run_dir = root / "tester" / DEVICE / f"run-{RUN_ID}"
    managed_run(run_dir)
    report(run_dir)
    return run_dir


def managed_run(run_dir: Path, resume: bool = False) -> None:
    profiles = load_profiles()
    document = json.loads((REPO_ROOT / "tests" / "fixtures" / "hardware" / f"{DEVICE}.json").read_text())
    hw = Hardware.from_dict({**document, "host_memory_bandwidth_gbps_measured": HOST_GBPS})
    plan = decide(hw, profiles, {"model": MODEL})
    quant = profiles.model(MODEL).quant(plan.quant)
    server, _, url = start_in_thread(FakeServerState(chunk_delay_s=0.01))
    try:
        context = managed_context(plan, hw, profiles, "llama.cpp", "b1 (fake)", "cpu", "test", {},
                                  ["llama-server", "-m", f"{MODEL}.gguf", "-ngl", str(plan.ngl)], {},
                                  {"model": MODEL, "quant": plan.quant, "sha256": quant.sha256,
                                   "size_bytes": quant.file_size_bytes, "source": "test", "roofline": FACTS})
        options = RunOptions(phases=["hello", "5q", "parallel_same", "quality"], runs=1, submitter_handle="tester",
                             device_tag=DEVICE, command=["weeyuga", "auto", "--phases", "hello,5q,parallel_same,quality"],
                             num_ctx=plan.num_ctx, quality={"mode": "quick", "packs": ["toolcall"], "repeat": 1})
        run_recorded([Target(Cell(f"{DEVICE}:llamacpp:{MODEL}", "llamacpp", MODEL, url))], options, run_dir, RUN_ID,
                     context, resume=resume)
    finally:
        server.shutdown()


def agent_run(root: Path) -> Path:
    """A bring-your-own agent run: one task stagnates, one completes."""
    server, state, url = start_in_thread()
    state.tool_turns = [[], []] + solver_turns("py-slugify")
    try:
        assert main(["agent", "run", "--target-url", url, "--engine", "openai", "--models", "fake-tools",
                     "--hardware", str(REPO_ROOT / "tests" / "fixtures" / "hardware" / "linux-rtx3060-12gb.json"),
                     "--submissions-dir", str(root), "--submitter-handle", "tester", "--device-tag", "test-box",
                     "--force-load", "--tasks", "py-slugify,py-impossible", "--passes", "2", "--steps-per-pass", "6",
                     "--max-tokens", "64", "--command-timeout", "60"]) == 0
    finally:
        server.shutdown()
    (run_dir,) = [p.parent for p in root.rglob("run.jsonl")]
    report(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    return speed_and_quality_run(tmp_path_factory.mktemp("genuine"))


@pytest.fixture(scope="module")
def genuine_agent(tmp_path_factory):
    return agent_run(tmp_path_factory.mktemp("genuine-agent"))


def copy_of(run_dir: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "subs" / run_dir.parent.parent.name / run_dir.parent.name / run_dir.name
    shutil.copytree(run_dir, dest)
    return dest


def ledger(run_dir: Path) -> list[dict]:
    return list(read_records(run_dir / "run.jsonl"))


def rewrite(run_dir: Path, records: list[dict], reseal: bool = True, regenerate: bool = True) -> None:
    """What a forger writes: by hand (reseal=False: the lines as they are), or with weeyuga's own code
    (the chain sealed again and the report regenerated, so only deeper checks can tell)."""
    if reseal:
        (run_dir / "run.jsonl").write_bytes(seal(records))
    else:
        (run_dir / "run.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    if regenerate:
        report(run_dir)


def reasons(result) -> str:
    return "\n".join(str(f) for f in result.rejections)


def assert_rejected(run_dir: Path, *expected: str) -> None:
    result = review(run_dir)
    assert not result.accepted
    for text in expected:
        assert text in reasons(result), reasons(result)


# --- genuine runs


def test_a_genuine_run_is_accepted_with_its_warnings_only(genuine):
    result = review(genuine)
    assert result.accepted, reasons(result)
    assert all(f.check in ("physics", "identity", "verdicts", "consistency") for f in result.warnings)


def test_a_genuine_agent_run_is_accepted(genuine_agent):
    result = review(genuine_agent)
    assert result.accepted, reasons(result)


def test_the_ledger_is_chained_to_its_end_line(genuine):
    records = ledger(genuine)
    assert all("chain" in r and list(r)[-1] == "chain" for r in records)
    assert (genuine / "run.jsonl").read_bytes() == seal(records)


def killed_after_hello(run_dir: Path) -> None:
    """What kill -9 after the hello phase leaves: the ledger and answers up to there, no end line."""
    records = ledger(run_dir)
    last = max(i for i, r in enumerate(records) if r["type"] == "call" and r["phase"] == "hello")
    (run_dir / "run.jsonl").write_bytes(b"".join((run_dir / "run.jsonl").read_bytes().splitlines(keepends=True)[:last + 1]))
    answers = [line for line in (run_dir / "responses.jsonl").read_text().splitlines(keepends=True)
               if json.loads(line)["key"][1] == "hello"]
    (run_dir / "responses.jsonl").write_text("".join(answers))


def test_a_resumed_run_continues_the_chain_and_is_accepted(genuine, tmp_path):
    run_dir = copy_of(genuine, tmp_path)
    killed_after_hello(run_dir)
    managed_run(run_dir, resume=True)
    report(run_dir)
    records = ledger(run_dir)
    assert [r["type"] for r in records].count("resume") == 1
    assert (run_dir / "run.jsonl").read_bytes() == seal(records)  # one chain across both invocations
    result = review(run_dir)
    assert result.accepted, reasons(result)
    records.insert(-1, next(r for r in records if r["type"] == "call" and r["phase"] == "hello") | {})
    rewrite(run_dir, records)  # the resume "ran" a call the ledger already had
    assert_rejected(run_dir, "a resume ran a call the ledger already had", "recorded more than once")


def test_a_rescored_run_continues_the_chain_and_is_accepted(genuine, tmp_path):
    run_dir = copy_of(genuine, tmp_path)
    assert main(["quality", "rescore", str(run_dir)]) == 0  # appends quality_rescore lines after the end line
    report(run_dir)
    records = ledger(run_dir)
    assert records[-1]["type"] == "quality_rescore" and (run_dir / "run.jsonl").read_bytes() == seal(records)
    result = review(run_dir)
    assert result.accepted, reasons(result)


# --- the forgeries (issue #26's acceptance list)


def test_edited_aggregates_are_rejected(genuine, tmp_path):
    run_dir = copy_of(genuine, tmp_path)
    metadata = json.loads((run_dir / "metadata.json").read_text())
    for row in metadata["cells"]:
        if row.get("tokens_per_sec_mean"):
            row["tokens_per_sec_mean"] = round(row["tokens_per_sec_mean"] * 2, 2)
    write_json_atomic(run_dir / "metadata.json", metadata)
    assert_rejected(run_dir, "metadata.json is not the report of this ledger")


def test_edited_run_md_is_rejected(genuine, tmp_path):
    run_dir = copy_of(genuine, tmp_path)
    text = (run_dir / "run.md").read_text()
    (run_dir / "run.md").write_text(text.replace("tok/s", "tok/s ", 1))
    assert_rejected(run_dir, "run.md is not the report of this ledger")


def test_inflated_rates_are_rejected_even_when_resealed_and_reported(genuine, tmp_path):
    run_dir = copy_of(genuine, tmp_path)
    records = ledger(run_dir)
    for r in records:
        if r["type"] == "call" and r.get("tokens_per_sec"):
            r["tokens_per_sec"] = round(r["tokens_per_sec"] * 3, 2)
    rewrite(run_dir, records, reseal=False)
    assert_rejected(run_dir, "hash chain breaks", "tokens_per_sec does not follow")
    rewrite(run_dir, records)
    assert_rejected(run_dir, "tokens_per_sec does not follow")


def test_consistently_rescaled_durations_break_physics(genuine, tmp_path):
    run_dir = copy_of(genuine, tmp_path)
    records, factor = ledger(run_dir), 40
    for r in records:
        for name in ("first_delta_ms", "ttfb_ms", "first_answer_ms", "total_duration_ms", "server_prompt_ms", "wall_ms"):
            if r.get(name) is not None:
                r[name] = round(r[name] / factor, 1)
        for name in ("tokens_per_sec", "server_tokens_per_sec", "tokens_per_sec_after_first", "prefill_tokens_per_sec",
                     "aggregate_tokens_per_sec"):
            if r.get(name) is not None:
                r[name] = round(r[name] * factor, 2)
    rewrite(run_dir, records)
    assert_rejected(run_dir, "the memory-bandwidth roofline")


def test_client_rates_inflated_with_their_durations_disagree_with_the_runtime(genuine, tmp_path):
    run_dir = copy_of(genuine, tmp_path)
    records = ledger(run_dir)
    for r in records:
        if r["type"] == "call" and r["phase"] == "hello":
            for name in ("first_delta_ms", "ttfb_ms", "first_answer_ms", "total_duration_ms"):
                r[name] = round(r[name] / 3, 1)
            for name in ("tokens_per_sec", "tokens_per_sec_after_first"):
                r[name] = round(r[name] * 3, 2)
            r["rate_disagreement"] = True
    rewrite(run_dir, records)
    assert_rejected(run_dir, "hello: the client timed")


def test_deleted_calls_without_a_fixed_end_line_are_rejected(genuine, tmp_path):
    run_dir = copy_of(genuine, tmp_path)
    raw = (run_dir / "run.jsonl").read_bytes().splitlines(keepends=True)
    slow = max((i for i, line in enumerate(raw) if b'"phase": "5q"' in line),
               key=lambda i: json.loads(raw[i])["total_duration_ms"])
    (run_dir / "run.jsonl").write_bytes(b"".join(raw[:slow] + raw[slow + 1:]))
    report(run_dir)
    assert_rejected(run_dir, "hash chain breaks", "the end line counts", "a planned call is neither in the ledger")


def test_deleted_calls_with_a_fixed_end_line_and_chain_are_rejected(genuine, tmp_path):
    run_dir = copy_of(genuine, tmp_path)
    records = ledger(run_dir)
    slow = max((r for r in records if r["type"] == "call" and r["phase"] == "5q"), key=lambda r: r["total_duration_ms"])
    records.remove(slow)
    for r in records:
        if r["type"] == "end":
            r["calls"] -= 1
    rewrite(run_dir, records)
    assert_rejected(run_dir, "a planned call is neither in the ledger nor skipped")


def test_flipped_quality_verdicts_are_rejected(genuine, tmp_path):
    run_dir = copy_of(genuine, tmp_path)
    records = ledger(run_dir)
    failed = [r for r in records if r["type"] == "quality" and not r["passed"]]
    assert failed, "the fake server fails some scenarios"
    for r in failed:
        r.update(passed=True, failure_mode="passed", score=1.0)
    rewrite(run_dir, records)
    assert_rejected(run_dir, "a quality verdict differs from its saved response re-scored")


def test_flipped_agent_verdicts_are_rejected(genuine_agent, tmp_path):
    run_dir = copy_of(genuine_agent, tmp_path)
    records = ledger(run_dir)
    (stuck,) = [r for r in records if r["type"] == "agent_run" and r["outcome"] == "stagnated"]
    stuck.update(outcome="completed", completed_at=1, reason="pass 1: done, and the gate passed")
    rewrite(run_dir, records)
    assert_rejected(run_dir, "outcome completed (completed at 1) but the gate passed on passes none")
    for r in records:  # a deeper forger flips the pass too
        if r["type"] == "agent_pass" and r["task"] == stuck["task"] and r["pass_index"] == 1:
            r.update(gate_passed=True, ended="completed")
    rewrite(run_dir, records)
    assert_rejected(run_dir, "gate passed with gate_ran False")


def test_a_swapped_model_is_rejected(genuine, tmp_path):
    run_dir = copy_of(genuine, tmp_path)
    swapped, quant = "gemma3-270m", load_profiles().model("gemma3-270m").default_quant
    manifest = json.loads((run_dir / "manifest.json").read_text())
    text = json.dumps(manifest).replace(MODEL, swapped).replace(manifest["models"][0]["quant"], quant)
    write_json_atomic(run_dir / "manifest.json", json.loads(text))
    records = [json.loads(json.dumps(r).replace(MODEL, swapped)) for r in ledger(run_dir)]
    (run_dir / "responses.jsonl").write_text((run_dir / "responses.jsonl").read_text().replace(MODEL, swapped))
    rewrite(run_dir, records)
    assert_rejected(run_dir, f"model {swapped} {quant}: sha256", "the GGUF facts give 30 layers")


def test_a_gpu_claimed_on_a_cpu_run_is_rejected(genuine, tmp_path):
    run_dir = copy_of(genuine, tmp_path)
    hardware = json.loads((run_dir / "hardware.json").read_text())
    hardware["gpu"] = [{"name": "NVIDIA GeForce RTX 4090", "kind": "discrete", "vram_gb": 24.0, "driver": "550.54",
                        "compute_cap": "8.9", "vendor": "nvidia", "vram_free_gb": 23.5, "memory_bus_width_bits": 384,
                        "memory_clock_mhz": 10501, "bandwidth_gbps_theoretical": 1008.0}]
    write_json_atomic(run_dir / "hardware.json", hardware)
    assert_rejected(run_dir, "hardware.json is not the machine the manifest recorded")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["hardware_summary"] = hardware_summary(Hardware.from_dict(hardware))
    write_json_atomic(run_dir / "manifest.json", manifest)
    report(run_dir)
    assert_rejected(run_dir, "claims NVIDIA GeForce RTX 4090, yet the run planned no offload", "knob ngl")


@pytest.mark.parametrize("name", ["responses.jsonl", "samples.jsonl"])
def test_removed_evidence_is_rejected(genuine, tmp_path, name):
    run_dir = copy_of(genuine, tmp_path)
    (run_dir / name).unlink()
    assert_rejected(run_dir, f"{name} is missing")


def test_a_removed_answer_is_rejected(genuine, tmp_path):
    run_dir = copy_of(genuine, tmp_path)
    lines = (run_dir / "responses.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "responses.jsonl").write_text("".join(lines[1:]))
    assert_rejected(run_dir, "answer is missing from responses.jsonl")


def test_an_inflated_bandwidth_claim_is_rejected(genuine, tmp_path):
    run_dir = copy_of(genuine, tmp_path)
    hardware = json.loads((run_dir / "hardware.json").read_text())
    hardware["host_memory_bandwidth_gbps_measured"] = 5000.0
    write_json_atomic(run_dir / "hardware.json", hardware)
    assert_rejected(run_dir, "can deliver at most")


def test_the_same_run_under_another_id_is_a_duplicate(genuine, tmp_path):
    original = copy_of(genuine, tmp_path)
    new_id = "87654321-4321-4321-8321-cba987654321"
    twin = original.parent / f"run-{new_id}"
    shutil.copytree(original, twin)
    for name in ("manifest.json",):
        (twin / name).write_text((twin / name).read_text().replace(RUN_ID, new_id))
    records = [json.loads(json.dumps(r).replace(RUN_ID, new_id)) for r in ledger(twin)]
    (twin / "samples.jsonl").write_text((twin / "samples.jsonl").read_text().replace(RUN_ID, new_id))
    rewrite(twin, records)
    assert review(twin).accepted, reasons(review(twin))  # alone it is a genuine folder
    result = review(twin, submissions_dir=tmp_path / "subs")
    assert not result.accepted and "the same run submitted again" in reasons(result)
    assert review(original, submissions_dir=tmp_path / "subs").rejections  # and each is the other's copy


# --- hostile folders and the command line


@pytest.mark.parametrize("damage", ["garbage", "empty", "link", "folder", "null-rate"])
def test_a_hostile_folder_is_rejected_in_one_line_each_never_a_traceback(genuine, tmp_path, damage, capsys):
    run_dir = copy_of(genuine, tmp_path)
    if damage == "garbage":
        (run_dir / "run.jsonl").write_bytes(b"\x00\xff not json\n[1, 2]\n")
    elif damage == "empty":
        (run_dir / "run.jsonl").write_bytes(b"")
    elif damage == "link":
        (run_dir / "hardware.json").unlink()
        (run_dir / "hardware.json").symlink_to("/etc/passwd")
    elif damage == "folder":
        (run_dir / "extra").mkdir()
    else:
        records = ledger(run_dir)
        for r in records:
            if r["type"] == "call":
                r["total_duration_ms"] = None
        rewrite(run_dir, records, regenerate=False)
    assert main(["review", str(run_dir)]) == 1
    out = capsys.readouterr().out
    assert "REJECTED" in out and "Traceback" not in out


def test_cli_accepts_with_exit_0_and_json_names_each_check(genuine, capsys):
    assert main(["review", str(genuine)]) == 0
    assert "ACCEPTED" in capsys.readouterr().out
    assert main(["review", str(genuine), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["accepted"] is True and document["rejections"] == []


def test_cli_rejects_with_exit_1_and_a_line_per_reason(genuine, tmp_path, capsys):
    run_dir = copy_of(genuine, tmp_path)
    (run_dir / "samples.jsonl").unlink()
    (run_dir / "run.md").write_text("# edited\n")
    assert main(["review", str(run_dir), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert {r["check"] for r in document["rejections"]} == {"form", "consistency"}
    assert main(["review", str(tmp_path / "nowhere")]) == 2
