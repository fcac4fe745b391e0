"""Quality packs: schema, checksum pins, sizes and levels, and the positive and negative controls.

Every scenario's golden answer must pass; every junk answer (empty, a fixed phrase, `{}`, the
prompt echoed back, the prompt only in the reasoning channel, a tool call with empty arguments)
must fail, scenario by scenario and through the entry functions as a junk "server".
"""

import json
import shutil

import pytest

from orchestrator.core.errors import BadInput
from orchestrator.evaluate.quality.generators import TIERS
from orchestrator.evaluate.quality.packs import GENERATORS, MODES, PACK_ORDER, load_pack, load_packs, pack_ids, packs_dir
from orchestrator.evaluate.quality.scoring import wilson
from orchestrator.evaluate.quality.runner import JUNK_KINDS, junk_message, negative_control, run_pack_scenarios
from orchestrator.evaluate.quality.verifiers import verify
from tests.quality_controls import goldens, junk_messages, message

# A changed pack needs a new version: bump it in the meta line, then update its pin here.
PINS = {
    "toolcall": (2, "d6e772f505dba34e89a8b00be1ade0fe50787ddf87adee98ef611a80f31bc89b"),
    "instruct": (2, "cfb92c2162855c84dd79ee9b22bb1819cb05d0865e9d9c02890aa013b75c008f"),
    "struct": (3, "5dddb8a7f211a94d4f0bfa96f8734c4b2d7b1c9c35859731ae601070155f882e"),
    "extract": (2, "e259340fabbc13b7143e0ba6a3e443fc7dd25f12abcd238b6c196e8c6880e549"),
    "math": (2, "a4d06988c628e7403cc66ac005e42451b8dcde59c0aaa7e80a85b6d423564c53"),
    "codeexec": (2, "1fdd64df5c1fbe9e3d888344bd0236461e7ff9848fc019684bf814dde0a0a6d0"),
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
    assert pack.written >= 12
    levels = [s.level for s in pack.scenarios[:pack.written]]
    assert levels.count("easy") >= 3, "a 135M-270M model must be able to pass some"
    assert levels.count("hard") >= 4, "a 30B model must not be at 100%"
    kinds = {s.kind for s in pack.scenarios}
    assert len(kinds) == 1 and pack.sampling["temperature"] == 0


@pytest.mark.parametrize("pack", PACKS, ids=PACK_ORDER)
def test_full_is_large_enough_to_measure_and_every_mode_is_a_balanced_prefix(pack):
    assert len(pack.scenarios) >= 200
    assert wilson(len(pack.scenarios) // 2, len(pack.scenarios)).half_width <= 0.07  # the widest, at 50%
    assert pack.for_mode("quick").scenarios == pack.scenarios[:pack.written]  # quick keeps its two minutes
    medium = pack.for_mode("medium").scenarios[pack.written:]
    assert len(medium) == pack.generated["sets"]["medium"] and medium == pack.scenarios[pack.written:][:len(medium)]
    assert all(s.level == TIERS[i % 3] for i, s in enumerate(pack.scenarios[pack.written:]))


@pytest.mark.parametrize("pack", PACKS, ids=PACK_ORDER)
def test_generation_is_frozen_by_version_and_seed(pack):
    module, spec = GENERATORS[pack.id], pack.generated
    first, again = module.generate(spec["seed"], 30), module.generate(spec["seed"], 60)
    assert first == again[:30]  # a smaller set is a prefix of a larger one
    assert module.generate(spec["seed"] + 1, 30) != first
    assert spec["generator_version"] == module.VERSION


def test_a_changed_generator_needs_a_new_pack_version(tmp_path):
    path = _copy_pack(tmp_path, "math")
    lines = path.read_text().splitlines()
    meta = json.loads(lines[0])
    meta["generated"]["generator_version"] += 1
    path.write_text("\n".join([json.dumps(meta)] + lines[1:]) + "\n")
    with pytest.raises(BadInput, match=r"math.jsonl:1: field generated.generator_version"):
        load_pack("math", tmp_path)


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
