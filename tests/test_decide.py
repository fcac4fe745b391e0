import json
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.cli import main
from orchestrator.decide import KNOB_ORDER, decide, fit_model
from orchestrator.errors import BadInput, NothingFits
from orchestrator.paths import REPO_ROOT
from orchestrator.probe import BatteryInfo, CpuInfo, GpuInfo, Hardware, OsInfo, StorageInfo
from orchestrator.profiles import load_profiles
from orchestrator.rulecheck import GOLDEN_DIR, check_rules

PROFILES = load_profiles()


def golden(name: str) -> Hardware:
    return Hardware.load(GOLDEN_DIR / f"{name}.json")


def test_every_golden_machine_matches_its_plan():
    result = check_rules(PROFILES)
    assert len(result.results) >= 10
    assert result.ok, [(r.name, r.changes, r.error) for r in result.results if not r.ok]


def test_goldens_cover_every_tier():
    tiers = {json.loads(p.read_text()).get("tier") for p in GOLDEN_DIR.glob("*.plan.json")}
    # amd-8gb-plus and amd-small share the AMD rows; one AMD machine covers the table's AMD row.
    wanted = {t["id"] for t in PROFILES.rules["tiers"]} - {"amd-8gb-plus", "amd-small"}
    assert wanted <= tiers


def test_plan_explains_every_knob():
    plan = decide(golden("linux-gtx1060-6gb"), PROFILES)
    assert [r.knob for r in plan.reasons] == KNOB_ORDER
    assert all(r.why and r.rule_id for r in plan.reasons)
    assert plan.reason("keep_alive").rule_id == "laptop-keep-alive"


def test_largest_model_that_fits_not_smallest():
    plan = decide(golden("linux-rtx3090-24gb"), PROFILES)
    assert plan.model == "qwen3.5-32b" and plan.ngl == plan.layers_offloadable


def test_partial_offload_splits_layers():
    hw = golden("linux-gtx1060-6gb")
    plan = decide(hw, PROFILES, {"model": "qwen3.5-14b"})
    assert 0 < plan.ngl < plan.layers_offloadable
    assert plan.est_gpu_memory_gb <= plan.budget.usable_gpu_gb


def test_user_override_is_a_deviation_naming_the_rule():
    plan = decide(golden("linux-gtx1060-6gb"), PROFILES, {"ngl": 6, "num_parallel": 2})
    devs = {d.knob: d for d in plan.deviations}
    assert plan.ngl == 6 and devs["ngl"].replaced == 37 and devs["ngl"].overrode == "nvidia-6gb"
    assert devs["num_parallel"].source == "user" and devs["num_parallel"].overrode == "nvidia-6gb"
    assert plan.reason("ngl").rule_id == "user"


def test_override_equal_to_rule_is_not_a_deviation():
    plan = decide(golden("linux-vps-cpu-4c-8gb"), PROFILES, {"num_ctx": 4096})
    assert plan.deviations == []


def plan_with_tuned_profile(tmp_path, entry: str):
    """The 4-core VPS golden planned with a profiles/local/<tag>.yaml holding this qwen3.5-2b entry."""
    shutil.copytree(REPO_ROOT / "profiles", tmp_path / "profiles", ignore=shutil.ignore_patterns("local"))
    (tmp_path / "profiles" / "local").mkdir()
    (tmp_path / "profiles" / "local" / "linux-epyc-4c-8gb.yaml").write_text(
        f"schema_version: tuned-1\ndevice_tag: linux-epyc-4c-8gb\nmodels:\n  qwen3.5-2b: {entry}\n")
    return decide(golden("linux-vps-cpu-4c-8gb"), load_profiles(tmp_path / "profiles"))


def test_tuned_profile_is_applied_as_tuned_deviation(tmp_path):
    plan = plan_with_tuned_profile(tmp_path, "{threads: 3, tokens_per_sec: 9.5}")
    assert plan.threads == 3
    assert [(d.knob, d.source, d.replaced) for d in plan.deviations] == [("threads", "tuned", 4)]


