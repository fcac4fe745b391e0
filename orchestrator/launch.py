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
import json
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx

from . import datafiles
from .decide import Plan
from .errors import BadInput, WeeyugaError
from .install import binary_version
from .paths import data_dir, state_dir
from .procs import kill_group, spawn_options

HOST = "127.0.0.1"
LOG_TAIL_LINES = 12
STALL_TIMEOUT_S = 120.0  # no health and no new log line for this long: the runtime is stuck


class LaunchError(WeeyugaError):
    """The runtime did not come up. `kind` is crashed | exited | oom | port_in_use | model_unreadable | timeout."""

    def __init__(self, kind: str, message: str, log_tail: str = "", what: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.log_tail = log_tail
        self.what = what or message.splitlines()[0]  # the failure in a phrase, without the command line


# ---------------------------------------------------------------------------------------
# Runtime definitions (data) and the pure command builder


@dataclass(frozen=True)
class RuntimeDefinition:
    name: str
    binary: str
    serve_args: list[str]
    pinned_args: list[str]
    serve_env: dict[str, str]
    health_path: str
    version_args: list[str]
    knobs: dict[str, dict[str, str]]
    oom_markers: list[str]
    load_failure_markers: list[str]
    port_in_use_markers: list[str]
    effective_knobs: dict[str, str]
    crash_markers: list[str] = field(default_factory=list)
    self_test: dict[str, Any] = field(default_factory=dict)

    def effective_values(self, log_text: str) -> dict[str, int]:
        """Knob values the runtime reports choosing by itself, read from its log (last mention wins)."""
        found = {}
        for knob, pattern in self.effective_knobs.items():
            matches = re.findall(pattern, log_text)
            if matches:
                found[knob] = int(matches[-1])
        return found


def load_runtime(name: str, directory: Path | None = None) -> RuntimeDefinition:
    path = (directory or data_dir("runtimes")) / f"{name}.yaml"
    if not path.exists():
        raise BadInput(f"unknown runtime {name!r}: no {path}")
    doc = datafiles.load(path, "runtime")
    return RuntimeDefinition(
        name=doc["name"], binary=doc["binary"], serve_args=doc["serve_args"], pinned_args=doc.get("pinned_args", []),
        serve_env=doc.get("serve_env", {}),
        health_path=doc["health_path"], version_args=doc.get("version_args", []), knobs=doc["knobs"],
        oom_markers=doc["oom_markers"], load_failure_markers=doc.get("load_failure_markers", []),
        port_in_use_markers=doc.get("port_in_use_markers", []), effective_knobs=doc.get("effective_knobs", {}),
        crash_markers=doc.get("crash_markers", []), self_test=doc.get("self_test", {}),
    )


@dataclass(frozen=True)
class LaunchCommand:
    argv: list[str]
    env: dict[str, str]
    request_fields: dict[str, Any]  # top-level fields of every OpenAI-compatible request
    request_options: dict[str, Any]  # Ollama native `options`
    unsupported: dict[str, str]  # knob -> why this runtime ignores it


def build_command(defn: RuntimeDefinition, plan: Plan, binary: str, port: int, model_path: str | None,
                  model_id: str, leave_to_runtime: frozenset[str] = frozenset(),
                  variant_args: tuple[str, ...] = ()) -> LaunchCommand:
    """Pure: the argv, environment and per-request fields a plan means for this runtime.

    Knobs in `leave_to_runtime` are not passed (and neither are the pinned args), so the runtime
    picks them itself: how `weeyuga tune` measures the runtime's defaults. `variant_args` are the
    flags the binary's self-test on this CPU found it needs (verify.py); they always go last.
    """
    values = {"host": HOST, "port": str(port), "model_path": model_path or "", "model_id": model_id}
    argv = [binary] + [arg.format(**values) for arg in defn.serve_args]
    if not leave_to_runtime:
        argv += defn.pinned_args
    env = {k: v.format(**values) for k, v in defn.serve_env.items()}
    fields: dict[str, Any] = {}
    options: dict[str, Any] = {}
    unsupported: dict[str, str] = {}
    for knob, mapping in defn.knobs.items():
        value = getattr(plan, knob)
        if knob in leave_to_runtime:
            continue
        if "unsupported" in mapping:
            unsupported[knob] = mapping["unsupported"]
            continue
        if "flag" in mapping:
            scaled = value * getattr(plan, mapping["scale_by"]) if "scale_by" in mapping else value
            argv += [mapping["flag"], str(scaled)]
        if "env" in mapping:
            env[mapping["env"]] = str(value)
        if "request" in mapping:
            fields[mapping["request"]] = value
        if "option" in mapping:
            options[mapping["option"]] = value
    return LaunchCommand(argv + list(variant_args), env, fields, options, unsupported)


# ---------------------------------------------------------------------------------------
# Ports, process groups, pidfiles


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like the servers themselves: TIME_WAIT leftovers from our last run do not count, a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            raise LaunchError("port_in_use", f"port {port} on {HOST} is already in use; pick another with --port") from None


def pid_dir() -> Path:
    return state_dir() / "pids"


def _process_start_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_orphans() -> list[int]:
    """Kill runtimes recorded by a weeyuga that has since died; the parent-death signal's second line."""
    reaped = []
    for record_path in pid_dir().glob("*.json") if pid_dir().is_dir() else []:
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            record_path.unlink(missing_ok=True)
            continue
        if _alive(record["owner_pid"]) and _process_start_time(record["owner_pid"]) == record.get("owner_started"):
            continue  # its weeyuga is still running
        started = _process_start_time(record["pid"])
        if started is not None and abs(started - record["started"]) < 1.0:  # same process, not a reused pid
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record["pid"], signal.SIGKILL)
            reaped.append(record["pid"])
        record_path.unlink(missing_ok=True)
    return reaped


