"""run.md's plots and captions, the per-call decode profile behind the position plot, and the
reproducibility command without local paths."""

import json
import random
import sys

import pytest

from orchestrator.cli import main
from orchestrator.measure.client import CallRequest, stream_chat
from orchestrator.measure.decode_profile import WINDOW_CHUNKS, decode_profile, window_positions
from orchestrator.core.ledger import read_records
from orchestrator.core.paths import REPO_ROOT
from orchestrator.publish.privacy import scan
from orchestrator.publish.report import RunReport, report
from orchestrator.publish.report.figures import build_metadata
from orchestrator.publish.report.markdown import render_markdown
from orchestrator.publish.report.outcome_plots import wilson_interval
from orchestrator.publish.report.plotlayout import cell_names
from orchestrator.publish.report.plots import make_plots
from orchestrator.core.reproduce import portable_command
from tests.fakes.openai_server import FakeServerState, start_in_thread
from tests.test_report import example_run, run_dir  # noqa: F401  (fixtures: a fresh example run folder)

HARDWARE = REPO_ROOT / "tests" / "fixtures" / "hardware" / "mac-m1-8gb.json"
PACKS = ["toolcall", "instruct", "struct", "extract", "math", "codeexec"]
TASKS = ["py-slugify", "py-roman-numerals", "rs-fizzbuzz", "js-left-pad", "py-impossible"]
OUTCOMES = ["completed", "stagnated", "budget", "fault", "skipped", "interrupted"]


def many_cells(folder, n_cells=30):
    """A RunReport with n_cells cells × 3 phases of calls (rates falling along each answer), a
    quality row per cell over six packs and an agent row per cell over five tasks."""
    rnd = random.Random(7)
    cells = [f"linux-rtx-4090-24gb:llamacpp:model-number-{i:02d}-instruct-q4_k_m" for i in range(n_cells)]
    phases = ["hello", "5q", "parallel_same"]
    records = [{"type": "meta", "benchmark_run_id": "x", "options": {"phases": phases}, "suites": {}, "cells": []}]
    responses = []
    for number, cell in enumerate(cells):
        for phase in phases:
            for run_idx in range(6):
                rate = (20 + 3 * number) * rnd.uniform(0.9, 1.1)
                records.append({"type": "call", "cell_id": cell, "phase": phase, "prompt_id": "P", "run_idx": run_idx,
                                "lane": None, "load_state": "cold" if run_idx == 0 else "warm", "error": None,
                                "tokens_per_sec": rate, "first_delta_ms": 80 * rnd.uniform(0.8, 1.2),
                                "total_duration_ms": 1000, "completion_tokens": 100})
                rates = [round(rate * (1 - 0.4 * k / 32), 1) for k in range(rnd.randint(3, 32))]
                responses.append({"key": [cell, phase, "P", None, run_idx], "text": "", "decode_profile":
                                  {"window_tokens": 32, "tokens_per_chunk": 1.0, "tokens_per_sec": rates}})
    metadata = build_metadata(records, {}, None)
    metadata["quality"] = [{"cell_id": c, "packs": [{"pack": p, "passed": (n + i) % 11, "total": 10 + i,
                                                     "score": ((n + i) % 11) / (10 + i)} for i, p in enumerate(PACKS)]}
                           for n, c in enumerate(cells)]
    metadata["agent"] = [{"cell_id": c, "workflow": "two-try",
                          "tasks": [{"task": t, "outcome": OUTCOMES[(n + i) % 6], "pass_at_1": (n + i) % 6 == 0,
                                     "pass_at_2": (n + i) % 6 == 0} for i, t in enumerate(TASKS)],
                          "pass_rates": {"python": {"pass_at_1": 0.5, "pass_at_2": 0.75, "completion_rate": 0.75}}}
                         for n, c in enumerate(cells)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in responses))
    return RunReport(records, {}, None, metadata, frozenset({"speed"}))  # the sections need the ledger lines


