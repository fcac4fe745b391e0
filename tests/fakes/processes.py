"""A stand-in for the parts of psutil that contention.py and liveruns.py read: the machine's CPU
counters and a process table. Tests move the counters by hand (`spend`), so a share is exact.

Not psutil: it proves only that our arithmetic and bookkeeping are right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace


class NoSuchProcess(Exception):
    pass


@dataclass
class FakeProcess:
    pid: int
    create_time_s: float = 1000.0
    user: float = 0.0
    system: float = 0.0
    children_user: float = 0.0
    children_system: float = 0.0
    kids: list["FakeProcess"] = field(default_factory=list)

    def cpu_times(self):
        return SimpleNamespace(user=self.user, system=self.system, children_user=self.children_user,
                               children_system=self.children_system)

    def children(self, recursive: bool = False):
        found = []
        for kid in self.kids:
            found.append(kid)
            if recursive:
                found += kid.children(recursive=True)
        return found

    def create_time(self):
        return self.create_time_s


class FakeProcessTable:
    Error = NoSuchProcess

    def __init__(self, cpus: int = 2, processes: list[FakeProcess] | None = None) -> None:
        self.cpus = cpus
        self.busy_s = 0.0  # every CPU's non-idle seconds
        self.processes = {p.pid: p for p in processes or []}

    def add(self, process: FakeProcess, parent: int | None = None) -> FakeProcess:
        self.processes[process.pid] = process
        if parent is not None:
            self.processes[parent].kids.append(process)
        return process

    def spend(self, seconds: float, pid: int | None = None) -> None:
        """CPU time used by `pid` (None: a process that is not in the table, someone else's)."""
        self.busy_s += seconds
        if pid is not None:
            self.processes[pid].user += seconds

    def cpu_times(self):
        return SimpleNamespace(user=self.busy_s, nice=0.0, system=0.0, irq=0.0, softirq=0.0, idle=0.0, steal=5.0)

    def cpu_count(self):
        return self.cpus

    def Process(self, pid: int) -> FakeProcess:  # noqa: N802  (psutil's name)
        if pid not in self.processes:
            raise NoSuchProcess(pid)
        return self.processes[pid]