def _write_pidfile(proc: subprocess.Popen, argv: list[str]) -> Path:
    pid_dir().mkdir(parents=True, exist_ok=True)
    path = pid_dir() / f"{proc.pid}.json"
    path.write_text(json.dumps({"pid": proc.pid, "argv": argv, "started": _process_start_time(proc.pid) or time.time(),
                                "owner_pid": os.getpid(), "owner_started": _process_start_time(os.getpid())}))
    return path


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGILL, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE}


def classify_failure(defn: RuntimeDefinition, log_text: str, returncode: int | None = None) -> str:
    """crashed | oom | port_in_use | model_unreadable | exited, from the exit status and the log.

    Out of memory wins over a crash signal (llama.cpp aborts when an allocation fails); a crash
    signal wins over the other markers, so a segfault is never reported as a plain exit.
    """
    lowered = log_text.lower()
    if any(marker.lower() in lowered for marker in defn.oom_markers):
        return "oom"
    if returncode is not None and returncode < 0 and -returncode in CRASH_SIGNALS:
        return "crashed"
    for kind, markers in (("port_in_use", defn.port_in_use_markers), ("model_unreadable", defn.load_failure_markers)):
        if any(marker.lower() in lowered for marker in markers):
            return kind
    return "exited"


def exit_description(returncode: int) -> str:
    """`killed by SIGSEGV` for a signal (Popen reports -N), `exited with code N` otherwise."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def crash_lines(defn: RuntimeDefinition, log_text: str, limit: int = 12) -> list[str]:
    """The backtrace-like lines of a log tail (abort messages, frames), newest last."""
    patterns = [re.compile(p) for p in defn.crash_markers]
    kept = [line.rstrip() for line in log_text.splitlines() if any(p.search(line) for p in patterns)]
    return kept[-limit:]


def describe_exit(defn: RuntimeDefinition, returncode: int, log_text: str) -> tuple[str, str]:
    """(kind, what happened) for a runtime process that has exited."""
    kind = classify_failure(defn, log_text, returncode)
    what = {"oom": "ran out of memory", "port_in_use": "could not bind its port",
            "model_unreadable": "could not load the model file",
            "crashed": f"crashed ({exit_description(returncode)})",
            "exited": exit_description(returncode)}[kind]
    if kind == "crashed":
        frames = crash_lines(defn, log_text)
        if frames:
            what += "; crash lines: " + " | ".join(frames)
    return kind, what


# ---------------------------------------------------------------------------------------
# The supervised process


@dataclass
class RunningRuntime:
    """A started runtime. `base_url` serves /v1/chat/completions; stop() is idempotent."""

    defn: RuntimeDefinition
    command: LaunchCommand
    port: int
    log_path: Path
    model_id: str
    process: subprocess.Popen | None = None
    pidfile: Path | None = None
    engine_version: str | None = None
    starts: int = 0
    ready_ms: list[float] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        reap_orphans()
        check_port_free(self.port)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.command.env}
        with open(self.log_path, "ab") as log:
            log.write(f"--- weeyuga start {time.strftime('%Y-%m-%dT%H:%M:%S')}: {' '.join(self.command.argv)}\n".encode())
            log.flush()
            try:
                self.process = subprocess.Popen(
                    self.command.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                    **spawn_options())
            except OSError as exc:
                raise LaunchError("exited", f"cannot start {self.command.argv[0]}: {exc.strerror}") from None
        self.pidfile = _write_pidfile(self.process, self.command.argv)
        self.starts += 1

    def wait_ready(self, timeout_s: float = STALL_TIMEOUT_S, poll_s: float = 0.1,
                   clock: Callable[[], float] = time.monotonic) -> float:
        """Block until the health endpoint answers 200; returns milliseconds from start.

        `timeout_s` is a stall timeout: it restarts whenever the runtime's log grows, because
        a runtime that is still logging is still loading (a large model on a slow disk).
        """
        started = last_progress = clock()
        log_size = self._log_size()
        url = self.base_url + self.defn.health_path
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    self._fail_exited(code)
                try:
                    if client.get(url).status_code == 200:
                        elapsed = (clock() - started) * 1000
                        self.ready_ms.append(elapsed)
                        return elapsed
                except httpx.HTTPError:
                    pass  # not listening yet, or loading (llama-server answers 503 while loading)
                size = self._log_size()
                if size != log_size:
                    log_size, last_progress = size, clock()
                if clock() - last_progress > timeout_s:
                    tail = log_tail(self.log_path)
                    self.stop()
                    what = f"made no progress for {timeout_s:.0f} s and never became healthy"
                    raise LaunchError("timeout", f"{self.defn.name} {what} ({' '.join(self.command.argv)}); "
                                      f"last log lines:\n{tail}", tail, what)
                time.sleep(poll_s)

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def exit_failure(self, wait_s: float = 2.0) -> LaunchError | None:
        """The process has died on its own (a crash mid-run, say): what happened, else None.

        Waits up to `wait_s`: a dropped connection arrives a moment before the dying process is reaped.
        """
        if self.process is None:
            return None
        try:
            code = self.process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return None
        tail = log_tail(self.log_path, 40)
        kind, what = describe_exit(self.defn, code, tail)
        short_tail = "\n".join(tail.splitlines()[-LOG_TAIL_LINES:])
        return LaunchError(kind, f"{self.defn.name} {what} ({' '.join(self.command.argv)}); "
                           f"last log lines:\n{short_tail}", short_tail, what)

    def crash_note(self, wait_s: float = 0.5) -> str | None:
        """For a ledger: what killed the runtime mid-run, with directories stripped from the text
        (log lines and frames name local paths), or None while it is alive."""
        died = self.exit_failure(wait_s)
        if died is None:
            return None
        return re.sub(r"(?:/[\w.+-]+)+/", "", f"{self.defn.name} {died.what}")

    def _fail_exited(self, code: int) -> None:
        tail = log_tail(self.log_path, 40)
        self.stop()
        kind, what = describe_exit(self.defn, code, tail)
        short_tail = "\n".join(tail.splitlines()[-LOG_TAIL_LINES:])
        raise LaunchError(kind, f"{self.defn.name} {what} during startup ({' '.join(self.command.argv)}); "
                          f"last log lines:\n{short_tail}", short_tail, f"{what} during startup")

    def stop(self, grace_s: float = 10.0) -> None:
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            kill_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                kill_group(proc)
                proc.wait()
        # Helpers the runtime spawned into its group must not outlive it either.
        kill_group(proc)
        if self.pidfile:
            self.pidfile.unlink(missing_ok=True)
        self.process = None

    def restart(self, timeout_s: float = STALL_TIMEOUT_S) -> float:
        """A real cold start: a fresh process that loads the model from disk again."""
        self.stop()
        self.start()
        return self.wait_ready(timeout_s)

    def query_version(self) -> str | None:
        return binary_version(self.command.argv[0], tuple(self.defn.version_args))


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


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so every `finally` that stops a runtime runs."""
    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError, AttributeError):
            signal.signal(sig, raise_interrupt)
