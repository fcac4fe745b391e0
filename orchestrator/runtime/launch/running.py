"""The supervised process: start, wait until healthy (with a stall timeout), name a failure, stop, restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx

from orchestrator.core.procs import binary_version
from orchestrator.core.procs import kill_group, spawn_options
from orchestrator.plan.runtimes import HOST, LaunchCommand, RuntimeDefinition
from orchestrator.runtime.launch.failures import LOG_TAIL_LINES, LaunchError, describe_exit, log_tail
from orchestrator.runtime.launch.processes import check_port_free, reap_orphans, write_pidfile

STALL_TIMEOUT_S = 120.0  # no health and no new log line for this long: the runtime is stuck


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
        self.pidfile = write_pidfile(self.process, self.command.argv)
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
