"""Containment of model-written code without Docker, in one place for the agent suite and codeexec
(issue #25 §1): the probe of what this machine offers, the confinement command line, the rlimits,
and `ContainedFolder`, an attempt folder whose commands run contained.

An attempt folder (`weeyuga-agent-<owner>-*` or `weeyuga-code-<owner>-*` under the temp folder; the
owner is the pid and start time of the weeyuga that made it, so a later start removes those of dead
owners, as after a kill -9) holds `workspace/` (where commands run) and `scratch/` (HOME, TMPDIR,
reports and build output; outside the workspace so the agent's file tools never see it).

Containment (`probe_containment`, once per process, tried for real):
- Linux, `bwrap` (Debian's bubblewrap): new mount, pid, net, ipc and uts namespaces (and a user
  namespace when weeyuga is not root). The root is an empty tmpfs holding read-only binds of the
  system folders (profiles/sandbox.yaml `process.read_only`) and of the Python weeyuga runs on;
  home, weeyuga's cache and repo are not there. The attempt folder is the only writable path (its
  frozen parts, the agent's tests/, read-only); /tmp is private and read-only; no network but loopback; the pid
  namespace, daemons included, ends with the command. When weeyuga is root the command runs as
  `user` (nobody) without capabilities (setpriv), so root-only files stay unreadable and
  RLIMIT_NPROC holds.
- macOS, `sandbox-exec` with a deny-by-default profile.
- Otherwise none: model-written code runs only on an explicit `--sandbox none` (recorded), with
  the old measures: rlimits, a scrubbed environment, the process group killed, `unshare -rn`.
Every command also gets rlimits (CPU, file size, open files, processes, no core dumps, address
space where the toolchain allows) and a wall timeout that kills its whole process group.
Landlock is not used: bwrap's mount namespace already limits what is reachable.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import psutil

from orchestrator.core import datafiles, procs
from orchestrator.core.errors import WeeyugaError
from orchestrator.core.paths import data_dir

SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
CONFIG_PATH = data_dir("profiles") / "sandbox.yaml"
AGENT_PREFIX = "weeyuga-agent-"
CODE_PREFIX = "weeyuga-code-"
ATTEMPT_NAME = re.compile(r"^weeyuga-(?:agent|code)-(\d+)_(\d+)-")  # <prefix><pid>_<start time in centiseconds>-
PROBE_TIMEOUT_S = 30
NAMESPACE_END_S = 10
HOW_TO_CONTAIN = ("install bubblewrap (apt-get install bubblewrap) or use --sandbox docker; --sandbox none runs it "
                  "uncontained, recorded as such")
STRENGTHS = {"docker": "container", "bwrap": "namespaces", "sandbox-exec": "sandbox-exec"}  # contained methods


class NoContainment(WeeyugaError):
    """Nothing here can contain model-written code, and running it uncontained was not asked for."""


@dataclass(frozen=True)
class Limits:
    cpu_s: int = 120
    file_size_mb: int = 64
    open_files: int = 256
    memory_mb: int | None = None  # address space; None where the runtime cannot live under one (node)


# ---------------------------------------------------------------------------------------
# Containment: what this machine offers, probed once


@dataclass(frozen=True)
class ProcessConfig:
    read_only: tuple[str, ...]  # system folders bound read-only (a symlink, as /bin on merged /usr, stays one)
    pids: int  # processes the sandbox user may run at once (RLIMIT_NPROC, above what it already runs)
    uid: int  # who commands run as when weeyuga is root
    gid: int


@lru_cache(maxsize=None)
def process_config(path: Path = CONFIG_PATH) -> ProcessConfig:
    doc = datafiles.load(path, "sandbox")
    uid, gid = (int(part) for part in doc["user"].split(":"))
    process = doc["process"]
    return ProcessConfig(tuple(process["read_only"]), process["pids"], uid, gid)


@dataclass(frozen=True)
class Containment:
    method: str  # docker | bwrap | sandbox-exec | none
    net_isolated: bool
    detail: str  # what contains the code, or why nothing does

    @property
    def contained(self) -> bool:
        return self.method != "none"

    @property
    def strength(self) -> str:
        """As the manifest records it: container | namespaces | sandbox-exec | network-only | none."""
        if self.contained:
            return STRENGTHS[self.method]
        return "network-only" if self.net_isolated else "none"


def running_as_root() -> bool:
    return os.geteuid() == 0


@lru_cache(maxsize=None)
def network_isolation_works() -> bool:
    """Probed once: can this user make an empty network namespace (`unshare -rn`)?"""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    try:
        return procs.run_captured([unshare, "-rn", "true"], timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def uncontained() -> Containment:
    """What `--sandbox none` runs with: the old measures only."""
    isolated = network_isolation_works()
    return Containment("none", isolated, "no containment (opted in with --sandbox none): rlimits, a scrubbed "
                       f"environment{' and unshare -rn' if isolated else ''} only; the code can read and write what you can")


@lru_cache(maxsize=None)
def probe_containment() -> Containment:
    """The strongest containment that works here, tried for real: the interpreter runs in it."""
    method, why_not = ("sandbox-exec", None) if sys.platform == "darwin" else ("bwrap", None)
    tool = shutil.which(method) or shutil.which(method, path="/usr/bin:/usr/sbin")
    if tool is None:
        why_not = (f"{method} is not installed" + (" (apt-get install bubblewrap)" if method == "bwrap" else ""))
    elif method == "bwrap" and running_as_root() and shutil.which("setpriv") is None:
        why_not = "setpriv (util-linux) is not installed; as root the sandbox needs it to drop to an unprivileged user"
    if why_not is None:
        trial = ContainedFolder(Limits(cpu_s=10), Containment(method, True, ""), prefix=AGENT_PREFIX)
        try:
            log = trial.scratch / "probe.log"
            code, _, _ = trial.execute([sys.executable, "-I", "-c", "pass"], PROBE_TIMEOUT_S, log, log)
            output = log.read_text(errors="replace").strip()
        finally:
            trial.destroy()
        if code == 0:
            return Containment(method, True, f"{tool_version(tool) if method == 'bwrap' else method}: " + (
                "mount, pid, net, ipc and uts namespaces; read-only system, private /tmp, only the attempt folder "
                "writable" + (f"; runs as {process_config().uid} without capabilities" if running_as_root() else "")
                if method == "bwrap" else "deny-by-default profile; only the attempt folder writable, no network"))
        why_not = f"{method} does not work here: {output.splitlines()[-1][:200] if output else f'exit {code}'}"
    return Containment("none", network_isolation_works(), why_not)


def tool_version(tool: str) -> str:
    """`bubblewrap 0.8.0`, or the tool's path where it does not say."""
    try:
        return procs.run_captured([tool, "--version"], timeout=10).stdout.strip() or tool
    except (OSError, subprocess.TimeoutExpired):
        return tool


