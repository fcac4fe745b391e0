"""Bad input never gives a traceback: every command on malformed files, hostile folders and nonsense
arguments answers with one line on stderr naming what is wrong, and the right exit code (2 bad input,
1 failure). Plus the guarantees behind them: submit cannot escape the clone, rule tables cannot
hang the planner, a full disk tears nothing, a refused run leaves no folder.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from orchestrator.core import datafiles
from orchestrator.flows import pipeline
from orchestrator.plan import profiles
from orchestrator.publish import manifest as record
from orchestrator.measure import run as run_module
from orchestrator.publish.catalogue import build_catalogue
from orchestrator.cli import main
from orchestrator.core.errors import BadInput, WeeyugaError
from orchestrator.core.ledger import Ledger, read_records, read_state
from orchestrator.core.paths import REPO_ROOT
from orchestrator.publish.report import report
from orchestrator.measure.resources import ResourceSampler
from orchestrator.measure.run import RunOptions, run_suites
from tests.fakes.openai_server import start_in_thread

EXAMPLE_RUN = next((REPO_ROOT / "submissions" / "EXAMPLE").glob("*/run-*"))
RUN_ID = EXAMPLE_RUN.name[len("run-"):]
HARDWARE = REPO_ROOT / "tests" / "fixtures" / "hardware" / "mac-m1-8gb.json"


@pytest.fixture
def run(tmp_path):
    """A complete run folder, as a contributor would hand it in."""
    target = tmp_path / "subs" / "alice" / "mac-m1-8gb" / EXAMPLE_RUN.name
    shutil.copytree(EXAMPLE_RUN, target)
    return target


@pytest.fixture(autouse=True)
def keep_signal_handlers():
    """auto and tune install SIGTERM/SIGHUP handlers; in-process calls must not leak them into pytest."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def calm_machine(monkeypatch):
    """The load gate reads the host's load average; pin it."""
    monkeypatch.setattr(run_module, "load_average", lambda: [0.5, 0.5, 0.5])


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------------------------------
# Helpers that make a folder or file malformed


def ledger(run: Path) -> list[str]:
    return (run / "run.jsonl").read_text().splitlines()


def set_line(run: Path, index: int, line: str) -> None:
    lines = ledger(run)
    lines[index] = line
    (run / "run.jsonl").write_text("\n".join(lines) + "\n")


def first_call(run: Path) -> int:
    return next(i for i, line in enumerate(ledger(run)) if json.loads(line)["type"] == "call")


def edit_record(run: Path, index: int, change) -> None:
    record_ = json.loads(ledger(run)[index])
    change(record_)
    set_line(run, index, json.dumps(record_))


