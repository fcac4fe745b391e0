"""The agentic coding suite as a library: tasks as data, a sandbox, the gate, file tools, the
ralph and two-try workflows over an injected chat function, and their records.

It does not depend on the runner: the runner passes in `chat`, a sandbox factory and an
`on_record` callback, and calls `run_agent_tasks`.
"""

from orchestrator.evaluate.agent.loop import AgentSummary, AgentTaskResult, Budgets, fingerprint, resume_state, run_agent_tasks
from orchestrator.evaluate.sandbox.base import CommandResult, Sandbox
from orchestrator.evaluate.agent.summary import agent_table, pass_rates
from orchestrator.evaluate.agent.tasks import AgentTask, load_tasks

__all__ = ["AgentSummary", "AgentTaskResult", "AgentTask", "Budgets", "CommandResult", "Sandbox",
           "agent_table", "fingerprint", "load_tasks", "pass_rates", "resume_state", "run_agent_tasks"]
