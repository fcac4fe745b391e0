import json
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core import datafiles
from orchestrator.cli import main
from orchestrator.plan.decide import decide, fit_model
from orchestrator.plan.knobs import knob_names
from orchestrator.core.errors import BadInput, NothingFits
from orchestrator.plan.hwhints import gpu_vendor, load_hints
from orchestrator.core.paths import REPO_ROOT
from orchestrator.plan.probe import BatteryInfo, CpuInfo, GpuInfo, Hardware, OsInfo, StorageInfo
from orchestrator.plan.profiles import load_profiles
from orchestrator.plan.rulecheck import GOLDEN_DIR, check_rules

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
    assert [r.knob for r in plan.reasons] == knob_names()
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
    from orchestrator.publish.manifest import knob_table

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
    assert [r.knob for r in plan.reasons] == knob_names()
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
    from orchestrator.plan.decide import MemoryBudget
    assert fit_model(spec, "Q4_K_M", 4096, 1, "full", MemoryBudget(8, 3, "discrete"), budget) is None
    partial = fit_model(spec, "Q4_K_M", 4096, 1, "partial", MemoryBudget(8, 3, "discrete"), budget)
    assert 0 < partial.ngl < spec.layers + 1
    assert fit_model(spec, "Q4_K_M", 4096, 1, "none", MemoryBudget(8, 0, "none"), budget).ngl == 0


def test_rules_check_cli(capsys):
    code, out, _ = run_cli(["rules", "check"], capsys)
    assert code == 0 and "golden machines match" in out


# ---------------------------------------------------------------------------------------
# Plans from any hardware-1.0 document: the runbook's fields only give the same plan


def schema_fields(schema: dict, prefix: str = "") -> set[str]:
    """Every field a schema names, as dotted paths (gpu.vendor for a field of the gpu list's items)."""
    fields = set()
    for name, sub in schema.get("properties", {}).items():
        fields |= {prefix + name} | schema_fields(sub.get("items", sub), f"{prefix}{name}.")
    return fields


# weeyuga's additive fields: in its hardware schema, not in the runbook's hardware-1.0 schema.
ADDITIVE_FIELDS = schema_fields(datafiles.schema("hardware")) - schema_fields(datafiles.schema("hardware_runbook"))
PLAN_KNOBS = ["runtime", "backend", "model", "ngl", "num_parallel", "num_ctx"]


def strip_additive(doc, prefix: str = ""):
    if isinstance(doc, list):
        return [strip_additive(item, prefix) for item in doc]
    if isinstance(doc, dict):
        return {k: strip_additive(v, f"{prefix}{k}.") for k, v in doc.items() if prefix + k not in ADDITIVE_FIELDS}
    return doc


def plan_knobs(hw: Hardware) -> dict:
    try:
        plan = decide(hw, PROFILES, use_tuned=False)
    except NothingFits:
        return {"error": "NothingFits"}
    return {k: getattr(plan, k) for k in PLAN_KNOBS}


def test_additive_fields_are_what_the_rules_read_beyond_the_runbook():
    assert {"gpu.vendor", "gpu.vram_free_gb", "battery", "chassis"} <= ADDITIVE_FIELDS
    assert not ADDITIVE_FIELDS & {"gpu.name", "gpu.driver", "gpu.vram_gb", "memory_gb_available_at_run_start"}


@pytest.mark.parametrize("path", sorted(p for p in GOLDEN_DIR.glob("*.json") if not p.name.endswith(".plan.json")),
                         ids=lambda p: p.stem)
def test_runbook_fields_alone_plan_like_the_probed_machine(path):
    full = json.loads(path.read_text())
    runbook = strip_additive(full)
    datafiles.validate(runbook, "hardware_runbook", path.name)  # holds the runbook's fields, and only those
    assert plan_knobs(Hardware.from_dict(runbook)) == plan_knobs(Hardware.from_dict(full))


