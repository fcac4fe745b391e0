"""Injected CPU sensor readings for the thermal evidence (plan/probe/sensors.py, measure/resources.py).

Not a machine's sensors: they prove only that our code reads and judges such readings correctly.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from orchestrator.plan.probe.sensors import CpuSources

# What samplers read in unit tests (tests/conftest.py): nothing at all.
QUIET_CPU = CpuSources(cpu_freq=lambda: [], temperatures=dict, sysfs=Path("/nonexistent-sysfs"), platform="linux",
                       command=lambda argv: None)


class ReplayedCpu:
    """A CPU whose readings advance one step per read: frequencies per core (MHz), a temperature with its
    `high` mark, and the kernel's throttle counter, written into a sysfs tree under `root`."""

    def __init__(self, root: Path, steps: list[dict], max_mhz: float = 3600.0, high_c: float = 90.0):
        self.root, self.steps, self.max_mhz, self.high_c, self.index = root, steps, max_mhz, high_c, -1
        cores = len(steps[0]["freq_mhz"])
        for core in range(cores):
            folder = root / f"devices/system/cpu/cpu{core}"
            (folder / "cpufreq").mkdir(parents=True, exist_ok=True)
            (folder / "thermal_throttle").mkdir(parents=True, exist_ok=True)
            (folder / "cpufreq/cpuinfo_max_freq").write_text(f"{int(max_mhz * 1000)}\n")

    def advance(self) -> dict:
        self.index = min(self.index + 1, len(self.steps) - 1)
        step = self.steps[self.index]
        for core in range(len(step["freq_mhz"])):
            path = self.root / f"devices/system/cpu/cpu{core}/thermal_throttle/core_throttle_count"
            path.write_text(f"{step.get('throttle_count', 0) if core == 0 else 0}\n")
        return step

    def cpu_freq(self):
        step = self.advance()
        return [SimpleNamespace(current=f, min=800.0, max=self.max_mhz) for f in step["freq_mhz"]]

    def temperatures(self):
        step = self.steps[max(self.index, 0)]
        return {"coretemp": [SimpleNamespace(label="Package id 0", current=step["temp_c"], high=self.high_c,
                                             critical=self.high_c + 10)]}

    def sources(self) -> CpuSources:
        return CpuSources(cpu_freq=self.cpu_freq, temperatures=self.temperatures, sysfs=self.root, platform="linux",
                          command=lambda argv: None)