def test_a_tuned_value_equal_to_the_rules_is_credited_but_not_a_deviation(tmp_path):
    from orchestrator.record import knob_table

    plan = plan_with_tuned_profile(tmp_path, "{threads: 4, ngl: 0}")
    assert plan.threads == 4 and not plan.deviations
    assert plan.reason("threads").rule_id == "tuned" and "chose the same" in plan.reason("threads").why
    table = knob_table(plan)
    assert table["threads"]["source"] == "tuned" and "replaced" not in table["threads"]


def test_nothing_fits_names_smallest_requirement():
    with pytest.raises(NothingFits, match="smallest .*smollm2-135m-instruct.* needs"):
        decide(golden("linux-tiny-nothing-fits"), PROFILES)


def test_forced_model_that_cannot_fit_is_refused():
    with pytest.raises(NothingFits, match="qwen3.5-32b"):
        decide(golden("linux-vps-cpu-4c-8gb"), PROFILES, {"model": "qwen3.5-32b"})


def test_unknown_model_and_bad_overrides():
    with pytest.raises(BadInput, match="unknown model"):
        decide(golden("mac-m1-8gb"), PROFILES, {"model": "llama-9000"})
    with pytest.raises(BadInput, match="num_parallel"):
        decide(golden("mac-m1-8gb"), PROFILES, {"num_parallel": 0})
    with pytest.raises(BadInput, match="no quant"):
        decide(golden("mac-m1-8gb"), PROFILES, {"model": "smollm2-135m-instruct", "quant": "Q8_0"})


# ---- property: any hardware gets a plan within budget, every knob explained -------------

gpu_strategy = st.one_of(
    st.builds(lambda v, f, n: [GpuInfo(f"NVIDIA X{i}", "discrete", v, "550", "8.6", "nvidia", round(v * f, 2)) for i in range(n)],
              st.floats(1, 96), st.floats(0.1, 1), st.integers(1, 4)),
    st.builds(lambda v: [GpuInfo("Radeon", "discrete", v, "amdgpu", None, "amd", v)], st.floats(1, 48)),
    st.just([GpuInfo("Apple M2 GPU", "integrated", None, "Metal", None, "apple")]),
    st.just([]),
)


@st.composite
def machines(draw):
    total = draw(st.floats(0.5, 512))
    gpus = draw(gpu_strategy)
    apple = bool(gpus) and gpus[0].vendor == "apple"
    cores = draw(st.integers(1, 64))
    bat = draw(st.one_of(st.none(), st.builds(BatteryInfo, st.floats(0, 100), st.booleans(), st.booleans())))
    return Hardware(
        device_tag="prop-machine", manufacturer_model=None,
        os=OsInfo("macOS" if apple else "Linux", None, None),
        cpu=CpuInfo("cpu", cores, cores * draw(st.integers(1, 2)), None, "arm64" if apple else "x86_64", []),
        memory_gb_total=round(total, 2), memory_gb_available_at_run_start=round(total * draw(st.floats(0.05, 1)), 2),
        gpu=gpus, storage=StorageInfo(None, None), thermal_or_power_notes=None, network_used_for_model_fetch=None,
        container_or_vm=draw(st.sampled_from([None, "vm:kvm"])), battery=bat,
        chassis=draw(st.sampled_from([None, "laptop", "desktop", "server"])),
    )


@settings(max_examples=300, deadline=None)
@given(machines())
def test_property_plan_within_budget_and_explained(hw):
    try:
        plan = decide(hw, PROFILES)
    except NothingFits:
        return
    assert [r.knob for r in plan.reasons] == KNOB_ORDER
    assert all(r.why and r.rule_id for r in plan.reasons)
    if plan.ngl == 0:
        assert plan.est_memory_gb <= plan.budget.usable_ram_gb + 1e-6
    elif plan.budget.gpu_pool == "unified":
        assert plan.est_memory_gb <= plan.budget.usable_gpu_gb + 1e-6
    else:
        assert plan.est_gpu_memory_gb <= plan.budget.usable_gpu_gb + 1e-6
        assert plan.est_memory_gb - plan.est_gpu_memory_gb <= plan.budget.usable_ram_gb + 1e-6
    assert plan.threads >= 1 and plan.num_parallel >= 1