def edit_json(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def call_edit(change):
    return lambda run: edit_record(run, first_call(run), change)


def meta_edit(change):
    return lambda run: edit_record(run, 0, change)


def manifest_edit(change):
    return lambda run: edit_json(run / "manifest.json", change)


def write(name: str, text: str):
    return lambda run: (run / name).write_text(text)


def replace_with_folder(name: str):
    def make(run):
        (run / name).unlink()
        (run / name).mkdir()
    return make


def link(name: str, target: str):
    return lambda run: (run / name).symlink_to(target)


def fifo(name: str):
    return lambda run: os.mkfifo(run / name)


def hw_file(tmp: Path, content: str) -> str:
    path = tmp / "hw.json"
    path.write_text(content)
    return str(path)


def hw_edit(tmp: Path, change) -> str:
    doc = json.loads(HARDWARE.read_text())
    change(doc)
    return hw_file(tmp, json.dumps(doc))


def set_path(doc, dotted: str, value):
    *parents, last = dotted.split(".")
    for part in parents:
        doc = doc[part]
    doc[last] = value


# ---------------------------------------------------------------------------------------
# The table: (id, build argv from (tmp_path, run folder), exit code, text the one line must hold)

def report_case(change, needle, code=2):
    def argv(tmp, run):
        change(run)
        return ["report", str(run), "--no-plots"]
    return argv, code, needle


def submit_case(change, needle, code=2):
    def argv(tmp, run):
        change(run)
        return ["submit", str(run), "--repo", str(tmp)]
    return argv, code, needle


def compare_case(change, needle, code=2):
    def argv(tmp, run):
        change(run / "metadata.json")
        return ["compare", str(EXAMPLE_RUN), str(run)]
    return argv, code, needle


def decide_hw_case(make, needle, code=2):
    return (lambda tmp, run: ["decide", "--hardware", make(tmp)]), code, needle


def args_case(argv, needle, code=2):
    return (lambda tmp, run: [a.format(tmp=tmp, hw=HARDWARE) for a in argv]), code, needle


RUN = ["run", "--target-url", "http://127.0.0.1:9", "--engine", "openai", "--models", "m", "--hardware", "{hw}",
       "--submissions-dir", "{tmp}/subs", "--submitter-handle", "alice"]
AUTO = ["auto", "--yes", "--dry-run", "--hardware", "{hw}", "--submissions-dir", "{tmp}/subs", "--submitter-handle", "alice"]
DECIDE = ["decide", "--hardware", "{hw}"]
TUNE = ["tune", "--model", "smollm2-135m-instruct", "--hardware", "{hw}", "--no-write"]

CASES = {
    # report: broken ledgers
    "report/call-wrong-type": report_case(call_edit(lambda r: r.update(run_idx="first")), "run.jsonl:2: field run_idx"),
    "report/call-tokens-per-sec-string": report_case(call_edit(lambda r: r.update(tokens_per_sec="fast")), "field tokens_per_sec"),
    "report/call-negative-duration": report_case(call_edit(lambda r: r.update(total_duration_ms=-5)), "field total_duration_ms"),
    "report/call-absurd-rate": report_case(call_edit(lambda r: r.update(tokens_per_sec=1e300)), "field tokens_per_sec"),
    "report/call-without-cell-id": report_case(call_edit(lambda r: r.pop("cell_id")), "run.jsonl:2"),
    "report/call-without-phase": report_case(call_edit(lambda r: r.pop("phase")), "run.jsonl:2"),
    "report/call-phase-number": report_case(call_edit(lambda r: r.update(phase=7)), "run.jsonl:2: field phase"),
    "report/call-cell-id-list": report_case(call_edit(lambda r: r.update(cell_id=[1])), "run.jsonl:2: field cell_id"),
    "report/line-list": report_case(lambda run: set_line(run, 1, "[1,2,3]"), "run.jsonl:2: an array where a JSON object"),
    "report/line-number": report_case(lambda run: set_line(run, 1, "42"), "run.jsonl:2: a number where a JSON object"),
    "report/line-null": report_case(lambda run: set_line(run, 1, "null"), "run.jsonl:2: null where a JSON object"),
    "report/line-string": report_case(lambda run: set_line(run, 1, '"call"'), "run.jsonl:2: a string"),
    "report/line-not-json": report_case(lambda run: set_line(run, 1, "{oops"), "run.jsonl:2: not a JSON line"),
    "report/line-nan": report_case(call_edit(lambda r: r.update(first_delta_ms=float("nan"))), "NaN is not a number JSON allows"),
    "report/line-infinity": report_case(call_edit(lambda r: r.update(first_delta_ms=float("inf"))), "Infinity is not a number"),
    "report/line-overflow": report_case(lambda run: set_line(run, 1, ledger(run)[1].replace('"first_delta_ms": 50.0', '"first_delta_ms": 1e999')),
                                        "out of range"),
    "report/line-duplicate-key": report_case(lambda run: set_line(run, 1, ledger(run)[1][:-1] + ', "phase": "5q"}'),
                                             "duplicate key 'phase'"),
    "report/line-not-utf8": report_case(lambda run: (run / "run.jsonl").write_bytes(
        (run / "run.jsonl").read_bytes().replace(b"Hello!", b"Hel\xff!", 1)), "run.jsonl:2: not a JSON line"),
    "report/line-unknown-type": report_case(call_edit(lambda r: r.update(type="banana")), "run.jsonl:2"),
    "report/meta-suites-string": report_case(meta_edit(lambda r: r.update(suites="x")), "run.jsonl:1: field suites"),
    "report/meta-options-list": report_case(meta_edit(lambda r: r.update(options=[1])), "run.jsonl:1: field options"),
    "report/meta-phases-string": report_case(meta_edit(lambda r: r["options"].update(phases="hello")), "field options.phases"),
    "report/meta-load-string": report_case(meta_edit(lambda r: r.update(load_avg_start="high")), "field load_avg_start"),
    "report/meta-cells-no-model": report_case(meta_edit(lambda r: r["cells"][0].pop("model")), "field cells[0]"),
    "report/meta-missing-run-id": report_case(meta_edit(lambda r: r.pop("benchmark_run_id")), "run.jsonl:1"),
    "report/first-line-not-meta": report_case(lambda run: set_line(run, 0, ledger(run)[1]), "first line is not a meta record"),
    "report/empty-ledger": report_case(write("run.jsonl", ""), "first line is not a meta record"),
    "report/lanes-without-errors": report_case(lambda run: set_line(run, next(
        i for i, line in enumerate(ledger(run)) if '"lanes"' in line[:20]),
        json.dumps({"type": "lanes", "phase": "parallel_same", "cells": [], "lanes": 3, "calls": 1, "wall_ms": 1.0,
                    "aggregate_tokens_per_sec": 1.0})), "field (top level)"),
    "report/ledger-is-a-folder": report_case(replace_with_folder("run.jsonl"), "run.jsonl: a folder in a run folder"),
    "report/no-ledger": report_case(lambda run: (run / "run.jsonl").unlink(), "no run.jsonl"),
    "report/manifest-not-json": report_case(write("manifest.json", "{not json"), "manifest.json (line 1): not valid JSON"),
    "report/manifest-list": report_case(write("manifest.json", "[]"), "manifest.json: field (top level)"),
    "report/manifest-nan": report_case(write("manifest.json", '{"run_id": NaN}'), "manifest.json: not valid JSON: NaN"),
    "report/manifest-wrong-field": report_case(manifest_edit(lambda m: m.update(deviations="none")), "manifest.json: field deviations"),
    "report/hardware-not-json": report_case(write("hardware.json", "cores: 8"), "hardware.json (line 1): not valid JSON"),
    "report/hardware-list": report_case(write("hardware.json", "[1]"), "hardware.json: field (top level)"),
    "report/symlink-inside": report_case(link("notes.txt", "/etc/os-release"), "notes.txt: a symbolic link in a run folder"),
    "report/fifo-inside": report_case(fifo("notes.txt"), "notes.txt: a device, FIFO or socket in a run folder"),
    "report/no-such-folder": (lambda tmp, run: ["report", str(tmp / "nowhere")], 2, "no such run folder"),
    "report/folder-is-a-link": (lambda tmp, run: (tmp / "alias").symlink_to(run) or ["report", str(tmp / "alias")], 2,
                                "is a symbolic link"),
    # compare: bad metadata
    "compare/cells-not-list": compare_case(lambda p: edit_json(p, lambda m: m.update(cells="x")), "metadata.json: field cells"),
    "compare/cells-row-not-object": compare_case(lambda p: edit_json(p, lambda m: m.update(cells=[1])), "field cells[0]"),
    "compare/not-json": compare_case(lambda p: p.write_text("nope"), "metadata.json (line 1): not valid JSON"),
    "compare/list": compare_case(lambda p: p.write_text("[]"), "metadata.json: field (top level)"),
    "compare/nan": compare_case(lambda p: p.write_text(re.sub(r'("tokens_per_sec_mean": )[0-9.]+', r"\1NaN", p.read_text(), count=1)),
                                "NaN is not a number"),
    "compare/missing": compare_case(lambda p: p.unlink(), "not found"),
    "compare/wrong-schema": compare_case(lambda p: edit_json(p, lambda m: m.update(schema_version="metadata-9")),
                                         "field schema_version"),
    "compare/one-run": (lambda tmp, run: ["compare", str(run)], 2, "at least two runs"),
    "compare/folder-not-file": compare_case(lambda p: (p.unlink(), p.mkdir()), "is a folder, not a file"),
    # submit: bad manifests and folders that try to escape
    "submit/manifest-not-json": submit_case(write("manifest.json", "{"), "manifest.json (line 1): not valid JSON"),
    "submit/manifest-no-run-id": submit_case(manifest_edit(lambda m: m.pop("run_id")), "'run_id' is a required property"),
    "submit/run-id-escapes": submit_case(manifest_edit(lambda m: m.update(run_id="../../../../escaped")),
                                         "run id '../../../../escaped' is not a uuid"),
    "submit/run-id-number": submit_case(manifest_edit(lambda m: m.update(run_id=7)), "field run_id"),
    "submit/run-id-newline": submit_case(manifest_edit(lambda m: m.update(run_id=RUN_ID + "\n")), "is not a uuid"),
    "submit/handle-newline": submit_case(manifest_edit(lambda m: m.update(submitter_handle="rel\n")),
                                         "submitter handle 'rel\\n'"),
    "submit/handle-escapes": submit_case(manifest_edit(lambda m: m.update(submitter_handle="../..")), "submitter_handle"),
    "submit/handle-missing": submit_case(manifest_edit(lambda m: m.update(submitter_handle=None)), "submitter handle None"),
    "submit/tag-escapes": submit_case(manifest_edit(lambda m: m.update(device_tag="x/../../y")), "device_tag"),
    "submit/tag-newline": submit_case(manifest_edit(lambda m: m.update(device_tag="mac\n")), "device tag 'mac\\n'"),
    "submit/symlink-inside": submit_case(link("notes.txt", "/etc/os-release"), "notes.txt: a symbolic link"),
    "submit/symlinked-ledger": submit_case(lambda run: (run / "run.jsonl").unlink() or link("run.jsonl", "/etc/passwd")(run),
                                           "run.jsonl: a symbolic link"),
    "submit/fifo-inside": submit_case(fifo("pipe"), "pipe: a device, FIFO or socket"),
    "submit/subfolder-inside": submit_case(lambda run: (run / "extra").mkdir(), "extra: a folder in a run folder"),
    "submit/missing-metadata": submit_case(lambda run: (run / "metadata.json").unlink(), "missing metadata.json"),
    "submit/metadata-list": submit_case(write("metadata.json", "[]"), "metadata.json: field (top level)"),
    # catalogue and decide: where their output goes
    "catalogue/no-submissions-dir": args_case(["catalogue", "--submissions-dir", "{tmp}/nonexistent", "--out", "{tmp}/c.json"],
                                              "no such submissions folder"),
    "catalogue/out-is-a-folder": args_case(["catalogue", "--submissions-dir", "{tmp}/subs", "--out", "{tmp}/subs"],
                                           "subs: is a folder, not a regular file; refusing to replace it"),
    "catalogue/out-missing-parent": args_case(["catalogue", "--submissions-dir", "{tmp}/subs", "--out", "{tmp}/no/such/c.json"],
                                              "c.json: cannot write there"),
    # as root, a rename onto /dev/null would replace the device: refused before anything is written (#25 §3)
    "catalogue/out-dev-null": args_case(["catalogue", "--submissions-dir", "{tmp}/subs", "--out", "/dev/null"],
                                        "/dev/null: is a device, FIFO or socket"),
    "catalogue/query-empty": args_case(["catalogue", "--submissions-dir", "{tmp}/subs", "--out", "{tmp}/c.json", "--query", ""],
                                       "--query: no SQL statement"),
    "catalogue/query-comment": args_case(["catalogue", "--submissions-dir", "{tmp}/subs", "--out", "{tmp}/c.json",
                                          "--query", "-- what runs are fastest?"], "--query: no SQL statement"),
    "decide/out-is-a-folder": args_case(DECIDE + ["--out", "{tmp}"], "is a folder, not a regular file"),
    "decide/out-is-a-device": args_case(DECIDE + ["--out", "/dev/null"], "/dev/null: is a device, FIFO or socket"),
    # decide: hostile hardware files
    "decide/hardware-dev-zero": args_case(["decide", "--hardware", "/dev/zero"], "/dev/zero: not a regular file"),
    "decide/hardware-fifo": decide_hw_case(lambda tmp: os.mkfifo(tmp / "fifo") or str(tmp / "fifo"), "fifo: not a regular file"),
    "decide/hardware-folder": decide_hw_case(lambda tmp: str(tmp), "is a folder, not a file"),
    "decide/hardware-missing": decide_hw_case(lambda tmp: str(tmp / "none.json"), "file not found"),
    "decide/hardware-huge": decide_hw_case(lambda tmp: os.truncate(hw_file(tmp, ""), 64 * 2**20) or str(tmp / "hw.json"),
                                           "bytes is more than"),
    "decide/hardware-cores-1e30": decide_hw_case(lambda tmp: hw_edit(tmp, lambda d: set_path(d, "cpu.cores", 10**30)),
                                                 "field cpu.cores"),
    "decide/hardware-threads-0": decide_hw_case(lambda tmp: hw_edit(tmp, lambda d: set_path(d, "cpu.threads", 0)), "field cpu.threads"),
    "decide/hardware-memory-nan": decide_hw_case(lambda tmp: hw_file(tmp, HARDWARE.read_text().replace(
        '"memory_gb_total": 8.0', '"memory_gb_total": NaN')), "NaN is not a number"),
    "decide/hardware-memory-1e300": decide_hw_case(lambda tmp: hw_edit(tmp, lambda d: set_path(d, "memory_gb_total", 1e300)),
                                                   "field memory_gb_total"),
    "decide/hardware-memory-string": decide_hw_case(lambda tmp: hw_edit(tmp, lambda d: set_path(d, "memory_gb_total", "8")),
                                                    "field memory_gb_total"),
    "decide/hardware-vram-negative": decide_hw_case(lambda tmp: hw_edit(tmp, lambda d: set_path(d, "gpu", [
        {"name": "x", "kind": "discrete", "vram_gb": -1, "driver": None, "compute_cap": None}])), "field gpu[0].vram_gb"),
    "decide/hardware-list": decide_hw_case(lambda tmp: hw_file(tmp, "[]"), "field (top level)"),
    "decide/hardware-not-json": decide_hw_case(lambda tmp: hw_file(tmp, "{"), "(line 1): not valid JSON"),
    "decide/hardware-duplicate-key": decide_hw_case(lambda tmp: hw_file(tmp, HARDWARE.read_text().replace(
        '"memory_gb_total": 8.0', '"memory_gb_total": 8.0, "memory_gb_total": 800.0')), "duplicate key 'memory_gb_total'"),
    "decide/hardware-tag-newline": decide_hw_case(lambda tmp: hw_edit(tmp, lambda d: set_path(d, "device_tag", "mac\n")),
                                                  "field device_tag"),
    "decide/hardware-not-utf8": decide_hw_case(lambda tmp: ((tmp / "hw.json").write_bytes(b'{"a": "\xff"}'), str(tmp / "hw.json"))[1],
                                               "not valid JSON"),
    "doctor/hardware-dev-zero": args_case(["doctor", "--hardware", "/dev/zero"], "not a regular file"),
    "launch/plan-list": args_case(["launch", "--plan", "{hw}"], "not a plan written by `weeyuga decide --out`"),
    "launch/plan-dev-zero": args_case(["launch", "--plan", "/dev/zero"], "not a regular file"),
    # spellings the command line refuses (nonsense numbers: NONSENSE below)
    "decide/device-tag-newline": args_case(DECIDE + ["--device-tag", "mac\n"], "device tag 'mac\\n'"),
    "decide/unknown-model": args_case(DECIDE + ["--model", "no-such-model"], "unknown model 'no-such-model'"),
    "run/port-out-of-range": args_case(["run", "--target-url", "http://127.0.0.1:99999"] + RUN[3:], "Port out of range"),
    "run/ipv6-unclosed": args_case(["run", "--target-url", "http://[::1"] + RUN[3:], "Invalid IPv6 URL"),
    "run/url-with-path": args_case(["run", "--target-url", "http://127.0.0.1:8080/v1"] + RUN[3:], "must look like"),
    "run/url-not-http": args_case(["run", "--target-url", "file:///etc/passwd"] + RUN[3:], "must look like"),
    "run/handle-newline": args_case(RUN + ["--submitter-handle", "rel\n"], "submitter handle 'rel\\n'"),
    "run/handle-escapes": args_case(RUN + ["--submitter-handle", "../../x"], "submitter handle '../../x'"),
    "run/resume-escapes": args_case(RUN + ["--resume", "../../etc"], "'../../etc' is not a run id"),
    "run/resume-unknown": args_case(RUN + ["--resume", "deadbeef"], "no run deadbeef"),
    "run/no-models": args_case(["run", "--target-url", "http://127.0.0.1:9", "--models", ",", "--hardware", "{hw}"],
                               "--models needs at least one"),
    "run/phase-unknown": args_case(RUN + ["--phases", "hello,nope"], "nope"),
    "auto/handle-newline": args_case(AUTO[:-1] + ["rel\n"], "submitter handle 'rel\\n'"),
    "auto/submissions-under-a-file": args_case(["auto", "--yes", "--hardware", "{hw}", "--submissions-dir", "{hw}/subs",
                                                "--submitter-handle", "alice"], "cannot write there: Not a directory"),
    "rules/suggest-no-dir": args_case(["rules", "suggest", "--submissions-dir", "{tmp}/none"], "no such submissions folder"),
    "privacy-scan/no-such-folder": args_case(["privacy-scan", "{tmp}/none"], "no such run folder"),
    "model/unknown": args_case(["model", "get", "no-such-model"], "unknown model"),
    "cli/unknown-command": args_case(["frobnicate"], "invalid choice"),
    "cli/missing-argument": args_case(["report"], "the following arguments are required"),
}

# Values argparse refuses in one line, per command: negative counts, NaN, 10^30, zero context, garbage durations.
NONSENSE = {
    "decide": [("--num-ctx", "0"), ("--ngl", "-1"), ("--threads", str(10**30)), ("--temperature", "nan"),
               ("--temperature", "inf"), ("--num-parallel", "three"), ("--keep-alive", "forever!")],
    "run": [("--runs", "-3"), ("--num-ctx", "0"), ("--num-predict", "0"), ("--temperature", "-0.5"),
            ("--capacity-users", "0"), ("--slo-ttft-p95", "nan"), ("--slo-user-tps", "-1")],
    "auto": [("--runs", "-3"), ("--time-budget", "-5"), ("--time-budget", "nan"), ("--num-ctx", "0"),
             ("--keep-alive", "1 week"), ("--max-loaded-models", "0"), ("--endurance-minutes", "0"),
             ("--slo-ttft-p95", "inf")],
    "tune": [("--parallel", "0"), ("--ctx", "-4096"), ("--max-launches", "0")],
    "launch": [("--port", "70000")],
    "rules suggest": [("--min-runs", "0")],
}
BASE_ARGV = {"decide": DECIDE, "run": RUN, "auto": AUTO, "tune": TUNE, "launch": ["launch"], "rules suggest": ["rules", "suggest"]}
CASES.update({f"{command}/{flag[2:]}={value}": args_case(BASE_ARGV[command] + [flag, value], f"argument {flag}: {value!r}")
              for command, flags in NONSENSE.items() for flag, value in flags})


def check_one_line(code, out, err, expected_code, needle):
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err + out
    assert "please report this bug" not in err, err  # each case has its own message, not the last-resort one
    assert len(lines) == 1, err
    assert needle in lines[0], lines[0]
    assert code == expected_code, (code, lines[0])


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_input_gives_one_line(name, tmp_path, run, capsys, calm_machine):
    argv_of, expected_code, needle = CASES[name]
    argv = argv_of(tmp_path, run)
    code, out, err = run_cli(argv, capsys)
    check_one_line(code, out, err, expected_code, needle)


def test_table_is_big_enough():
    assert len(CASES) >= 60


# ---------------------------------------------------------------------------------------
# §2: nothing escapes


def test_catalogue_never_follows_a_link_and_lists_it_invalid(run, tmp_path):
    subs = tmp_path / "subs"
    (subs / "mallory" / "tag").mkdir(parents=True)
    (subs / "mallory" / "tag" / "run-11111111-1111-1111-1111-111111111111").symlink_to("/")
    (subs / "eve").symlink_to("/")  # a handle folder that is a link is not even walked
    (run / "notes.txt").symlink_to("/etc/os-release")
    catalogue = build_catalogue(subs)
    reasons = {bad["path"]: bad["reason"] for bad in catalogue["invalid"]}
    assert "symbolic link" in reasons["mallory/tag/run-11111111-1111-1111-1111-111111111111"]
    assert "notes.txt: a symbolic link" in reasons[f"alice/mac-m1-8gb/{run.name}"]
    assert catalogue["counts"]["runs"] == 0 and not any(p.startswith("eve") for p in reasons)


def test_catalogue_refuses_a_manifest_whose_ids_do_not_validate(run, tmp_path):
    edit_json(run / "manifest.json", lambda m: m.update(submitter_handle="rel\n"))
    catalogue = build_catalogue(tmp_path / "subs")
    assert "submitter handle 'rel\\n'" in catalogue["invalid"][0]["reason"]
    assert str(tmp_path) not in json.dumps(catalogue)  # reasons name the folder relative to the root


def test_catalogue_out_errors_leave_no_stray_tmp(tmp_path, run, capsys):
    (tmp_path / "outdir").mkdir()
    code, _, _ = run_cli(["catalogue", "--submissions-dir", str(tmp_path / "subs"), "--out", str(tmp_path / "outdir")], capsys)
    assert code == 2 and not list(tmp_path.glob("*.tmp")) and not list((tmp_path / "outdir").iterdir())


def test_submit_copies_nothing_outside_the_clone(run, tmp_path, capsys):
    edit_json(run / "manifest.json", lambda m: m.update(run_id="../../../escaped"))
    code, _, err = run_cli(["submit", str(run), "--repo", str(tmp_path)], capsys)
    assert code == 2 and not list(tmp_path.rglob("*escaped*"))


# ---------------------------------------------------------------------------------------
# §3: hostile data files

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9))