def test_decode_profile_windows_scale_by_tokens_per_chunk_and_drop_a_short_tail():
    times = [50.0 + 10.0 * i for i in range(WINDOW_CHUNKS * 2 + 5)]  # 100 tok/s, a 4-interval tail
    profile = decode_profile(times, completion_tokens=len(times))
    assert profile == {"window_tokens": 32, "tokens_per_chunk": 1.0, "tokens_per_sec": [100.0, 100.0]}
    assert window_positions(profile) == [16.0, 48.0]
    doubled = decode_profile(times, completion_tokens=2 * len(times))  # two tokens per chunk
    assert doubled["tokens_per_sec"] == [200.0, 200.0] and window_positions(doubled) == [32.0, 96.0]
    slowing = [sum(10.0 + i * 0.1 for i in range(n)) for n in range(97)]
    rates = decode_profile(slowing, None)["tokens_per_sec"]
    assert rates == sorted(rates, reverse=True) and len(rates) == 3
    assert decode_profile(times[:10], 10) is None  # shorter than half a window


def test_the_client_keeps_each_delta_arrival_and_the_context_writes_the_profile_beside_the_text(run_dir):  # noqa: F811
    server, state, url = start_in_thread(FakeServerState(chunk_delay_s=0.0))
    try:
        result = stream_chat(CallRequest(url, "openai", "fake", [{"role": "user", "content": "hi"}], 64, 0.1,
                                         headers={"X-Weeyuga-Benchmark-Prompt-Id": "P-MEDIUM"}), "llamacpp")
    finally:
        server.shutdown()
    assert result.error is None and len(result.delta_ms) >= 2
    assert result.delta_ms[0] == result.first_delta_ms and result.delta_ms == sorted(result.delta_ms)
    lines = list(read_records(run_dir / "responses.jsonl"))
    profiled = [line for line in lines if "decode_profile" in line]
    assert profiled and all(set(line) == {"key", "text", "decode_profile"} for line in profiled)
    assert all(rate == 40.0 for line in profiled for rate in line["decode_profile"]["tokens_per_sec"])  # the example's clock
    call_fields = {k for r in read_records(run_dir / "run.jsonl") if r.get("type") == "call" for k in r}
    assert "decode_profile" not in call_fields and "delta_ms" not in call_fields


def test_every_plot_is_written_and_captioned_in_run_md(run_dir):  # noqa: F811
    result = report(run_dir)
    assert result.plots == ["tokens_per_sec.png", "ttft.png", "decode_by_position.png"]
    md = (run_dir / "run.md").read_text()
    plots = md[md.index("## Plots"):md.index("## Privacy")]
    for number, name in enumerate(result.plots, 1):
        assert f"![{name[:-4]}]({name})\n\n*Figure {number}.* " in plots
        assert (run_dir / name).read_bytes().startswith(b"\x89PNG")
    assert "p50" in plots and "p95" in plots and "40.0 tok/s in the first window" in plots


def test_plots_are_byte_identical_when_made_twice(run_dir):  # noqa: F811
    report(run_dir)
    first = {p.name: p.read_bytes() for p in run_dir.glob("*.png")}
    report(run_dir)
    assert first == {p.name: p.read_bytes() for p in run_dir.glob("*.png")}
    assert all(b"tEXt" not in data and b"Software" not in data for data in first.values())


def test_thirty_cells_get_a_key_and_figures_that_grow_instead_of_overlapping(tmp_path):
    import matplotlib.image

    run = many_cells(tmp_path, 30)
    plots = make_plots(tmp_path, run)
    assert [p.file for p in plots] == ["tokens_per_sec.png", "ttft.png", "decode_by_position.png", "quality.png",
                                      "agent.png"]
    for plot in plots:
        assert "C1 = model-number-00-instruct-q4_k_m" in plot.caption and "C30 = model-number-29" in plot.caption
        height, width = matplotlib.image.imread(tmp_path / plot.file).shape[:2]
        assert width <= 1000 and height > 900, plot.file  # one band per cell: taller, never wider
    md = render_markdown(run, plots)
    assert md.count("*Figure ") == 5 and "95% Wilson interval" in md and "pass@2" in md