def bwrap_prefix(bwrap: str, base: Path, cwd: Path, frozen: tuple[Path, ...], config: ProcessConfig) -> list[str]:
    """The bwrap command line that puts a command into the sandbox (pure: tests read it)."""
    as_root = running_as_root()
    argv = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try"]
    if not as_root:  # root drops to an unprivileged user instead (setpriv below): a user namespace would map it to root
        argv.append("--unshare-user")
    bound: list[str] = []
    for folder in config.read_only:
        if os.path.islink(folder):
            argv += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            argv += ["--ro-bind", folder, folder]
            bound.append(folder)
    for prefix in interpreter_roots(tuple(bound)):
        argv += ["--ro-bind", prefix, prefix]
        # bwrap makes the folders above a bind with their host modes (/root is 0700): let the user through
        for parent in reversed(Path(prefix).parents[:-1]):
            argv += ["--chmod", "0755", str(parent)]
    # /tmp: private, empty and read-only around the attempt folder (TMPDIR is in its scratch), so that no
    # tmpfs can fill memory (bwrap's --size needs 0.7, newer than Ubuntu 22.04's)
    argv += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--bind", str(base), str(base), "--remount-ro", "/tmp"]
    for path in frozen:
        argv += ["--ro-bind", str(path), str(path)]
    argv += ["--chdir", str(cwd)]
    if as_root:
        argv += [shutil.which("setpriv") or "setpriv", f"--reuid={config.uid}", f"--regid={config.gid}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return argv


def interpreter_roots(bound: tuple[str, ...]) -> list[str]:
    """The Python weeyuga runs on (and so the tasks' `{python}`), where no read-only system folder holds it."""
    roots = []
    for path in sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, Path(sys.executable).resolve().parent.parent)}):
        if path != "/" and not any(path == b or path.startswith(b.rstrip("/") + "/") for b in (*bound, *roots)):
            roots.append(path)
    return roots


