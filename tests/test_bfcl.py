"""BFCL as quality packs (#27): `quality get bfcl`, the bfcl-* packs, BFCL's request shape, and
verdicts equal to BFCL's own checker's.

Unit tests use BFCL-format fixtures written for weeyuga (tests/fixtures/bfcl/data), packed into a
wheel-shaped zip; tests/fixtures/bfcl/bfcl_verdicts.json holds BFCL's own checker's verdict on each
response tests/fakes/bfcl_responses.py builds for them, recorded with
`python3 benchmarks/bench_quality_parity.py --record-fixtures tests/fixtures/bfcl`.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.core import datafiles
from orchestrator.core.ledger import read_records
from orchestrator.evaluate.quality import packs
from orchestrator.evaluate.quality.bfcl import source as bfcl_source
from orchestrator.evaluate.quality.bfcl.literals import read_java, read_javascript
from orchestrator.evaluate.quality.runner import negative_control
from orchestrator.evaluate.quality.verifiers import verify
from tests.fakes.bfcl_responses import answer_calls, message, variants
from tests.fakes.openai_server import start_in_thread

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bfcl"
VERDICTS = json.loads((FIXTURES / "bfcl_verdicts.json").read_text())
HARDWARE = "tests/fixtures/hardware/linux-arc-a380-6gb.json"


def fixture_wheel(path: Path) -> Path:
    """The fixtures laid out as the wheel lays its data out, plus code that must not be extracted."""
    with zipfile.ZipFile(path, "w") as wheel:
        for file in sorted((FIXTURES / "data").rglob("*.json")):
            wheel.write(file, "bfcl_eval/data/" + file.relative_to(FIXTURES / "data").as_posix())
        wheel.writestr("bfcl_eval/eval_checker/ast_checker.py", "raise SystemExit('never extracted')\n")
    return path


@pytest.fixture()
def wheel(tmp_path, monkeypatch):
    """A pinned source whose sha256 is the fixture wheel's; the CLI reads it as suites/bfcl/source.json."""
    path = fixture_wheel(tmp_path / "bfcl_eval-0.0.1-py3-none-any.whl")
    document = json.loads((FIXTURES / "source.json").read_text())
    document["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    pinned = tmp_path / "source.json"
    pinned.write_text(json.dumps(document))
    monkeypatch.setattr(bfcl_source, "source_path", lambda: pinned)
    return path


@pytest.fixture()
def fetched(wheel, capsys):
    assert main(["quality", "get", "bfcl", "--wheel", str(wheel)]) == 0
    capsys.readouterr()
    return bfcl_source.load_source()


def test_the_pinned_source_validates_and_names_an_apache_licence():
    source = bfcl_source.load_source()
    assert source.package == "bfcl-eval" and len(source.sha256) == 64 and source.licence.startswith("Apache-2.0")
    assert {c.pack for c in source.categories} >= {"bfcl-simple", "bfcl-multiple", "bfcl-parallel", "bfcl-parallel-multiple",
                                                   "bfcl-irrelevance", "bfcl-live-simple", "bfcl-java", "bfcl-javascript"}
    datafiles.load(FIXTURES / "source.json", "bfcl-source")


def test_get_extracts_only_the_data_files_and_refuses_a_wheel_with_another_sha256(wheel, capsys, tmp_path):
    assert main(["quality", "get", "bfcl", "--wheel", str(wheel)]) == 0
    root = bfcl_source.data_root(bfcl_source.load_source())
    extracted = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert "BFCL_v4_simple_python.json" in extracted and "possible_answer/BFCL_v4_simple_python.json" in extracted
    assert not any(name.endswith(".py") for name in extracted)
    capsys.readouterr()
    assert main(["quality", "get", "bfcl"]) == 0  # fetched already: no download
    assert "already in" in capsys.readouterr().out
    other = fixture_wheel(tmp_path / "other.whl")
    with zipfile.ZipFile(other, "a") as archive:
        archive.writestr("bfcl_eval/extra.txt", "tampered")
    assert main(["quality", "get", "bfcl", "--wheel", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sha256" in err and "refusing" in err


def test_without_the_data_a_bfcl_pack_is_one_line_exit_2_and_modes_leave_bfcl_out(wheel, capsys):
    assert "bfcl-simple" not in packs.pack_ids(mode="full")
    assert main(["quality", "run", "--negative-control", "--packs", "bfcl-simple"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "quality get bfcl" in err


def test_packs_are_listed_part_of_full_and_sampled_in_medium(fetched, capsys):
    assert main(["quality", "list"]) == 0
    out = capsys.readouterr().out
    assert "bfcl-simple" in out and "4 scenarios" in out and "toolcall" in out
    full = packs.pack_ids(mode="full")
    assert full[:6] == packs.PACK_ORDER and "bfcl-java" in full and "bfcl-irrelevance" in full
    assert "bfcl-simple" not in packs.pack_ids(mode="quick")
    medium = {p.id: p for p in packs.selected_packs(None, "medium")}
    assert len(medium["bfcl-simple"].scenarios) == fetched.medium_sample == 1
    assert len(packs.selected_packs("bfcl-simple", "medium")[0].scenarios) == 4  # --packs runs the whole pack


def test_requests_are_made_as_bfcls_openai_handler_makes_them(fetched):
    pack = packs.load_pack("bfcl-simple")
    circle = pack.scenario("simple_python_0")
    (tool,) = circle.tools
    function = tool["function"]
    assert tool["type"] == "function" and function["name"] == "geometry_circle_area"  # "." is not allowed by OpenAI
    assert function["description"].endswith("Note that the provided function is in Python 3 syntax.")
    assert function["parameters"]["type"] == "object"
    radius = function["parameters"]["properties"]["radius"]
    assert radius["type"] == "number" and radius["format"] == "float" and radius["description"].endswith("This is a float type value.")
    guest = packs.load_pack("bfcl-simple").scenario("simple_python_3").tools[0]["function"]["parameters"]["properties"]["guest"]
    assert guest["type"] == "object" and guest["properties"]["vip"]["type"] == "boolean"
    assert list(circle.messages) == [{"role": "user", "content": "What is the area of a circle with radius 3 meters?"}]
    live = packs.load_pack("bfcl-live-simple").scenarios[0]
    assert live.messages[0]["role"] == "system"  # the question's own system prompt, none added
    java = packs.load_pack("bfcl-java").scenario("simple_java_1").tools[0]["function"]["parameters"]["properties"]
    assert all(spec["type"] == "string" for spec in java.values()) and "items" not in java["hosts"]
    assert "Java ArrayList type parameter in string representation" in java["hosts"]["description"]


def test_every_fixture_response_gets_bfcls_own_verdict(fetched):
    judged = 0
    for pack_id in packs.bfcl_pack_ids():
        for scenario in packs.load_pack(pack_id).scenarios:
            for label, answer in variants(scenario.verifier):
                expected = VERDICTS[f"{scenario.id}/{label}"]
                verdict = verify(scenario, answer, "stop")
                assert verdict.passed == expected, (scenario.id, label, verdict.detail)
                judged += 1
    assert judged == len(VERDICTS)


def test_bfcl_rules_int_for_float_optional_marker_order_free_parallel_and_irrelevance(fetched):
    circle = packs.load_pack("bfcl-simple").scenario("simple_python_0")
    assert verify(circle, message([("geometry_circle_area", {"radius": 3})]), "stop").passed  # int accepted for float
    assert verify(circle, message([("geometry_circle_area", {"radius": 3.0, "units": "M"})]), "stop").passed  # case-free
    assert not verify(circle, message([("geometry_circle_area", {"radius": "3"})]), "stop").passed
    assert not verify(circle, message([("geometry.circle_area", {"radius": 3.0})]), "stop").passed  # compared as sent
    parallel = packs.load_pack("bfcl-parallel").scenario("parallel_1")
    assert verify(parallel, message([("math_factorial", {"n": 4}), ("math_factorial", {"n": 3})]), "stop").passed
    assert not verify(parallel, message([("math_factorial", {"n": 4}), ("math_factorial", {"n": 4})]), "stop").passed
    irrelevance = packs.load_pack("bfcl-irrelevance").scenarios[0]
    assert verify(irrelevance, message(content="Shakespeare."), "stop").passed
    assert not verify(irrelevance, message([("math_factorial", {"n": 1})]), "stop").passed


def test_java_and_javascript_values_are_read_as_literals():
    assert read_java("250L", "long") == 250 and read_java("250", "long") == "250"
    assert read_java("1.5f", "float") == 1.5 and read_java("true", "boolean") is True
    assert read_java('new ArrayList<>(Arrays.asList("a", "b"))', "ArrayList", "String") == ["a", "b"]
    assert read_java('new HashMap<String, String>() {{ put("mode", "fast"); }}', "HashMap") == {"mode": "fast"}
    assert read_java('new String[]{"a"}', "Array", "String") == ['"a"']  # BFCL keeps an array's string quotes
    assert read_javascript("'main'", "String") == "main" and read_javascript("12n", "Bigint") == 12
    assert read_javascript("[1, 'two', true]", "array") == [1, "two", True]
    assert read_javascript("{count: 0, tags: [1]}", "dict") == {"count": 0, "tags": [1]}
    assert read_javascript("1e3", "float") == "1e3"  # no exponent form: stays text


def test_the_negative_control_leaves_out_irrelevance_and_relevance_which_junk_passes_by_definition(fetched):
    control = negative_control(packs.load_packs(packs.bfcl_pack_ids()))
    assert control.passes == ()
    assert control.checked == 5 * sum(len(p.scenarios) for p in packs.load_packs(packs.bfcl_pack_ids())
                                      if p.id not in ("bfcl-irrelevance", "bfcl-live-relevance"))


@pytest.mark.parametrize("label", ["answer", "value-changed#0", "renamed"])
def test_quality_run_against_a_server_answering_with_answers_near_misses_and_wrong_names(fetched, tmp_path, label):
    """Each question answered over HTTP (streamed tool calls) as `label` says: the run's verdicts
    are BFCL's checker's verdicts on the same answers."""
    srv, state, url = start_in_thread()
    try:
        expected = {}
        ids = [p for p in packs.bfcl_pack_ids() if p not in ("bfcl-irrelevance", "bfcl-live-relevance")]
        for pack in packs.load_packs(ids):
            for scenario in pack.scenarios:
                answer = dict(variants(scenario.verifier)).get(label)
                if answer is None:
                    continue
                calls = [(c["function"]["name"], c["function"]["arguments"]) for c in answer["tool_calls"]]
                state.replies[scenario.messages[-1]["content"]] = calls
                expected[(pack.id, scenario.id)] = VERDICTS[f"{scenario.id}/{label}"]
        root = tmp_path / "subs"
        assert main(["quality", "run", "--packs", ",".join(ids), "--target-url", url, "--models", "fake-tools",
                     "--engine", "llamacpp", "--submissions-dir", str(root), "--submitter-handle", "tester",
                     "--device-tag", "node", "--hardware", HARDWARE]) == 0
    finally:
        srv.shutdown()
    (run_dir,) = root.glob("tester/node/run-*")
    records = [r for r in read_records(run_dir / "run.jsonl") if r["type"] == "quality"]
    judged = {(r["pack"], r["scenario"]): r["passed"] for r in records if (r["pack"], r["scenario"]) in expected}
    assert judged == expected
    assert all(r["verifier"] == "bfcl" for r in records)
    sent = {json.dumps(request["tools"], sort_keys=True) for request in state.requests if request.get("tools")}
    assert all('"geometry.circle_area"' not in tools for tools in sent)


def test_answer_calls_fill_only_what_the_answer_requires(fetched):
    circle = packs.load_pack("bfcl-simple").scenario("simple_python_0")
    assert answer_calls(circle.verifier) == [("geometry_circle_area", {"radius": 3.0, "units": "meters"})]


@pytest.mark.integration
def test_get_bfcl_for_real_from_pypi_and_every_category_loads(capsys):
    """The pinned wheel from PyPI (the real cache keeps it between runs); counts as the issue quotes them."""
    assert main(["quality", "get", "bfcl"]) == 0
    sizes = {p.id: len(p.scenarios) for p in packs.load_packs(packs.bfcl_pack_ids())}
    assert sizes["bfcl-simple"] == 400 and sizes["bfcl-multiple"] == 200 and sizes["bfcl-parallel"] == 200
    assert sizes["bfcl-parallel-multiple"] == 200 and sizes["bfcl-irrelevance"] == 240 and sizes["bfcl-java"] == 100
    assert sizes["bfcl-javascript"] == 50 and sizes["bfcl-live-simple"] == 258 and sizes["bfcl-live-multiple"] == 1053
    assert sizes["bfcl-live-parallel"] == 16 and sizes["bfcl-live-parallel-multiple"] == 24
    assert sizes["bfcl-live-irrelevance"] == 884


def test_run_md_counts_bfcl_failures_by_mode_instead_of_listing_thousands(fetched, tmp_path, capsys):
    srv, state, url = start_in_thread()
    try:
        root = tmp_path / "subs"
        assert main(["quality", "run", "--packs", "bfcl-simple,bfcl-multiple", "--target-url", url, "--models", "fake-tools",
                     "--engine", "llamacpp", "--submissions-dir", str(root), "--submitter-handle", "tester",
                     "--device-tag", "node", "--hardware", HARDWARE]) == 0
    finally:
        srv.shutdown()
    (run_dir,) = root.glob("tester/node/run-*")
    assert main(["report", str(run_dir), "--no-plots"]) == 0
    text = (run_dir / "run.md").read_text()
    assert "- bfcl-simple: 4 failed (" in text and "simple_python_0" not in text