def test_short_cell_names_drop_the_shared_device_tag_and_long_ones_become_a_key():
    names = cell_names(["box:llamacpp:qwen3-4b", "box:ollama:qwen3-4b"])
    assert names.label == {"box:llamacpp:qwen3-4b": "llamacpp:qwen3-4b", "box:ollama:qwen3-4b": "ollama:qwen3-4b"}
    assert names.caption() == ""
    assert cell_names(["box:llamacpp:smollm2"]).label == {"box:llamacpp:smollm2": "smollm2"}
    long = cell_names(["a:llamacpp:" + "x" * 40, "b:llamacpp:y"])
    assert list(long.label.values()) == ["C1", "C2"] and long.key == ("C1 = a:llamacpp:" + "x" * 40, "C2 = b:llamacpp:y")


def test_wilson_interval_stays_inside_0_1_and_is_not_empty_at_the_ends():
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0) and 0.25 < wilson_interval(0, 10)[1] < 0.35
    low, high = wilson_interval(10, 10)
    assert 0.65 < low < 0.75 and high == pytest.approx(1.0)
    low, high = wilson_interval(5, 10)
    assert low < 0.5 < high and abs((0.5 - low) - (high - 0.5)) < 1e-9


def test_the_command_keeps_no_local_path():
    argv = ["weeyuga", "auto", "--submissions-dir", "/home/alice/bench", "--hardware=/Users/bob/hw.json", "--phases",
            "hello,5q", "--model-path", "C:\\Users\\carol\\models\\qwen.gguf", "--resume", "1234", "--note",
            "~/secret/file", "--submissions-dir=/root/x", "--runs", "2"]
    assert portable_command(argv) == ["weeyuga", "auto", "--hardware=hw.json", "--phases", "hello,5q", "--model-path",
                                      "qwen.gguf", "--note", "file", "--runs", "2"]


def test_run_md_from_an_old_ledger_with_home_paths_passes_the_privacy_scan(run_dir):  # noqa: F811
    ledger = run_dir / "run.jsonl"
    records = list(read_records(ledger))
    records[0]["command"] = ["weeyuga", "auto", "--submissions-dir", "/home/alice/weeyuga/submissions", "--model-path",
                             "/home/alice/models/smollm2.gguf", "--phases", "hello"]
    ledger.write_text("".join(json.dumps(r) + "\n" for r in records))
    report(run_dir)
    md = (run_dir / "run.md").read_text()
    assert "weeyuga auto --model-path smollm2.gguf --phases hello\n" in md and "/home" not in md
    assert [f for f in scan(run_dir) if f.file == "run.md"] == []
    assert [f.kind for f in scan(run_dir) if f.file == "run.jsonl"]  # the scanner does see the ledger's paths


def test_the_cli_records_the_command_without_the_submissions_dir_or_the_hardware_path(tmp_path, monkeypatch):
    server, _, url = start_in_thread(FakeServerState(chunk_delay_s=0.0))
    args = ["run", "--target-url", url, "--engine", "openai", "--models", "fake", "--hardware", str(HARDWARE),
            "--submissions-dir", str(tmp_path), "--submitter-handle", "tester", "--device-tag", "test-box",
            "--force-load", "--phases", "hello", "--runs", "1"]
    monkeypatch.setattr(sys, "argv", ["weeyuga", *args])
    try:
        assert main(args) == 0
    finally:
        server.shutdown()
    (run_dir,) = [p.parent for p in tmp_path.rglob("run.jsonl")]
    meta = next(read_records(run_dir / "run.jsonl"))
    assert "--submissions-dir" not in meta["command"] and "mac-m1-8gb.json" in meta["command"]
    assert main(["report", str(run_dir), "--no-plots"]) == 0
    for name in ("run.jsonl", "manifest.json", "run.md"):
        text = (run_dir / name).read_text()
        assert str(tmp_path) not in text and str(REPO_ROOT) not in text, name
