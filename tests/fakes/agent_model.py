"""A scripted stand-in for the model in the agent loop: a queue of turns, each a list of tool
calls (name, arguments), a plain reply, or a failure. It answers with the shape the client
returns, `(assistant_message, finish_reason, usage, error)`, and keeps every request so tests
can look at the history it was sent."""

from __future__ import annotations

import json
from pathlib import Path

SOLUTIONS_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "agent_solutions"
FAIL = object()  # a turn where the call fails (endpoint down)



class ScriptedModel:
    def __init__(self, turns: list, reasoning: str = "", usage_tokens: int = 100) -> None:
        self.turns = list(turns)
        self.reasoning = reasoning
        self.usage_tokens = usage_tokens
        self.requests: list[list[dict]] = []
        self.tool_names: list[list[str]] = []
        self.calls = 0

    def __call__(self, messages: list[dict], tools: list[dict], max_tokens: int):
        self.requests.append(json.loads(json.dumps(messages)))
        self.tool_names.append([t["function"]["name"] for t in tools])
        turn = self.turns.pop(0) if self.turns else "I have nothing more to do."
        if turn is FAIL:
            return None, None, None, "connection refused"
        usage = {"prompt_tokens": self.usage_tokens, "completion_tokens": 10, "total_tokens": self.usage_tokens + 10}
        message = {"role": "assistant", "content": "", "reasoning_content": self.reasoning or None, "tool_calls": []}
        if isinstance(turn, str):
            message["content"] = turn
            return message, "stop", usage, None
        for name, arguments in turn:
            self.calls += 1
            message["tool_calls"].append({"id": f"call_{self.calls}", "type": "function",
                                          "function": {"name": name, "arguments": json.dumps(arguments)}})
        return message, "tool_calls", usage, None


def solution_files(task_id: str) -> dict[str, str]:
    folder = SOLUTIONS_DIR / task_id
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def solver_turns(task_id: str, call_done: bool = True) -> list:
    """Writes the reference solution through write_file, one file per turn, then calls done."""
    turns: list = [[("list_dir", {"path": "."})]]
    turns += [[("write_file", {"path": path, "content": text})] for path, text in solution_files(task_id).items()]
    if call_done:
        turns.append([("done", {"summary": "implemented"})])
    return turns
