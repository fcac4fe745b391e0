"""`agent run`: the agentic coding suite against a runtime you started (the agent phase alone).

Same target and folder options as `run`; the exit code says whether the run worked (0 complete,
1 failed: no model call succeeded), never whether the model solved the tasks."""

from __future__ import annotations

import argparse

from orchestrator.cli.common import CONTEXT, COUNT, add_folder_options, command
from orchestrator.cli.run import add_target_options, run_bring_your_own
from orchestrator.cli.sandbox import add_sandbox_option, sandbox_record

SECONDS = COUNT  # a whole number of seconds, 1 and up
BUDGET_FLAGS = {"passes": "passes per task (ralph)", "steps_per_pass": "tool steps per pass or try",
                "context_tokens": "context tokens per pass before it ends", "max_tokens": "max tokens per model call",
                "command_timeout_s": "wall seconds per test command"}


@command("agent")
def cmd_agent(args: argparse.Namespace) -> int:
    from orchestrator.evaluate.agent import load_tasks

    tasks = tuple(t.strip() for t in (args.tasks or "").split(",") if t.strip())
    languages = tuple(lang.strip() for lang in (args.languages or "").split(",") if lang.strip())
    load_tasks(ids=tasks)  # an unknown task id is bad input before anything starts
    budgets = {name: getattr(args, name) for name in BUDGET_FLAGS if getattr(args, name) is not None}
    settings = {"workflow": args.workflow, "tasks": list(tasks), "languages": list(languages), "budgets": budgets}
    return run_bring_your_own(args, "agent run", ["agent"], agent=settings, sandbox=sandbox_record(args))


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("agent", help="the agentic coding suite: the model edits code with file tools until real tests pass")
    agent_sub = p.add_subparsers(dest="agent_command", required=True)
    run = agent_sub.add_parser("run", help="run agent tasks against a runtime you started yourself (bring your own)")
    run.add_argument("--workflow", choices=["ralph", "two-try"], default="ralph",
                     help="ralph: fresh-context passes until the gate passes; two-try: pass@1/pass@2 (default ralph)")
    run.add_argument("--tasks", help="comma-separated task ids (default: every task in suites/agent/)")
    run.add_argument("--languages", help="comma-separated languages, e.g. python,javascript,cpp (default: all)")
    budgets = run.add_argument_group("budgets (default: suites/agent/harness.json, sized for small models)")
    for name, text in BUDGET_FLAGS.items():
        kind = CONTEXT if name == "context_tokens" else SECONDS if name == "command_timeout_s" else COUNT
        budgets.add_argument("--" + name.replace("_", "-").removesuffix("-s"), dest=name, type=kind, help=text)
    add_sandbox_option(run, "process")
    add_folder_options(run)
    add_target_options(run)
