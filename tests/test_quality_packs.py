"""Quality packs: schema, checksum pins, sizes and levels, and the positive and negative controls.

Every scenario's golden answer must pass; every junk answer (empty, a fixed phrase, `{}`, the
prompt echoed back, the prompt only in the reasoning channel, a tool call with empty arguments)
must fail, scenario by scenario and through the entry functions as a junk "server".
"""

import json
import shutil

import pytest

from orchestrator.core.errors import BadInput
from orchestrator.evaluate.quality.packs import MODES, PACK_ORDER, load_pack, load_packs, pack_ids, packs_dir
from orchestrator.evaluate.quality.runner import JUNK_KINDS, junk_message, negative_control, run_pack_scenarios
from orchestrator.evaluate.quality.verifiers import verify
from tests.quality_controls import goldens, junk_messages, message

# A changed pack needs a new version: bump it in the meta line, then update its pin here.
PINS = {
    "toolcall": (1, "c9cb7f7ff9a9396012d0c3716a96f33d51eb46aaf1b28194e324a0bd0c2c6272"),
    "instruct": (1, "77153d034e29b4ae3f284aa9d3c0d74136201325e2278fdec21df1a107f20d43"),
    "struct": (2, "2b87fa0da8ce25ad4c80157ff18c94942a19e5f9a12e481f4375bc053f68517c"),
    "extract": (1, "3b8574cb293f344007b6056ae89e2002538c455e7ee5c9dd4af4fc3af6476e6a"),
    "math": (1, "0191cc03ab5b8a270df5b96a3132dd73860f869d223af25d1f5e3eeb137610ff"),
    "codeexec": (1, "60dab41155d78d89978f1b8a99e25b2756a2888a5080aad81a6b3fd30bc7e1a7"),
}
PACKS = load_packs(PACK_ORDER)
GOLDENS = goldens()
SCENARIOS = [(pack, scenario) for pack in PACKS for scenario in pack.scenarios]
IDS = [f"{pack.id}/{scenario.id}" for pack, scenario in SCENARIOS]


@pytest.mark.parametrize("pack", PACKS, ids=PACK_ORDER)
def test_pack_is_pinned_by_version_and_checksum(pack):
    assert (pack.version, pack.sha256) == PINS[pack.id], (
        f"suites/packs/{pack.id}.jsonl changed: bump its version and update the pin")


@pytest.mark.parametrize("pack", PACKS, ids=PACK_ORDER)
def test_pack_size_levels_and_kind(pack):
    assert len(pack.scenarios) >= 12
    levels = [s.level for s in pack.scenarios]
    assert levels.count("easy") >= 3, "a 135M-270M model must be able to pass some"
    assert levels.count("hard") >= 4, "a 30B model must not be at 100%"
    kinds = {s.kind for s in pack.scenarios}
    assert len(kinds) == 1 and pack.sampling["temperature"] == 0


def test_modes_and_pack_selection():
    assert MODES["quick"] == ("toolcall", "instruct")
    assert MODES["medium"] == ("toolcall", "instruct", "struct", "extract", "math")
    assert MODES["full"] == PACK_ORDER
    assert pack_ids("math,toolcall") == ("toolcall", "math")
    with pytest.raises(BadInput, match="unknown pack"):
        pack_ids("math,nope")
    with pytest.raises(BadInput, match="unknown quality mode"):
        pack_ids(mode="huge")


def test_goldens_cover_every_scenario_and_stay_out_of_the_packs():
    assert {p: set(g) for p, g in GOLDENS.items()} == {p.id: {s.id for s in p.scenarios} for p in PACKS}
    assert all("golden" not in (packs_dir() / f"{p}.jsonl").read_text() for p in PACK_ORDER)


@pytest.mark.parametrize("pack,scenario", SCENARIOS, ids=IDS)
def test_golden_passes(pack, scenario):
    verdict = verify(scenario, message(GOLDENS[pack.id][scenario.id]), "stop")
    assert verdict.passed, verdict


