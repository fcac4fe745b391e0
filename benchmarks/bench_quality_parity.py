"""Verdict parity with the reference checkers (#27 §2), response by response.

    python3 benchmarks/bench_quality_parity.py                 # BFCL and IFEval, ~10 minutes on 2 busy cores
    python3 benchmarks/bench_quality_parity.py --skip-ifeval --summary benchmarks/results/quality_parity.md

BFCL: every question of every bfcl-* pack answered with its possible answers and their near
misses (tests/fakes/bfcl_responses.py); weeyuga's verifier and BFCL's own evaluation functions
(bfcl-eval installed --no-deps in a throwaway venv, benchmarks/bfcl_reference_worker.py) judge the
same messages. The tools weeyuga sends are compared with the ones BFCL's OpenAI handler compiles.
IFEval: benchmarks/ifeval_parity.py. Prints per-category agreement and every disagreement; writes
the summary as Markdown. Needs PyPI the first time (the venv, and the BFCL data unless fetched).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.core.procs import run_captured  # noqa: E402
from orchestrator.evaluate.quality.bfcl.source import fetch, fetched, load_source  # noqa: E402
from orchestrator.evaluate.quality.packs import bfcl_pack_ids, load_pack  # noqa: E402
from orchestrator.evaluate.quality.verifiers import verify  # noqa: E402
from tests.fakes.bfcl_responses import variants  # noqa: E402

HERE = Path(__file__).resolve().parent
REFERENCE_MODEL = "gpt-4o-2024-11-20-FC"  # an OpenAI function-calling entry of BFCL's model table
# What BFCL's checker imports at module level that we let it have for real (the rest are stand-ins).
# Response kinds one would expect a checker to pass, by BFCL rule; every other kind is a near miss.
# (JSON text for Java/JavaScript values is expected to fail: they are to be written as literals.)
EXPECTED_PASS = {"irrelevance": {"prose", "empty"}, "relevance": {"call-empty-args", "call-required-args"},
                 "ast": {"answer", "answer-last-options", "optional-omitted", "string-normalised", "reordered"}}
CHECKER_DEPENDENCIES = ["tenacity", "overrides", "python-dotenv", "tqdm", "filelock"]


def venv(path: Path, packages: list[str]) -> Path:
    python = path / "bin" / "python"
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(path)], "make the venv")
    _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages], "pip install")
    return python


def _run(argv: list[str], what: str, timeout: float = 1800) -> str:
    done = run_captured(argv, timeout=timeout)
    if done.returncode != 0:
        sys.exit(f"{what} failed ({done.returncode}): {done.stderr.strip()[-600:]}")
    return done.stdout


def bfcl_parity(python: Path, scratch: Path) -> tuple[list[str], bool]:
    source = load_source()
    cases, ours, tools = [], {}, {}
    for pack_id in bfcl_pack_ids():
        pack = load_pack(pack_id)
        category = source.category(pack_id).category
        for scenario in pack.scenarios:
            n = len(cases)
            cases.append({"n": n, "category": category, "id": scenario.id, "tools_of": True})
            tools[n] = (pack_id, scenario)
            for label, message in variants(scenario.verifier):
                n = len(cases)
                cases.append({"n": n, "category": category, "id": scenario.id, "message": message})
                ours[n] = (pack_id, scenario.id, label.split("#")[0], verify(scenario, message, "stop"))
    cases_path, out_path = scratch / "bfcl-cases.jsonl", scratch / "bfcl-verdicts.jsonl"
    cases_path.write_text("".join(json.dumps(c) + "\n" for c in cases))
    started = time.monotonic()
    _run([str(python), str(HERE / "bfcl_reference_worker.py"), str(cases_path), str(out_path), REFERENCE_MODEL],
         "BFCL's checker")
    reference = {r["n"]: r for r in map(json.loads, out_path.read_text().splitlines())}
    print(f"BFCL's checker judged {len(reference)} cases in {time.monotonic() - started:.0f} s")

    per_pack = defaultdict(Counter)
    per_label = defaultdict(Counter)
    disagreements, raised, surprises = [], [], defaultdict(list)
    for n, (pack_id, scenario_id, label, verdict) in ours.items():
        theirs = reference[n]
        if theirs["valid"] is None:
            raised.append(f"{pack_id} {scenario_id} [{label}]: BFCL {theirs['error_type']}; weeyuga {verdict.failure_mode}")
            per_pack[pack_id]["raised"] += 1
            continue
        agree = theirs["valid"] == verdict.passed
        per_pack[pack_id]["agree" if agree else "disagree"] += 1
        per_pack[pack_id]["bfcl_pass"] += theirs["valid"]
        per_label[label]["agree" if agree else "disagree"] += 1
        per_label[label]["bfcl_pass"] += theirs["valid"]
        rule = check if (check := load_pack_check(pack_id)) in EXPECTED_PASS else "ast"
        if theirs["valid"] != (label in EXPECTED_PASS[rule]):
            surprises[(pack_id, label, "passes" if theirs["valid"] else f"fails ({theirs['error_type']})")].append(scenario_id)
        if not agree:
            disagreements.append(f"{pack_id} {scenario_id} [{label}]: BFCL {'pass' if theirs['valid'] else 'fail'} "
                                 f"({theirs['error_type']}); weeyuga {'pass' if verdict.passed else 'fail'} ({verdict.detail[:120]})")
    request_mismatch = []
    for n, (pack_id, scenario) in tools.items():
        theirs = reference[n]
        if (theirs["tools"] or None) != (list(scenario.tools) if scenario.tools else None) or theirs["messages"] != list(scenario.messages):
            request_mismatch.append(f"{pack_id} {scenario.id}")

    judged = sum(c["agree"] + c["disagree"] for c in per_pack.values())
    agreed = sum(c["agree"] for c in per_pack.values())
    lines = ["## BFCL (bfcl-eval " + source.version + ", its own `_evaluate_single_ast_entry` / `_evaluate_single_relevance_entry`)",
             "", f"Responses judged by both: **{judged}**; agreement **{agreed}/{judged} ({100 * agreed / max(judged, 1):.2f}%)**; "
             f"BFCL's checker raised on {len(raised)}.",
             f"Requests (tools and messages) identical to what BFCL's OpenAI handler sends: "
             f"{len(tools) - len(request_mismatch)}/{len(tools)} questions.", "",
             "| pack | judged | agree | disagree | BFCL passes | raised |", "|---|---:|---:|---:|---:|---:|"]
    for pack_id, c in per_pack.items():
        lines.append(f"| {pack_id} | {c['agree'] + c['disagree']} | {c['agree']} | {c['disagree']} | {c['bfcl_pass']} | {c['raised']} |")
    lines += ["", "| response kind | judged | agree | BFCL passes |", "|---|---:|---:|---:|"]
    for label, c in sorted(per_label.items()):
        lines.append(f"| {label} | {c['agree'] + c['disagree']} | {c['agree']} | {c['bfcl_pass']} |")
    lines += ["", f"Disagreements ({len(disagreements)}):", ""] + [f"- {d}" for d in disagreements[:60]]
    if len(disagreements) > 60:
        lines.append(f"- … {len(disagreements) - 60} more")
    lines += ["", f"Where BFCL's checker surprises ({sum(map(len, surprises.values()))} responses: a possible answer "
              "rejected, a near miss accepted; weeyuga matches it):", ""]
    lines += [f"- {pack_id} [{label}] BFCL {verdict}: {len(ids)}, e.g. {', '.join(ids[:4])}"
              for (pack_id, label, verdict), ids in surprises.items()]
    lines += ["", f"BFCL's checker raised ({len(raised)}; weeyuga's verdict stands, listed for the record):", ""]
    lines += [f"- {r}" for r in raised[:20]] + ([f"- … {len(raised) - 20} more"] if len(raised) > 20 else [])
    lines += ["", f"Request mismatches ({len(request_mismatch)}): {', '.join(request_mismatch[:20]) or 'none'}"]
    return lines, not disagreements and not request_mismatch


def record_fixture_verdicts(python: Path, fixtures: Path) -> int:
    """BFCL's verdict on every variant of every fixture question: tests/test_bfcl.py holds ours to them."""
    cases, keys = [], []
    for path in sorted((fixtures / "data").glob("BFCL_v4_*.json")):
        category = path.name[len("BFCL_v4_"):-len(".json")]
        language = "java" if "java" in category and "javascript" not in category else "javascript" if "javascript" in category else "python"
        answer_path = fixtures / "data" / "possible_answer" / path.name
        answers = {e["id"]: e["ground_truth"] for e in map(json.loads, answer_path.read_text().splitlines())} if answer_path.exists() else {}
        for entry in map(json.loads, path.read_text().splitlines()):
            spec = {"functions": entry["function"], "answers": answers.get(entry["id"]), "language": language}
            for label, message in variants(spec):
                cases.append({"n": len(cases), "category": category, "id": entry["id"], "message": message})
                keys.append(f"{entry['id']}/{label}")
    with tempfile.TemporaryDirectory(prefix="weeyuga-parity-") as scratch:
        cases_path, out_path = Path(scratch) / "cases.jsonl", Path(scratch) / "verdicts.jsonl"
        cases_path.write_text("".join(json.dumps(c) + "\n" for c in cases))
        _run([str(python), str(HERE / "bfcl_reference_worker.py"), str(cases_path), str(out_path), REFERENCE_MODEL,
              str(fixtures / "data")], "BFCL's checker")
        verdicts = {keys[r["n"]]: r["valid"] for r in map(json.loads, out_path.read_text().splitlines())}
    (fixtures / "bfcl_verdicts.json").write_text(json.dumps(verdicts, indent=0, sort_keys=True) + "\n")
    print(f"recorded {len(verdicts)} verdicts of BFCL's checker in {fixtures / 'bfcl_verdicts.json'}")
    return 0