@pytest.fixture
def profile_copy(tmp_path, monkeypatch):
    """A private copy of profiles/ that load_profiles reads instead of the checkout's."""
    folder = tmp_path / "profiles"
    shutil.copytree(REPO_ROOT / "profiles", folder, ignore=shutil.ignore_patterns("local"))
    (folder / "local").mkdir()
    monkeypatch.setattr(profiles, "data_dir", lambda name: folder)
    return folder


def test_alias_bomb_in_rules_is_refused_at_once(profile_copy, capsys):
    rules = (profile_copy / "rules.yaml").read_text()
    bomb = "\n".join("  " + line for line in ALIAS_BOMB.splitlines())  # nine levels of nine: 9^9 items expanded
    (profile_copy / "rules.yaml").write_text(rules + "\nx_bomb:\n" + bomb + "\n")
    started = time.monotonic()
    for argv in (["decide", "--hardware", str(HARDWARE)], ["rules", "check"]):
        code, out, err = run_cli(argv, capsys)
        check_one_line(code, out, err, 2, "rules.yaml (line ")
        assert "alias *a is not allowed" in err
    assert time.monotonic() - started < 1.0


def test_alias_bomb_in_a_local_tuned_profile_is_refused(profile_copy, capsys):
    (profile_copy / "local" / "mac-m1-8gb.yaml").write_text(
        "schema_version: tuned-1\ndevice_tag: mac-m1-8gb\nmodels: &m {}\nother: *m\n")
    code, out, err = run_cli(["decide", "--hardware", str(HARDWARE)], capsys)
    check_one_line(code, out, err, 2, "mac-m1-8gb.yaml (line 4): alias *m is not allowed")