def sandbox_exec_profile(base: Path, read_only: tuple[str, ...]) -> str:
    """macOS: deny everything, then allow running programs, reading the system and the interpreter,
    and writing the attempt folder; no network."""
    readable = [*read_only, "/System", "/Library", "/private/etc", "/private/var/db/dyld", "/dev",
                *interpreter_roots(())]
    return "\n".join([
        "(version 1)",
        "(deny default)",
        "(allow process-fork)",
        "(allow process-exec)",
        "(allow signal (target same-sandbox))",
        "(allow sysctl-read)",
        "(allow file-read-metadata)",
        "(allow file-read* " + " ".join(f'(subpath "{path}")' for path in readable) + ")",
        f'(allow file-read* file-write* (subpath "{base}"))',
        '(allow file-write-data (literal "/dev/null"))',
        "(deny network*)",
    ])


# ---------------------------------------------------------------------------------------
# Attempt folders and their owners


def owner_label(pid: int | None = None) -> str:
    """`<pid>:<start time>` of a process, so a reused pid is not taken for the owner."""
    process = psutil.Process(pid or os.getpid())
    return f"{process.pid}:{process.create_time():.2f}"


def owner_alive(label: str) -> bool:
    try:
        pid, started = label.split(":", 1)
        return owner_label(int(pid)) == f"{int(pid)}:{float(started):.2f}"
    except (ValueError, psutil.Error):
        return False


def attempt_folder(prefix: str) -> Path:
    """A fresh attempt folder whose name carries its owner (the sandboxed code cannot rename it)."""
    reap_stale_attempts_once()
    pid, started = owner_label().split(":")
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{pid}_{round(float(started) * 100)}-"))


def reap_stale_attempts(root: Path | None = None) -> list[Path]:
    """Remove the attempt folders whose weeyuga is gone (killed with -9); the removed folders."""
    removed = []
    for folder in sorted(Path(root or tempfile.gettempdir()).glob("weeyuga-*-*")):
        named = ATTEMPT_NAME.match(folder.name)
        if named and folder.is_dir() and not owner_alive(f"{named.group(1)}:{int(named.group(2)) / 100:.2f}"):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


_REAPED: list[bool] = []


def reap_stale_attempts_once() -> None:
    if not _REAPED:
        _REAPED.append(True)
        reap_stale_attempts()


def hand_over(folder: Path, uid: int, gid: int) -> None:
    """When weeyuga is root, the folder belongs to the unprivileged sandbox user before each command
    (the host side wrote files as root since the last one); root on the host can still read it."""
    if not running_as_root():
        return
    os.chown(folder, uid, gid)
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def wait_namespace_gone(info_fd: int, within_s: float = NAMESPACE_END_S) -> None:
    """Once bwrap is gone its pid namespace's init gets SIGKILL, and the kernel kills everything in
    the namespace with it (daemons included): wait until that init is gone, so nothing of a command
    still runs when the next one, or the gate's restore, starts."""
    try:
        os.set_blocking(info_fd, False)
        pid = json.loads(os.read(info_fd, 65536) or b"{}").get("child-pid")
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + within_s
    while pid and time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.Error:
            return
        time.sleep(0.01)


def user_processes(uid: int) -> int:
    """Processes running as `uid` (the owner of /proc/<pid>): a stat each, where psutil took 50 ms."""
    count = 0
    with os.scandir("/proc") as entries:
        for entry in entries:
            try:
                count += entry.name.isdigit() and entry.stat(follow_symlinks=False).st_uid == uid
            except OSError:
                continue
    return count


# ---------------------------------------------------------------------------------------
# A contained attempt folder