def load_pack_check(pack_id: str) -> str:
    return load_source().category(pack_id).check


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=str(Path(tempfile.gettempdir()) / "weeyuga-parity-venv"))
    parser.add_argument("--summary", help="write the Markdown summary here too")
    parser.add_argument("--skip-ifeval", action="store_true")
    parser.add_argument("--skip-bfcl", action="store_true")
    parser.add_argument("--record-fixtures", metavar="DIR",
                        help="record BFCL's verdicts on the test fixtures' responses into DIR/bfcl_verdicts.json, and stop")
    args = parser.parse_args()
    if args.record_fixtures:
        python = venv(Path(args.venv), ["--no-deps", f"{load_source().package}=={load_source().version}"])
        venv(Path(args.venv), CHECKER_DEPENDENCIES)
        return record_fixture_verdicts(python, Path(args.record_fixtures))
    source = load_source()
    if not fetched(source):
        fetch(source)
    lines, ok = ["# Verifier parity with the reference checkers", ""], True
    with tempfile.TemporaryDirectory(prefix="weeyuga-parity-") as scratch:
        if not args.skip_bfcl:
            python = venv(Path(args.venv), ["--no-deps", f"{source.package}=={source.version}"])
            venv(Path(args.venv), CHECKER_DEPENDENCIES)
            bfcl_lines, bfcl_ok = bfcl_parity(python, Path(scratch))
            lines += bfcl_lines + [""]
            ok &= bfcl_ok
        if not args.skip_ifeval:
            from ifeval_parity import ifeval_parity  # a sibling script, imported only when IFEval is asked for

            ifeval_lines, ifeval_ok = ifeval_parity(Path(args.venv), Path(scratch))
            lines += ifeval_lines
            ok &= ifeval_ok
    text = "\n".join(lines) + "\n"
    print(text)
    if args.summary:
        Path(args.summary).write_text(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
