"""Model pins in the rule tables, and `weeyuga rules suggest` proposing them from tuned runs."""

import json
import shutil
from types import SimpleNamespace

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.plan.decide import decide
from orchestrator.core.errors import BadInput
from orchestrator.plan.probe import Hardware
from orchestrator.plan.profiles import load_profiles
from orchestrator.plan.rulecheck import GOLDEN_DIR
from orchestrator.publish import review as review_package
from orchestrator.publish.rulesuggest import suggest_rules
from tests.test_report import clone_run, example_run  # noqa: F401  (module fixture)

PROFILES = load_profiles()
GTX1060 = "linux-gtx1060-6gb"
MODEL, QUANT = "qwen3.5-9b", "Q4_K_M"


def tuned_run(example_run, root, handle, run_id, machine, tuned, model=MODEL, quant=QUANT):  # noqa: F811
    """A submitted run on `machine` whose manifest says `weeyuga tune` set these knobs."""
    run = clone_run(example_run, root, handle, run_id)
    shutil.copy(GOLDEN_DIR / f"{machine}.json", run / "hardware.json")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["knobs"]["model"]["value"], manifest["knobs"]["quant"]["value"] = model, quant
    for knob, value in tuned.items():
        manifest["knobs"][knob] = {"value": value, "source": "tuned", "rule_id": "tuned", "replaced": 99,
                                   "overrode": "some-tier", "why": "measured best on this machine by weeyuga tune"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def profiles_with_pins(tmp_path, pins):
    folder = tmp_path / "profiles"
    shutil.copytree(PROFILES.source_dir, folder, ignore=shutil.ignore_patterns("local"))
    rules = yaml.safe_load((folder / "rules.yaml").read_text())
    rules["model_pins"] = pins
    (folder / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    return load_profiles(folder)


def test_suggest_groups_tuned_runs_and_takes_the_smallest_ngl(example_run, tmp_path, capsys, monkeypatch):  # noqa: F811
    root = tmp_path / "subs"
    tuned_run(example_run, root, "alice", "a1111111-0000-0000-0000-000000000000", GTX1060, {"ngl": 7, "num_parallel": 1})
    tuned_run(example_run, root, "bob", "b2222222-0000-0000-0000-000000000000", GTX1060, {"ngl": 6, "num_parallel": 1})
    clone_run(example_run, root, "carol", "c3333333-0000-0000-0000-000000000000")  # not tuned: no evidence
    result = suggest_rules(root, PROFILES)
    assert result.tuned_runs == 2 and len(result.suggestions) == 1
    suggestion = result.suggestions[0]
    assert suggestion.values == {"ngl": 6, "num_parallel": 1} and len(suggestion.runs) == 2
    assert "GTX 1060" in suggestion.hardware and suggestion.headline().startswith(suggestion.hardware)
    assert "NGL 6, 1 slot" in suggestion.headline()
    pin = suggestion.pin
    assert pin["when"]["gpu_vendor"] == "nvidia" and pin["model"] == MODEL and len(pin["evidence"]) == 2

    # The maintainer pastes it: the rules validate, the plan follows, and nothing is left to suggest.
    pinned = profiles_with_pins(tmp_path, [pin])
    plan = decide(Hardware.load(GOLDEN_DIR / f"{GTX1060}.json"), pinned, {"model": MODEL}, use_tuned=False)
    assert plan.ngl == 6 and plan.reason("ngl").rule_id == pin["id"] and not plan.deviations[2:]
    again = suggest_rules(root, pinned)
    assert not again.suggestions and again.already_in_rules

    # The command asks `weeyuga review` about each tuned run: these were edited by hand, so none is evidence ...
    assert main(["rules", "suggest", "--submissions-dir", str(root)]) == 0
    out, err = capsys.readouterr()
    assert "no rule edits" in out and err.count("not accepted by review") == 2
    # ... and runs review accepts are
    monkeypatch.setattr(review_package, "review", lambda run_dir, submissions_dir=None: SimpleNamespace(accepted=True))
    assert main(["rules", "suggest", "--submissions-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "model_pins:" in out and "run bob/" in out
    assert main(["rules", "suggest", "--submissions-dir", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["suggestions"][0]["values"]["ngl"] == 6
    assert main(["rules", "suggest", "--submissions-dir", str(root), "--min-runs", "3"]) == 0
    assert "no rule edits" in capsys.readouterr().out


def test_suggest_on_cpu_runs_and_a_missing_folder(example_run, tmp_path, capsys):  # noqa: F811
    root = tmp_path / "subs"
    tuned_run(example_run, root, "dave", "d4444444-0000-0000-0000-000000000000", "linux-vps-cpu-4c-8gb", {"threads": 3},
              model="smollm2-135m-instruct", quant="Q4_1")
    result = suggest_rules(root, PROFILES)
    assert result.suggestions[0].pin["when"] == {"gpu_vendor": "none", "cpu_cores": 4, "cpu_threads": 4}
    assert result.suggestions[0].values == {"threads": 3}
    assert main(["rules", "suggest", "--submissions-dir", str(tmp_path / "nowhere")]) == 2
    assert "no such submissions folder" in capsys.readouterr().err


def test_a_pin_for_an_unknown_model_is_refused(tmp_path):
    pin = {"id": "bad", "when": {}, "model": "no-such-model", "set": {"ngl": 1}, "why": "a pin for nothing at all"}
    with pytest.raises(BadInput, match=r"model_pins\[0\]\.model"):
        profiles_with_pins(tmp_path, [pin])


def test_user_override_beats_a_pin(tmp_path):
    pin = {"id": "pin-1060-9b", "when": {"gpu_vendor": "nvidia"}, "model": MODEL, "set": {"ngl": 6, "num_parallel": 1},
           "why": "measured on two GTX 1060 runs"}
    pinned = profiles_with_pins(tmp_path, [pin])
    plan = decide(Hardware.load(GOLDEN_DIR / f"{GTX1060}.json"), pinned, {"model": MODEL, "ngl": 4}, use_tuned=False)
    assert plan.ngl == 4 and plan.num_parallel == 1 and plan.reason("num_parallel").rule_id == "pin-1060-9b"


def test_suggest_ignores_outliers_and_runs_review_does_not_accept(example_run, tmp_path, capsys):  # noqa: F811
    root = tmp_path / "subs"
    runs = [tuned_run(example_run, root, handle, f"{digit * 8}-0000-0000-0000-000000000000", GTX1060,
                      {"ngl": 6, "num_parallel": 1}) for handle, digit in (("erin", "e"), ("fred", "f"), ("gina", "a"), ("hank", "b"))]
    metadata = json.loads((runs[0] / "metadata.json").read_text())
    for row in metadata["cells"]:  # three times as fast as three identical runs on the same machine and knobs
        row["tokens_per_sec_mean"] *= 3
        row["warm_tokens_per_sec_mean"] = (row.get("warm_tokens_per_sec_mean") or row["tokens_per_sec_mean"] / 3) * 3
    (runs[0] / "metadata.json").write_text(json.dumps(metadata))
    result = suggest_rules(root, PROFILES, accepted=lambda run_dir: run_dir.name != runs[1].name)
    assert result.tuned_runs == 2
    reasons = dict(line.split(": ", 1) for line in result.ignored)
    assert set(reasons) == {f"erin/{runs[0].parent.name}/{runs[0].name}", f"fred/{runs[1].parent.name}/{runs[1].name}"}
    assert reasons[f"erin/{runs[0].parent.name}/{runs[0].name}"].startswith("an outlier (decode")
    assert reasons[f"fred/{runs[1].parent.name}/{runs[1].name}"].startswith("not accepted by review")
    assert {run.path.split("/")[0] for run in result.suggestions[0].runs} == {"gina", "hank"}