def runbook_machine(name: str) -> Hardware:
    return Hardware.from_dict(strip_additive(json.loads((GOLDEN_DIR / f"{name}.json").read_text())))


@pytest.mark.parametrize("name, backend, note", [
    ("linux-rtx3060-12gb", "cuda", "gpu[0].vendor nvidia inferred from GPU name 'NVIDIA GeForce RTX 3060'"),
    ("linux-amd-7900xtx-24gb", "rocm", "gpu[0].vendor amd inferred from GPU name 'Radeon RX 7900 XTX'"),
    ("mac-m1-8gb", "metal", "gpu[0].vendor apple inferred from GPU name 'Apple M1 GPU' on macOS"),
    ("linux-arc-a770-16gb", "vulkan", "gpu[0].vendor intel inferred from GPU name 'Intel Arc A770 Graphics'"),
])
def test_a_runbook_document_gets_a_gpu_plan_that_says_what_was_inferred(name, backend, note):
    plan = decide(runbook_machine(name), PROFILES, use_tuned=False)
    assert plan.backend == backend and plan.ngl > 0
    assert note in plan.reason("backend").why and note in plan.reason("model").why
    probed = decide(golden(name), PROFILES, use_tuned=False)
    assert "inferred" not in probed.reason("backend").why  # nothing inferred, nothing said


def test_free_vram_battery_and_chassis_are_inferred_and_named():
    hw = runbook_machine("win-rtx4070-laptop-8gb")
    assert hw.gpu[0].vram_free_gb == 7.5 and hw.chassis == "laptop"
    assert {i.field for i in hw.inferred} == {"gpu[0].vendor", "gpu[0].vram_free_gb", "chassis"}
    plan = decide(hw, PROFILES, use_tuned=False)
    assert "gpu[0].vram_free_gb 7.5 inferred from vram_gb 8" in plan.reason("ngl").why
    assert "chassis laptop inferred from GPU name 'NVIDIA GeForce RTX 4070 Laptop GPU'" in plan.reason("keep_alive").why
    doc = strip_additive(json.loads((GOLDEN_DIR / "linux-laptop-on-battery.json").read_text()))
    doc["thermal_or_power_notes"] = "default OS thermal mgmt; battery-only, low-power-mode active"
    hw = Hardware.from_dict(doc)
    assert hw.on_battery and hw.low_power and hw.chassis == "laptop"
    plan = decide(hw, PROFILES, use_tuned=False)
    assert plan.num_parallel == 1 and "battery.on_ac_power False inferred from thermal_or_power_notes" in plan.reason("num_parallel").why


def test_inferences_travel_with_the_document_and_never_replace_a_given_field():
    hw = runbook_machine("linux-rtx3060-12gb")
    again = Hardware.from_dict(json.loads(hw.to_json()))
    assert again == hw and again.inferred and "inferred" not in golden("linux-rtx3060-12gb").to_dict()
    doc = json.loads((GOLDEN_DIR / "linux-rtx3060-12gb.json").read_text())
    doc["gpu"][0]["vendor"] = "other"  # said by the document: kept, though the name says NVIDIA
    assert Hardware.from_dict(doc).gpu[0].vendor == "other" and not Hardware.from_dict(doc).inferred