@pytest.mark.parametrize("pack,scenario", SCENARIOS, ids=IDS)
def test_junk_fails(pack, scenario):
    passing = [name for name, junk in junk_messages(scenario).items() if verify(scenario, junk, "stop").passed]
    assert not passing, f"junk passes: {passing}"


@pytest.mark.parametrize("pack,scenario", SCENARIOS, ids=IDS)
def test_golden_cut_off_is_not_a_pass_but_a_junk_cut_off_is_token_limit(pack, scenario):
    assert verify(scenario, {"content": "", "tool_calls": []}, "length").failure_mode == "token_limit"
    assert verify(scenario, message(GOLDENS[pack.id][scenario.id]), "length").passed  # a pass stays a pass


@pytest.mark.parametrize("kind", JUNK_KINDS)
def test_a_junk_server_scores_zero_on_every_pack(kind):
    def chat(messages, tools, max_tokens, timeout_s):
        return junk_message(kind, messages, tools), "stop", None

    run = run_pack_scenarios(PACKS, chat, clock=lambda: 0.0)
    assert len(run.results) == sum(len(p.scenarios) for p in PACKS)
    assert [f"{r.pack}/{r.scenario}" for r in run.results if r.verdict.passed] == []


def test_negative_control_finds_no_passes():
    control = negative_control(PACKS)
    assert control.passes == ()
    assert control.checked == len(JUNK_KINDS) * len(SCENARIOS)


def _copy_pack(tmp_path, pack_id):
    shutil.copy(packs_dir() / f"{pack_id}.jsonl", tmp_path)
    return tmp_path / f"{pack_id}.jsonl"


def test_a_bad_scenario_line_names_file_line_and_field(tmp_path):
    path = _copy_pack(tmp_path, "math")
    lines = path.read_text().splitlines()
    broken = json.loads(lines[3])
    del broken["verifier"]["answer"]
    lines[3] = json.dumps(broken)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BadInput, match=r"math.jsonl:4: field verifier"):
        load_pack("math", tmp_path)


def test_bad_json_duplicate_ids_bad_regex_and_wrong_name_are_refused(tmp_path):
    path = _copy_pack(tmp_path, "toolcall")
    original = path.read_text().splitlines()
    path.write_text("\n".join(original[:2] + ["{not json"]) + "\n")
    with pytest.raises(BadInput, match=r"toolcall.jsonl:3: not valid JSON"):
        load_pack("toolcall", tmp_path)
    path.write_text("\n".join(original[:2] + [original[1]]) + "\n")
    with pytest.raises(BadInput, match=r"toolcall.jsonl:3: field id: 'TC-01' appears twice"):
        load_pack("toolcall", tmp_path)
    bad_regex = json.loads(original[1])
    bad_regex["verifier"]["checks"][1] = {"check": "arg", "name": "city", "regex": "(unclosed"}
    path.write_text("\n".join([original[0], json.dumps(bad_regex)]) + "\n")
    with pytest.raises(BadInput, match=r"toolcall.jsonl:2: field verifier: regex"):
        load_pack("toolcall", tmp_path)
    (tmp_path / "other.jsonl").write_text(original[0] + "\n" + original[1] + "\n")
    with pytest.raises(BadInput, match=r"other.jsonl:1: field pack"):
        load_pack("other", tmp_path)
    with pytest.raises(BadInput, match="file not found"):
        load_pack("missing", tmp_path)


def test_meta_must_sample_at_temperature_zero(tmp_path):
    path = _copy_pack(tmp_path, "instruct")
    lines = path.read_text().splitlines()
    meta = json.loads(lines[0])
    meta["sampling"]["temperature"] = 0.7
    path.write_text("\n".join([json.dumps(meta)] + lines[1:]) + "\n")
    with pytest.raises(BadInput, match=r"instruct.jsonl:1: field sampling.temperature"):
        load_pack("instruct", tmp_path)