# ---- bad input through the CLI: one line, exit 2, no traceback --------------------------

def run_cli(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_decide_json_on_golden(capsys):
    code, out, _ = run_cli(["decide", "--hardware", str(GOLDEN_DIR / "mac-m1-8gb.json"), "--json"], capsys)
    assert code == 0 and json.loads(out)["backend"] == "metal"


@pytest.mark.parametrize("content,needle", [
    ("{not json", "line"),
    (json.dumps({"schema_version": "hardware-1.0"}), "field (top level)"),
    ("[]", "field (top level)"),
])
def test_cli_malformed_hardware(tmp_path, capsys, content, needle):
    path = tmp_path / "hw.json"
    path.write_text(content)
    code, _, err = run_cli(["decide", "--hardware", str(path)], capsys)
    assert code == 2 and needle in err and str(path) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_negative_sizes_name_the_field(tmp_path, capsys):
    doc = json.loads((GOLDEN_DIR / "mac-m1-8gb.json").read_text())
    doc["memory_gb_available_at_run_start"] = -3
    path = tmp_path / "hw.json"
    path.write_text(json.dumps(doc))
    code, _, err = run_cli(["decide", "--hardware", str(path)], capsys)
    assert code == 2 and "memory_gb_available_at_run_start" in err


def test_cli_missing_file_and_unknown_model(tmp_path, capsys):
    code, _, err = run_cli(["decide", "--hardware", str(tmp_path / "nope.json")], capsys)
    assert code == 2 and "file not found" in err
    code, _, err = run_cli(["decide", "--hardware", str(GOLDEN_DIR / "mac-m1-8gb.json"), "--model", "nope"], capsys)
    assert code == 2 and "unknown model" in err


def test_cli_nothing_fits_exits_nonzero(capsys):
    code, _, err = run_cli(["decide", "--hardware", str(GOLDEN_DIR / "linux-tiny-nothing-fits.json")], capsys)
    assert code == 3 and "needs" in err


@pytest.mark.parametrize("edit,needle", [
    (lambda s: s.replace("schema_version: rules-1", "schema_version: rules-1\nbogus: 1"), "bogus"),
    (lambda s: s.replace("num_parallel: 4", "num_parallel: -4", 1), "num_parallel"),
    (lambda s: s.replace("  - id: cpu-only\n    when: {}", "  - id: cpu-only\n    when: {os: linux}"), "last tier"),
    (lambda s: s + "\n  - [unclosed", "line"),
])
def test_invalid_rule_tables_are_refused(tmp_path, edit, needle):
    shutil.copytree(REPO_ROOT / "profiles", tmp_path / "profiles", ignore=shutil.ignore_patterns("local"))
    rules = tmp_path / "profiles" / "rules.yaml"
    rules.write_text(edit(rules.read_text()))
    with pytest.raises(BadInput, match=needle) as info:
        load_profiles(tmp_path / "profiles")
    assert "rules.yaml" in str(info.value)


def test_fit_model_full_partial_none():
    spec = PROFILES.model("qwen3.5-9b")
    budget = PROFILES.rules["budget"]
    from orchestrator.decide import MemoryBudget
    assert fit_model(spec, "Q4_K_M", 4096, 1, "full", MemoryBudget(8, 3, "discrete"), budget) is None
    partial = fit_model(spec, "Q4_K_M", 4096, 1, "partial", MemoryBudget(8, 3, "discrete"), budget)
    assert 0 < partial.ngl < spec.layers + 1
    assert fit_model(spec, "Q4_K_M", 4096, 1, "none", MemoryBudget(8, 0, "none"), budget).ngl == 0


def test_rules_check_cli(capsys):
    code, out, _ = run_cli(["rules", "check"], capsys)
    assert code == 0 and "golden machines match" in out