def test_duplicate_key_is_refused_naming_its_line(profile_copy, capsys):
    canonical = (profile_copy / "canonical.yaml").read_text()
    line_of = canonical.splitlines().index(next(li for li in canonical.splitlines() if "temperature:" in li)) + 1
    indent = canonical.splitlines()[line_of - 1].split("temperature")[0]
    patched = canonical.replace(f"{indent}temperature:", f"{indent}temperature: 1.9\n{indent}temperature:", 1)
    (profile_copy / "canonical.yaml").write_text(patched)
    code, out, err = run_cli(["decide", "--hardware", str(HARDWARE)], capsys)
    check_one_line(code, out, err, 2, f"canonical.yaml (line {line_of + 1}): duplicate key 'temperature'")


@pytest.mark.parametrize("value, accepted", [("1e300", True), ("1.5e2", True), ("150", True), (".nan", False),
                                             (".inf", False), ("-.inf", False), ("1e999", False)])
def test_yaml_numbers_are_yaml_1_2_and_finite(value, accepted):
    if accepted:
        assert datafiles.parse_yaml(f"x: {value}") == {"x": float(value)}
    else:
        with pytest.raises(Exception, match="not a finite number"):
            datafiles.parse_yaml(f"x: {value}")


def test_scientific_notation_in_a_tuned_profile_is_a_number(profile_copy, capsys):
    (profile_copy / "local" / "mac-m1-8gb.yaml").write_text(
        "schema_version: tuned-1\ndevice_tag: mac-m1-8gb\nmodels:\n  smollm2-135m-instruct:\n    tokens_per_sec: 1.5e2\n")
    assert profiles.load_profiles().tuned_for("mac-m1-8gb")["models"]["smollm2-135m-instruct"]["tokens_per_sec"] == 150.0
    (profile_copy / "local" / "mac-m1-8gb.yaml").write_text(
        "schema_version: tuned-1\ndevice_tag: mac-m1-8gb\nmodels:\n  smollm2-135m-instruct:\n    tokens_per_sec: .nan\n")
    code, out, err = run_cli(["decide", "--hardware", str(HARDWARE)], capsys)
    check_one_line(code, out, err, 2, "mac-m1-8gb.yaml (line 5): .nan is not a finite number")


