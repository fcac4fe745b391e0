"""Stage 3, launch: start and supervise a runtime (llama-server or Ollama) for a plan.

Supervision rules:
- bound to 127.0.0.1 on a free port; output to a log file, never an unread pipe;
- its own session and process group; on Linux a parent-death signal kills it even if we
  are SIGKILLed, and a pidfile lets the next start reap anything that still escaped;
- readiness polls the health endpoint and the process, with a stall timeout that resets
  while the log grows (a large model on a slow disk is loading, not hung);
- failures are named (crashed by a signal, exited, out of memory, port in use, model
  unreadable, timeout) with the command line and the log's last lines;
- stop is SIGTERM to the group, a grace period, then SIGKILL, always in `finally`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from orchestrator.core.procs import install_signal_handlers
from orchestrator.plan.decide import Plan
from orchestrator.plan.runtimes import HOST, LaunchCommand, RuntimeDefinition, build_command, load_runtime
from orchestrator.runtime.launch.failures import LOG_TAIL_LINES, LaunchError, classify_failure, describe_exit, exit_description, log_tail
from orchestrator.runtime.launch.processes import check_port_free, free_port, pid_dir, reap_orphans
from orchestrator.runtime.launch.running import STALL_TIMEOUT_S, RunningRuntime

# The package's public names, imported from here across weeyuga.
__all__ = ["HOST", "LOG_TAIL_LINES", "STALL_TIMEOUT_S", "LaunchCommand", "LaunchError", "RunningRuntime",
           "RuntimeDefinition", "build_command", "check_port_free", "classify_failure", "describe_exit",
           "exit_description", "free_port", "install_signal_handlers", "launch", "load_runtime", "log_tail", "pid_dir",
           "reap_orphans"]


@contextlib.contextmanager
def launch(plan: Plan, binary: str, model_path: str | None, log_path: Path, port: int | None = None,
           timeout_s: float = STALL_TIMEOUT_S, runtime_dir: Path | None = None,
           variant_args: tuple[str, ...] = ()) -> Iterator[RunningRuntime]:
    """Start the plan's runtime, wait until healthy, and guarantee it stops when the block exits."""
    defn = load_runtime(plan.runtime, runtime_dir)
    if port is not None:
        check_port_free(port)
    port = port or free_port()
    model_id = plan.model
    command = build_command(defn, plan, binary, port, model_path, model_id, variant_args=variant_args)
    runtime = RunningRuntime(defn, command, port, log_path, model_id)
    try:
        runtime.start()
        runtime.wait_ready(timeout_s)
        runtime.engine_version = runtime.query_version()
        yield runtime
    finally:
        runtime.stop()