@pytest.mark.parametrize("name, driver, compute_cap, os_name, vendor", [
    ("NVIDIA GeForce RTX 3060", "550.54", "8.6", "Ubuntu", "nvidia"),
    ("NVIDIA Corporation GA106 [GeForce RTX 3060 Lite Hash Rate]", None, None, "Ubuntu", "nvidia"),
    ("Quadro P2000", None, None, "Windows", "nvidia"),
    ("Tesla T4", None, None, "Ubuntu", "nvidia"),
    ("H100 PCIe", None, None, "Ubuntu", "nvidia"),
    ("A100-SXM4-80GB", None, None, "Ubuntu", "nvidia"),
    ("L4", None, None, "Ubuntu", "nvidia"),
    ("GA104", "nvidia", None, "Ubuntu", "nvidia"),
    ("GPU 0", None, "8.9", "Ubuntu", "nvidia"),
    ("Radeon RX 7900 XTX", "amdgpu", None, "Ubuntu", "amd"),
    ("AMD Instinct MI300X", None, None, "Ubuntu", "amd"),
    ("Advanced Micro Devices, Inc. [AMD/ATI] Navi 31", None, None, "Ubuntu", "amd"),
    ("MI250X", None, None, "Ubuntu", "amd"),
    ("Apple M2 Pro GPU", "Metal/macOS-14", None, "macOS", "apple"),
    ("Apple M1 GPU", None, None, "Ubuntu", "other"),  # not macOS: no Metal, no unified-memory plan
    ("Intel Arc A770 Graphics", None, None, "Ubuntu", "intel"),
    ("Intel(R) Iris(R) Xe Graphics", None, None, "Windows", "intel"),
    ("Intel(R) UHD Graphics 620", None, None, "Windows", "intel"),
    ("Moore Threads MTT S80", None, None, "Ubuntu", "other"),
])
def test_gpu_vendor_from_name_driver_and_compute_capability(name, driver, compute_cap, os_name, vendor):
    gpu = {"name": name, "kind": "discrete", "vram_gb": 8.0, "driver": driver, "compute_cap": compute_cap}
    assert gpu_vendor(gpu, os_name, load_hints())[0] == vendor


def test_a_discrete_gpu_no_tier_places_is_a_named_deviation_not_a_silent_cpu_plan():
    plan = decide(golden("linux-gt1030-2gb"), PROFILES, use_tuned=False)
    assert plan.backend == "cpu" and plan.tier == "discrete-gpu-unplaced"
    assert "discrete GPU not used: NVIDIA GeForce GT 1030 (vendor nvidia, 2 GB)" in plan.reason("backend").why
    assert [(d.knob, d.value, d.source) for d in plan.deviations] == [("backend", "cpu", "rule")]
    doc = strip_additive(json.loads((GOLDEN_DIR / "linux-rtx3060-12gb.json").read_text()))
    doc["gpu"][0].update(name="Moore Threads MTT S80", driver=None, compute_cap=None)
    unknown = decide(Hardware.from_dict(doc), PROFILES, use_tuned=False)
    assert unknown.deviations and "Moore Threads MTT S80 (vendor other, 12 GB)" in unknown.reason("backend").why
    assert "no pattern in profiles/hardware_hints.yaml matches it" in unknown.reason("backend").why
    chosen = decide(golden("linux-gt1030-2gb"), PROFILES, {"backend": "cpu"}, use_tuned=False)
    assert [d.source for d in chosen.deviations] == []  # the user chose the CPU: nothing left unsaid


def test_cli_decide_on_a_runbook_document_says_what_it_inferred(tmp_path, capsys):
    path = tmp_path / "hardware.json"
    path.write_text(json.dumps(strip_additive(json.loads((GOLDEN_DIR / "linux-rtx3060-12gb.json").read_text()))))
    assert main(["decide", "--hardware", str(path), "--no-tuned"]) == 0
    out = capsys.readouterr().out
    assert "cuda" in out and "gpu[0].vendor nvidia inferred from GPU name 'NVIDIA GeForce RTX 3060'" in out


def test_a_bad_pattern_in_the_hints_table_names_the_file_and_field(tmp_path, monkeypatch):
    from orchestrator.plan import hwhints

    table = (REPO_ROOT / "profiles" / "hardware_hints.yaml").read_text().replace(r"'^apple\b", "'^apple(", 1)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "hardware_hints.yaml").write_text(table)
    monkeypatch.setattr(hwhints, "data_dir", lambda name: tmp_path / name)
    hwhints.load_hints.cache_clear()
    try:
        with pytest.raises(BadInput, match=r"hardware_hints.yaml: field gpu_vendor\[0\].pattern: not a regular expression"):
            hwhints.load_hints()
    finally:
        hwhints.load_hints.cache_clear()