class ContainedFolder:
    """An attempt folder and its commands, contained as `containment` says."""

    kind = "process"

    def __init__(self, limits: Limits | None = None, containment: Containment | None = None,
                 prefix: str = AGENT_PREFIX) -> None:
        """`containment`: None probes this machine's and refuses to go on without one; running
        uncontained takes `uncontained()`, passed on purpose (`--sandbox none`)."""
        self.containment = containment or probe_containment()
        if not self.containment.contained and containment is None:
            raise NoContainment(f"model-written code does not run here: {self.containment.detail} ({HOW_TO_CONTAIN})")
        self.kind = type(self).kind if self.containment.contained else "none"
        self.net_isolated = self.containment.net_isolated
        self.base = attempt_folder(prefix)
        self.workspace = self.base / "workspace"
        self.scratch = self.base / "scratch"
        self.limits = limits
        self.nproc = 0  # RLIMIT_NPROC of the next command; 0: none
        self.make_folders()

    def make_folders(self) -> None:
        shutil.rmtree(self.workspace, ignore_errors=True)
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.workspace.mkdir()
        for folder in ("home", "tmp", "build"):
            (self.scratch / folder).mkdir(parents=True)

    def environment(self) -> dict[str, str]:
        """Nothing of the caller's environment: no HOME, proxies, tokens or tool settings."""
        return {
            "PATH": SANDBOX_PATH, "HOME": str(self.scratch / "home"), "TMPDIR": str(self.scratch / "tmp"),
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "NO_COLOR": "1", "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1", "PYTHONHASHSEED": "0",
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # only pytest itself: faster, and no plugin can alter verdicts
        }

    def frozen(self) -> tuple[Path, ...]:
        """Folders of the workspace the commands may read but not change."""
        return ()

    def confinement(self) -> list[str]:
        """The argv prefix that contains a command (empty: uncontained without unshare)."""
        method = self.containment.method
        if method == "bwrap":
            return bwrap_prefix(shutil.which("bwrap") or "bwrap", self.base, self.workspace, self.frozen(), process_config())
        if method == "sandbox-exec":
            return [shutil.which("sandbox-exec") or "sandbox-exec", "-p", sandbox_exec_profile(self.base, process_config().read_only)]
        return [shutil.which("unshare") or "unshare", "-rn"] if self.net_isolated else []

    def apply_limits(self) -> None:
        """In the child before exec (bwrap itself is small and runs under them too)."""
        procs.die_with_parent()
        limits = self.limits or Limits()
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_mb * 2**20,) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if self.nproc:
            resource.setrlimit(resource.RLIMIT_NPROC, (self.nproc,) * 2)
        if limits.memory_mb:
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * 2**20,) * 2)

    def execute(self, argv: list[str], timeout_s: float, stdout: Path, stderr: Path) -> tuple[int | None, bool, float]:
        """Run `argv` contained in the workspace, output to files (so RLIMIT_FSIZE caps it too):
        (exit code, None when the wall timeout killed it; timed out; seconds)."""
        config = process_config()
        if self.containment.contained:
            hand_over(self.base, config.uid, config.gid)
        # RLIMIT_NPROC counts every process of the user: above what it runs already (root is never limited)
        user = config.uid if running_as_root() and self.containment.method == "bwrap" else os.getuid()
        self.nproc = 0 if user == 0 else config.pids + user_processes(user)
        options = procs.spawn_options()
        options["preexec_fn"] = self.apply_limits
        confinement = self.confinement()
        info_read, info_write = os.pipe()  # bwrap writes the host pid of the namespace's init here
        if self.containment.method == "bwrap":
            confinement[1:1] = ["--info-fd", str(info_write)]
        started = time.monotonic()
        try:
            with open(stdout, "wb") as out, open(stderr, "ab" if stderr == stdout else "wb") as err:
                try:
                    proc = subprocess.Popen([*confinement, *argv], cwd=self.workspace, env=self.environment(),
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=err, pass_fds=(info_write,), **options)
                except OSError as exc:
                    err.write(f"cannot start {argv[0]}: {exc}".encode())
                    return 127, False, time.monotonic() - started
                finally:
                    os.close(info_write)
                # A timer kills the group at the deadline while wait() blocks: Popen.wait(timeout) polls
                # with sleeps of up to 50 ms, which every short command would pay.
                expired = threading.Event()
                timer = threading.Timer(timeout_s, lambda: (expired.set(), procs.kill_group(proc)))
                timer.start()
                try:
                    code: int | None = proc.wait()
                finally:
                    timer.cancel()
                    procs.kill_group(proc)  # also whatever the command left running in its group
                    proc.wait()
                    wait_namespace_gone(info_read)
                if expired.is_set():
                    code = None
        finally:
            os.close(info_read)
        return code, code is None, time.monotonic() - started

    def destroy(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)
