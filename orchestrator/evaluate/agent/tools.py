"""The agent's file tools, `run_tests` and `done`, as OpenAI function tools.

Every path is relative to the workspace; absolute paths, `..`, NUL bytes, and symlinks or hard
links that lead outside are refused. Tests (and the few files that steer test runners) cannot be written, and only the
task's editable files (plus PROGRESS.md) can. A tool error is returned to the model as the
tool's result, starting with `ERROR:`; it never ends the loop.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import PurePosixPath
from typing import Any, Callable

from orchestrator.evaluate.agent.gate import GateResult, cleaned_output, run_gate, verify_once
from orchestrator.evaluate.sandbox.base import Sandbox, SandboxEscape, clip
from orchestrator.evaluate.agent.tasks import TESTS_FOLDER, AgentTask

PROGRESS_FILE = "PROGRESS.md"
READ_LIMIT_CHARS = 24 * 1024
WRITE_LIMIT_BYTES = 256 * 1024
TEST_OUTPUT_CHARS = 4 * 1024
# Files that change how a test runner behaves, refused whatever the task's editable patterns say.
RUNNER_FILES = {"conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", "sitecustomize.py",
                "usercustomize.py", "package.json", ".noderc", "CMakeLists.txt", "Makefile"}
MAX_FAILED_DONES = 3  # failed `done` calls in a row with no edit between them end the pass


class ToolError(Exception):
    """Returned to the model as `ERROR: <message>`."""


def function_spec(name: str, description: str, properties: dict[str, str]) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": {k: {"type": "string", "description": v} for k, v in properties.items()},
                       "required": list(properties)}}}


TOOL_SPECS = {
    "list_dir": function_spec("list_dir", "List a folder of the workspace ('.' is the top).", {"path": "folder, relative"}),
    "read_file": function_spec("read_file", "Read a text file of the workspace.", {"path": "file, relative"}),
    "write_file": function_spec("write_file", "Create or replace a whole file.", {"path": "file, relative", "content": "the new text"}),
    "edit_file": function_spec("edit_file", "Replace one exact piece of text that occurs exactly once in a file.",
                               {"path": "file, relative", "old_string": "text to replace", "new_string": "replacement"}),
    "run_tests": function_spec("run_tests", "Run the task's tests once and see their output.", {}),
    "done": function_spec("done", "Say the task is finished.", {"summary": "one line on what you did"}),
}


@dataclass
class ToolStats:
    counts: Counter = field(default_factory=Counter)
    errors: int = 0
    bytes_read: int = 0
    writes: int = 0


@dataclass(frozen=True)
class ToolOutcome:
    text: str
    error: bool = False
    finished: bool = False  # `done` accepted: by the gate (ralph) or as the end of a try (two-try)
    gate: GateResult | None = None


def relative_path(raw: Any) -> str:
    """A clean relative path, or ToolError for absolute paths and `..` (symlinks are checked by the sandbox)."""
    if not isinstance(raw, str) or not raw.strip():
        raise ToolError("path must be a non-empty string")
    if "\0" in raw:
        raise ToolError(f"{raw!r}: a path cannot hold a NUL byte")
    path = PurePosixPath(raw.strip())
    if path.is_absolute():
        raise ToolError(f"{raw}: absolute paths are not allowed; use a path relative to the workspace")
    if ".." in path.parts:
        raise ToolError(f"{raw}: '..' is not allowed; stay inside the workspace")
    return str(path)


class Toolbox:
    """The tools of one pass or try; `gated_done` says whether `done` runs the gate (ralph) or
    only ends the try (two-try, where the harness tests afterwards and `run_tests` is absent)."""

    def __init__(self, sandbox: Sandbox, task: AgentTask, command_timeout_s: float, gated_done: bool,
                 stats: ToolStats | None = None) -> None:
        self.sandbox = sandbox
        self.task = task
        self.command_timeout_s = command_timeout_s
        self.gated_done = gated_done
        self.stats = stats or ToolStats()
        self.failed_dones = 0
        self.names = tuple(n for n in TOOL_SPECS if gated_done or n != "run_tests")

    def specs(self) -> list[dict[str, Any]]:
        return [TOOL_SPECS[name] for name in self.names]

    def call(self, name: str, arguments: str) -> ToolOutcome:
        self.stats.counts[name[:64]] += 1  # a hallucinated name is counted, not copied whole into records
        try:
            if name not in self.names:
                raise ToolError(f"unknown tool {name!r}; the tools are: {', '.join(self.names)}")
            try:
                args = json.loads(arguments or "{}")
            except json.JSONDecodeError as exc:
                raise ToolError(f"arguments are not valid JSON ({exc.msg})") from None
            if not isinstance(args, dict):
                raise ToolError("arguments must be a JSON object")
            return getattr(self, f"tool_{name}")(args)
        except (ToolError, SandboxEscape) as exc:
            self.stats.errors += 1
            return ToolOutcome(f"ERROR: {exc}", error=True)
        except (OSError, ValueError) as exc:  # ValueError: UnicodeError, and what os refuses in an argument
            self.stats.errors += 1
            return ToolOutcome(f"ERROR: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}", error=True)

    def writable(self, raw: Any) -> str:
        path = relative_path(raw)
        parts = PurePosixPath(path).parts
        if parts[0] == TESTS_FOLDER:
            raise ToolError(f"{path}: the tests are the specification and cannot be changed; change the implementation instead")
        if parts[-1] in RUNNER_FILES:
            raise ToolError(f"{path}: test-runner configuration cannot be changed")
        if path == PROGRESS_FILE:
            return path
        if not any(fnmatchcase(path, pattern) and len(parts) == len(PurePosixPath(pattern).parts) for pattern in self.task.editable):
            raise ToolError(f"{path}: not an editable file; you may write {', '.join(self.task.editable)} and {PROGRESS_FILE}")
        return path

    def tool_list_dir(self, args: dict) -> ToolOutcome:
        path = relative_path(args.get("path") or ".")
        entries = self.sandbox.list_dir(path)
        lines = [f"{name}/" if is_dir else f"{name} ({size} bytes)" for name, is_dir, size in entries]
        return ToolOutcome("\n".join(lines) or "(empty folder)")

    def tool_read_file(self, args: dict) -> ToolOutcome:
        data = self.sandbox.read_file(relative_path(args.get("path")))
        self.stats.bytes_read += len(data)
        return ToolOutcome(clip(data.decode("utf-8", errors="replace"), READ_LIMIT_CHARS // 2, READ_LIMIT_CHARS // 2))

    def tool_write_file(self, args: dict) -> ToolOutcome:
        path = self.writable(args.get("path"))
        content = args.get("content")
        if not isinstance(content, str):
            raise ToolError("content must be a string")
        data = content.encode("utf-8")
        if len(data) > WRITE_LIMIT_BYTES:
            raise ToolError(f"content is {len(data)} bytes; the limit is {WRITE_LIMIT_BYTES}")
        self.sandbox.write_file(path, data)
        self.note_write()
        return ToolOutcome(f"wrote {path} ({len(data)} bytes)")

    def tool_edit_file(self, args: dict) -> ToolOutcome:
        path = self.writable(args.get("path"))
        old, new = args.get("old_string"), args.get("new_string")
        if not isinstance(old, str) or not isinstance(new, str) or not old:
            raise ToolError("old_string must be non-empty text and new_string text")
        if old == new:
            raise ToolError("old_string and new_string are the same")
        text = self.sandbox.read_file(path).decode("utf-8")
        found = text.count(old)
        if found != 1:
            raise ToolError(f"old_string occurs {found} times in {path}; it must occur exactly once (add surrounding lines)")
        self.sandbox.write_file(path, text.replace(old, new).encode("utf-8"))
        self.note_write()
        return ToolOutcome(f"edited {path}")

    def note_write(self) -> None:
        self.stats.writes += 1
        self.failed_dones = 0

    def tool_run_tests(self, args: dict) -> ToolOutcome:
        run = verify_once(self.sandbox, self.task, self.command_timeout_s)
        head = "tests PASSED" if run.passed else f"tests FAILED: {run.reason}"
        return ToolOutcome(f"{head}\n{clip(cleaned_output(run.output, self.sandbox), TEST_OUTPUT_CHARS // 2, TEST_OUTPUT_CHARS // 2)}")

    def tool_done(self, args: dict) -> ToolOutcome:
        if not self.gated_done:
            return ToolOutcome("try finished; the harness runs the tests now", finished=True)
        gate = run_gate(self.sandbox, self.task, self.command_timeout_s)
        if gate.passed:
            return ToolOutcome(f"Verified: {gate.reason}. Task complete.", finished=True, gate=gate)
        self.failed_dones += 1
        output = clip(cleaned_output(gate.output, self.sandbox), TEST_OUTPUT_CHARS // 2, TEST_OUTPUT_CHARS // 2)
        return ToolOutcome(f"Verification FAILED ({gate.reason}). Fix the code and call done again.\n{output}", gate=gate)
