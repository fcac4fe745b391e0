"""A stand-in for the pynvml module: the calls weeyuga makes, answered from a list of boards.

Not NVML: it proves only that our code reads NVML's answers correctly.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace


@dataclass
class FakeBoard:
    name: str
    total_bytes: int
    free_bytes: int
    compute_cap: tuple[int, int] = (8, 6)
    bus_width_bits: int | None = 384
    mem_clock_mhz: int | None = 9751
    used_bytes_by_us: int = 0
    utilisation: int = 0
    # compute processes on the board: (pid, bytes used, SM utilisation %); None: NVML says NOT_SUPPORTED
    processes: list[tuple[int, int, int]] | None = None


class FakeNVML:
    NVML_CLOCK_MEM = 2

    def __init__(self, boards: list[FakeBoard], driver: str = "550.54.14"):
        self.boards = boards
        self.driver = driver
        self.shutdowns = 0

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self):
        return self.driver.encode()  # older bindings return bytes

    def nvmlDeviceGetCount(self):
        return len(self.boards)

    def nvmlDeviceGetHandleByIndex(self, index):
        return self.boards[index]

    def nvmlDeviceGetName(self, board):
        return board.name

    def nvmlDeviceGetMemoryInfo(self, board):
        used = board.total_bytes - board.free_bytes + board.used_bytes_by_us
        return SimpleNamespace(total=board.total_bytes, free=board.total_bytes - used, used=used)

    def nvmlDeviceGetCudaComputeCapability(self, board):
        return board.compute_cap

    def nvmlDeviceGetMemoryBusWidth(self, board):
        if board.bus_width_bits is None:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return board.bus_width_bits

    def nvmlDeviceGetMaxClockInfo(self, board, clock):
        assert clock == self.NVML_CLOCK_MEM
        if board.mem_clock_mhz is None:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return board.mem_clock_mhz

    def nvmlDeviceGetUtilizationRates(self, board):
        return SimpleNamespace(gpu=board.utilisation, memory=0)

    def nvmlDeviceGetComputeRunningProcesses(self, board):
        if board.processes is None:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used, _ in board.processes]

    def nvmlDeviceGetProcessUtilization(self, board, last_seen_timestamp):
        if board.processes is None:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return [SimpleNamespace(pid=pid, smUtil=util, memUtil=0, timeStamp=1) for pid, _, util in board.processes]
