"""NVML answered from a recording: a JSON file of boards, named by WEEYUGA_NVML_RECORDING.

For rehearsing the GPU paths on a machine without one (`benchmarks/gpu/kit.py --rehearsal` plays an H100
whose free memory fits a model only partly) and for replaying a board a volunteer recorded. Only the
calls weeyuga makes are answered; the numbers are the recording's, so nothing measured against it is
evidence about a GPU. Unset (the normal case), weeyuga reads the real NVML.

    {"driver": "580.159.04", "boards": [{"name": "NVIDIA H100 80GB HBM3", "total_bytes": 85899345920,
      "free_bytes": 8589934592, "bus_width_bits": 5120, "mem_clock_mhz": 2619, "compute_cap": [9, 0]}]}
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from orchestrator.core.errors import BadInput

ENV = "WEEYUGA_NVML_RECORDING"
NOT_SUPPORTED = "NVML_ERROR_NOT_SUPPORTED"


class RecordedNVML:
    NVML_CLOCK_MEM = 2

    def __init__(self, boards: list[dict[str, Any]], driver: str) -> None:
        self.boards, self.driver = boards, driver

    @classmethod
    def load(cls, path: Path) -> "RecordedNVML":
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            boards = [dict(board) for board in doc["boards"]]
            for board in boards:
                int(board["total_bytes"]), int(board["free_bytes"]), str(board["name"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BadInput(f"{ENV}={path}: not an NVML recording ({type(exc).__name__}: {exc})") from None
        return cls(boards, str(doc.get("driver", "recorded")))

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        pass

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver

    def nvmlDeviceGetCount(self) -> int:
        return len(self.boards)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict[str, Any]:
        return self.boards[index]

    def nvmlDeviceGetName(self, board: dict[str, Any]) -> str:
        return board["name"]

    def nvmlDeviceGetMemoryInfo(self, board: dict[str, Any]) -> SimpleNamespace:
        total, free = board["total_bytes"], board["free_bytes"]
        return SimpleNamespace(total=total, free=free, used=total - free)

    def nvmlDeviceGetCudaComputeCapability(self, board: dict[str, Any]) -> tuple[int, int]:
        return tuple(board.get("compute_cap", (9, 0)))

    def nvmlDeviceGetMemoryBusWidth(self, board: dict[str, Any]) -> int:
        return self._given(board, "bus_width_bits")

    def nvmlDeviceGetMaxClockInfo(self, board: dict[str, Any], clock: int) -> int:
        return self._given(board, "mem_clock_mhz")

    def nvmlDeviceGetUtilizationRates(self, board: dict[str, Any]) -> SimpleNamespace:
        return SimpleNamespace(gpu=board.get("utilisation", 0), memory=0)

    def nvmlDeviceGetComputeRunningProcesses(self, board: dict[str, Any]) -> list:
        raise RuntimeError(NOT_SUPPORTED)  # a recording has no live processes

    def nvmlDeviceGetProcessUtilization(self, board: dict[str, Any], last_seen_timestamp: int) -> list:
        raise RuntimeError(NOT_SUPPORTED)

    @staticmethod
    def _given(board: dict[str, Any], key: str) -> int:
        if board.get(key) is None:
            raise RuntimeError(NOT_SUPPORTED)
        return int(board[key])
