"""The task catalogue: strict loading, coverage of languages, sizes and kinds, solutions kept
out of the task folders; and the report helpers."""

from __future__ import annotations

import json
import shutil

import pytest

from orchestrator.evaluate.agent import agent_table, load_tasks, pass_rates
from orchestrator.evaluate.agent.tasks import TASKS_DIR, harness_config, load_task
from orchestrator.core.errors import BadInput
from tests.fakes.agent_model import SOLUTIONS_DIR, solution_files

TASKS = load_tasks()


def test_the_catalogue_covers_languages_sizes_and_kinds():
    assert len(TASKS) >= 12
    assert {t.language for t in TASKS} == {"python", "javascript", "cpp"}
    assert {t.size for t in TASKS} == {"one-function", "few-functions", "multi-module"}
    kinds = [t.kind for t in TASKS]
    assert kinds.count("unsatisfiable") == 1 and "bugfix" in kinds
    assert all(len([t for t in TASKS if t.language == language]) >= 4 for language in ("python", "javascript", "cpp"))
    harness_config()  # schema-valid


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.id)
def test_solutions_live_outside_the_task_and_the_seed_is_only_a_stub(task):
    solution = solution_files(task.id)
    assert solution and SOLUTIONS_DIR not in task.folder.parents
    for path, text in solution.items():
        seed = task.seed_dir / path
        assert not seed.exists() or seed.read_text() != text, path
    assert not any(p.name.startswith(("test_", "conftest")) or ".test." in p.name for p in task.seed_dir.rglob("*"))


def copy_task(tmp_path, task_id="py-slugify"):
    folder = tmp_path / task_id
    shutil.copytree(TASKS_DIR / task_id, folder)
    return folder


@pytest.mark.parametrize("change, message", [
    ({"surprise": 1}, "Additional properties"),
    ({"id": "other-id"}, "differs from the folder name"),
    ({"editable": ["../outside.py"]}, "field editable[0]"),
    ({"editable": ["tests/test_slug.py"]}, "field editable[0]"),
    ({"language": "cobol"}, "field language"),
])
def test_a_bad_task_file_is_one_line_naming_file_and_field(tmp_path, change, message):
    folder = copy_task(tmp_path)
    spec = json.loads((folder / "task.json").read_text())
    spec.update(change)
    (folder / "task.json").write_text(json.dumps(spec))
    with pytest.raises(BadInput) as error:
        load_task(folder)
    assert str(folder / "task.json") in str(error.value) and message in str(error.value) and "\n" not in str(error.value)


def test_an_unknown_task_id_is_bad_input():
    with pytest.raises(BadInput, match="no agent task named nope"):
        load_tasks(ids=("nope",))
    assert [t.id for t in load_tasks(languages=("cpp",))] == sorted(t.id for t in TASKS if t.language == "cpp")


def run_record(task, language, outcome, kind="implement", p1=None, p2=None, workflow="two-try"):
    return {"record": "agent_run", "task": task, "language": language, "kind": kind, "workflow": workflow,
            "outcome": outcome, "pass_at_1": p1, "pass_at_2": p2, "passes": 2, "tool_calls": 7, "duration_s": 3.5}


def test_the_report_table_and_pass_rates_per_language():
    records = [run_record("a", "python", "budget", p1=False, p2=False),
               run_record("a", "python", "completed", p1=False, p2=True),  # a later attempt wins
               run_record("b", "python", "completed", p1=True, p2=True),
               run_record("c", "python", "budget", kind="unsatisfiable", p1=False, p2=False),
               run_record("d", "cpp", "skipped"),
               {"record": "agent_pass", "task": "a"}]
    table = agent_table(records)
    assert [row["task"] for row in table] == ["a", "b", "c", "d"]
    assert table[0] == {"task": "a", "language": "python", "outcome": "completed", "pass@1": False, "pass@2": True,
                        "passes": 2, "tool calls": 7, "duration_s": 3.5}
    rates = pass_rates(records)
    assert rates["python"] == {"tasks": 2, "completed": 2, "skipped": 0, "controls": 1,
                               "pass_at_1": 0.5, "pass_at_2": 1.0, "completion_rate": 1.0}
    assert rates["cpp"]["skipped"] == 1 and rates["cpp"]["completion_rate"] is None