def test_hardware_fifo_and_dev_zero_are_refused_without_reading(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    started = time.monotonic()
    for path in (Path("/dev/zero"), tmp_path / "fifo"):
        with pytest.raises(BadInput, match="not a regular file"):
            datafiles.read_json(path)
    assert time.monotonic() - started < 1.0


# ---------------------------------------------------------------------------------------
# §4: failures that are not the input's fault, and what they must not leave behind


def test_report_never_writes_nan(run):
    edit_record(run, first_call(run), lambda r: r.update(tokens_per_sec=1e9, server_tokens_per_sec=1e9))
    report(run, plots=False)
    json.loads((run / "metadata.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in metadata.json"))


def test_runtime_crash_is_a_caveat_in_run_md(run):
    edit_record(run, first_call(run), lambda r: r.update(error="disconnected mid-stream: Server disconnected",
                                                          format_ok=None))
    report(run, plots=False)
    caveats = (run / "run.md").read_text().split("## Caveats")[1].split("##")[0]
    assert "The runtime went away (crashed or was stopped) during 1 call(s)" in caveats


def test_full_disk_is_one_line_and_leaves_no_tmp(run, capsys, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    before = (run / "metadata.json").read_bytes()
    code, out, err = run_cli(["report", str(run), "--no-plots"], capsys)
    check_one_line(code, out, err, 1, "metadata.json: the disk is full")
    assert not list(run.glob("*.tmp")) and (run / "metadata.json").read_bytes() == before


def test_a_write_the_disk_refuses_leaves_no_torn_line(tmp_path, monkeypatch):
    path = tmp_path / "samples.jsonl"
    with Ledger(path) as out:
        out.write({"n": 1})
    real_write = os.write

    def half_then_full(fd, data):
        if len(data) > 4:
            return real_write(fd, bytes(data[:4]))
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(WeeyugaError, match="samples.jsonl: the disk is full"), Ledger(path) as out:
        out.write_many([{"n": 2}, {"n": 3}])
    monkeypatch.undo()
    assert path.read_text() == '{"n": 1}\n'


def test_ctrl_c_on_a_full_disk_is_still_an_interrupt(tmp_path, monkeypatch):
    """The sampler's and the manifest's last writes fail; the interrupt, not the disk, is reported."""
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(KeyboardInterrupt):
        with ResourceSampler(lambda: None, None, tmp_path / "samples.jsonl"):
            monkeypatch.setattr(os, "write", no_space)
            raise KeyboardInterrupt
    monkeypatch.undo()
    assert not (tmp_path / "samples.jsonl").read_bytes()

    def interrupted_run(targets, options, run_dir, run_id, **kwargs):
        with Ledger(run_dir / "run.jsonl") as out:
            out.write({"type": "resume", "at_utc": "now"})
        monkeypatch.setattr(record, "write_json_atomic", lambda path, document: no_space())
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run_suites", interrupted_run)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_recorded([], RunOptions(phases=["hello"]), tmp_path / "run", "r", record.RunContext())


def test_a_run_refused_by_the_load_gate_leaves_no_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(run_module, "load_average", lambda: [9.0, 9.0, 9.0])
    code, out, err = run_cli([a.format(tmp=tmp_path, hw=HARDWARE) for a in RUN], capsys)
    check_one_line(code, out, err, 1, "load average 9.00 is above 4.0")
    assert not list((tmp_path / "subs").rglob("run-*"))


def test_auto_on_a_read_only_disk_fails_before_installing_anything(tmp_path, capsys, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(pipeline.tempfile, "TemporaryFile", read_only)
    monkeypatch.setattr("orchestrator.runtime.llamacpp.verified_llama_server", lambda *a, **k: pytest.fail("installed"))
    argv = [a.format(tmp=tmp_path, hw=HARDWARE) for a in AUTO if a != "--dry-run"]
    code, out, err = run_cli(argv, capsys)
    check_one_line(code, out, err, 1, "cannot write: Read-only file system")


def test_resume_of_a_finished_run_writes_no_second_end(tmp_path, calm_machine):
    server, _, url = start_in_thread()
    try:
        targets = pipeline.byo_targets(url, ["fake"], "llamacpp", "node:llamacpp", "node")
        run_suites(targets, RunOptions(phases=["hello"], runs=1), tmp_path, RUN_ID)
        run_suites(targets, RunOptions(phases=["hello"], runs=1), tmp_path, RUN_ID, resume=True)  # killed while reporting
    finally:
        server.shutdown()
    kinds = [r["type"] for r in read_records(tmp_path / "run.jsonl")]
    assert kinds.count("end") == 1 and "resume" not in kinds and read_state(tmp_path / "run.jsonl").finished


def test_tune_on_ollama_fails_one_candidate_when_unload_fails(monkeypatch):
    from orchestrator.runtime import ollama_api as ollama
    from orchestrator.flows import tune

    def unreachable(base_url, tag, wait_s=30.0):
        raise WeeyugaError(f"ollama at {base_url}: unloading {tag} failed: ConnectError: refused")
    monkeypatch.setattr(ollama, "unload", unreachable)

    class Running:
        base_url, log_path, pid = "http://127.0.0.1:9", Path("/nonexistent.log"), None
        defn = type("Defn", (), {"knobs": {"num_ctx": {"option": "num_ctx"}, "ngl": {"option": "num_gpu"}}})()

    plan = type("PlanStub", (), {"num_ctx": 2048, "temperature": 0.1})()
    prober = tune.ollama_prober(plan, Running(), "smollm2:135m")
    result = prober(tune.Candidate(ngl=3))
    assert not result.ok and result.failure == "unload" and "ConnectError" in result.log_tail


def test_ollama_http_errors_are_one_line(monkeypatch):
    import httpx

    from orchestrator.runtime import ollama_api as ollama

    def refuse(*args, **kwargs):
        raise httpx.ConnectError("connection refused")
    monkeypatch.setattr(httpx, "get", refuse)
    monkeypatch.setattr(httpx, "post", refuse)
    for call in (lambda: ollama.digest("http://127.0.0.1:9", "m"), lambda: ollama.loaded("http://127.0.0.1:9"),
                 lambda: ollama.unload("http://127.0.0.1:9", "m")):
        with pytest.raises(WeeyugaError, match="ollama at http://127.0.0.1:9: .* failed: ConnectError"):
            call()


def test_a_hostile_field_name_keeps_the_schema_message_on_one_line():
    """A key holding a newline (hypothesis found one in a manifest) is quoted in the field path."""
    from orchestrator.core.datafiles import field_path, validate

    assert field_path(["runtime", "\n", 2]) == "runtime.'\\n'[2]"
    with pytest.raises(BadInput) as caught:
        validate({"runtime": {"\n": 1}}, "manifest", "m.json")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("m.json: field ")


# ---------------------------------------------------------------------------------------
# The quality readers (report, inspect, compare, rescore) on a hostile run folder (issue #25 §3)


@pytest.fixture(scope="module")
def quality_run(tmp_path_factory):
    """A run folder with quality verdicts and saved responses, made once by `quality run` on the fake server."""
    srv, state, url = start_in_thread()
    state.tool_calls = [("get_weather", {"city": "Paris"})]
    root = tmp_path_factory.mktemp("quality") / "subs"
    try:
        assert main(["quality", "run", "--packs", "toolcall", "--target-url", url, "--models", "fake-tools",
                     "--engine", "llamacpp", "--submissions-dir", str(root), "--submitter-handle", "tester",
                     "--device-tag", "node", "--hardware", "tests/fixtures/hardware/linux-arc-a380-6gb.json"]) == 0
    finally:
        srv.shutdown()
    (made,) = root.glob("tester/node/run-*")
    assert main(["report", str(made), "--no-plots"]) == 0  # compare reads metadata.json
    return made


@pytest.fixture
def qrun(quality_run, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(quality_run, target)
    return target


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def with_line(path: Path, index: int, change) -> None:
    """Replace line `index` of a JSONL file by change(record) (a dict or a raw string)."""
    lines = path.read_text().splitlines()
    picked = [i for i, line in enumerate(lines) if json.loads(line).get("type") == "quality"][0] if index is None else index
    new = change(json.loads(lines[picked]))
    lines[picked] = new if isinstance(new, str) else json.dumps(new)
    path.write_text("\n".join(lines) + "\n")


QUALITY_READERS = {
    "report": lambda run: ["report", str(run), "--no-plots"],
    "inspect": lambda run: ["quality", "inspect", str(run)],
    "rescore": lambda run: ["quality", "rescore", str(run)],
    "compare": lambda run: ["compare", str(run), str(run), str(run), str(run)],
}
HOSTILE_LEDGER_LINES = {
    "nested 3000 deep": (lambda r: json.dumps({**r, "detail": "x"})[:-1] + ', "extra": ' + deep(3000) + "}", "nested deeper"),
    "passed is a string": (lambda r: {**r, "passed": "yes"}, "field passed"),
    "no failure_mode": (lambda r: {k: v for k, v in r.items() if k != "failure_mode"}, "failure_mode"),
    "a line past the line limit": (lambda r: {**r, "detail": "x" * (datafiles.LINE_LIMIT_BYTES + 10)}, "longer than"),
}


@pytest.mark.parametrize("reader", sorted(QUALITY_READERS))
@pytest.mark.parametrize("case", sorted(HOSTILE_LEDGER_LINES))
def test_quality_readers_validate_every_line_they_use(qrun, capsys, reader, case):
    change, needle = HOSTILE_LEDGER_LINES[case]
    with_line(qrun / "run.jsonl", None, change)
    before = (qrun / "run.jsonl").read_bytes()
    code, out, err = run_cli(QUALITY_READERS[reader](qrun), capsys)
    check_one_line(code, out, err, 2, needle)
    assert (qrun / "run.jsonl").read_bytes() == before


@pytest.mark.parametrize("reader", ["inspect", "rescore"])
@pytest.mark.parametrize("message, needle", [('"message": 5', "field message"), ('"message": ' + deep(3000), "nested deeper")])
def test_a_hostile_saved_response_is_one_line(qrun, capsys, reader, message, needle):
    path = qrun / "responses.jsonl"
    lines = path.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if json.loads(line)["key"][0] == "quality")
    key = json.loads(lines[first])["key"]
    lines[first] = '{"key": ' + json.dumps(key) + ", " + message + ', "finish_reason": "stop"}'
    path.write_text("\n".join(lines) + "\n")
    code, out, err = run_cli(QUALITY_READERS[reader](qrun), capsys)
    check_one_line(code, out, err, 2, needle)


@pytest.mark.parametrize("change, needle", [(lambda r: {**r, "language": 5}, "field language"),
                                            (lambda r: {k: v for k, v in r.items() if k != "outcome"}, "outcome")])
def test_report_on_a_hostile_agent_run_line_is_one_line(qrun, capsys, change, needle):
    path = qrun / "run.jsonl"
    lines = path.read_text().splitlines()
    agent_run = {"type": "agent_run", "task": "py-slugify", "task_version": 1, "workflow": "ralph", "attempt": 1,
                 "cell_id": json.loads(lines[-2])["cell_id"], "phase": "agent", "language": "python", "kind": "fix",
                 "outcome": "completed", "reason": "gate passed", "passes": 1, "duration_s": 1.0, "tool_calls": 2,
                 "completed_at": 1, "pass_at_1": None, "pass_at_2": None}
    path.write_text("\n".join(lines[:-1] + [json.dumps(change(agent_run)), lines[-1]]) + "\n")
    code, out, err = run_cli(["report", str(qrun), "--no-plots"], capsys)
    check_one_line(code, out, err, 2, needle)


def test_rescore_never_appends_through_a_linked_ledger(qrun, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere.jsonl"
    shutil.move(qrun / "run.jsonl", elsewhere)
    (qrun / "run.jsonl").symlink_to(elsewhere)
    before = elsewhere.read_bytes()
    code, out, err = run_cli(["quality", "rescore", str(qrun)], capsys)
    check_one_line(code, out, err, 2, "symbolic link")
    assert elsewhere.read_bytes() == before


def test_rescore_keeps_an_end_line_that_lost_its_newline(qrun, capsys):
    path = qrun / "run.jsonl"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    assert json.loads(path.read_text().splitlines()[-1])["type"] == "end"
    code, out, err = run_cli(["quality", "rescore", str(qrun)], capsys)
    assert code == 0, err
    types = [json.loads(line)["type"] for line in path.read_text().splitlines()]
    assert "end" in types and types[-1] == "quality_rescore"


def test_compare_reports_a_bad_baseline_folder_and_skips_it(qrun, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(qrun, bad)
    with_line(bad / "run.jsonl", None, lambda r: {**r, "passed": "yes"})
    code, out, err = run_cli(["compare", str(qrun), str(qrun), str(qrun), str(bad), str(qrun)], capsys)
    assert "Traceback" not in err and code == 0, err
    assert f"skipped {bad / 'run.jsonl'}" in out and "field passed" in out


@pytest.mark.parametrize("make", ["symlink", "fifo", "folder"])
def test_the_atomic_writer_never_writes_through_a_link_or_onto_a_non_regular_file(tmp_path, make):
    from orchestrator.core.atomic import write_text_atomic

    target, outside = tmp_path / "out.json", tmp_path / "outside"
    outside.write_text("keep")
    {"symlink": lambda: target.symlink_to(outside), "fifo": lambda: os.mkfifo(target), "folder": target.mkdir}[make]()
    with pytest.raises(BadInput, match="refusing"):
        write_text_atomic(target, "new")
    assert outside.read_text() == "keep" and [p.name for p in tmp_path.iterdir()] == sorted(["out.json", "outside"]) or \
        sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "outside"]


def test_a_ledger_past_the_record_limit_is_refused_in_one_line_before_it_fills_memory(run, capsys, monkeypatch):
    """report and resume hold a run's records in memory: past the limit they stop reading at once
    (a 1e6-line ledger then costs what the limit costs, not 6 KB a line)."""
    lines = (run / "run.jsonl").read_bytes().splitlines(keepends=True)
    monkeypatch.setattr(datafiles, "LEDGER_RECORD_LIMIT", len(lines) - 1)
    code, out, err = run_cli(["report", str(run), "--no-plots"], capsys)
    check_one_line(code, out, err, 2, f"more than {len(lines) - 1:,} records")
    with pytest.raises(BadInput, match="records"):
        read_state(run / "run.jsonl")
    monkeypatch.setattr(datafiles, "LEDGER_RECORD_LIMIT", len(lines))
    assert len(read_state(run / "run.jsonl").records) == len(lines)
