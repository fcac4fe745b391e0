"""Host memory bandwidth the way the decode roofline needs it: decoding streams the weights from
memory, reading far more than it writes, on several threads at once.

So the test reads a buffer much larger than any cache (numpy's max-reduction: vectorised, no
writes, and it releases the GIL) on one thread per physical core, each over its own slice, and
times the slowest; it repeats and records the median as the figure and the spread beside it.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from orchestrator.plan.probe.document import GB

MIB = 2**20
MAX_THREADS = 16
REPEATS = 5


@dataclass(frozen=True)
class HostBandwidth:
    gbps: float  # median over the repeats, GiB/s like every bandwidth in hardware.json
    gbps_min: float
    gbps_max: float
    repeats: int
    threads: int
    buffer_mib: int
    method: str = "read (numpy max-reduction), one slice per thread"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def buffer_mib(available_bytes: int | None) -> int:
    """Large against the last-level cache (tens to hundreds of MiB), small against free memory."""
    if not available_bytes:
        return 512
    return int(max(128, min(512, available_bytes // 16 // MIB)))


def measure_host_bandwidth(threads: int, available_bytes: int | None, repeats: int = REPEATS,
                           clock: Callable[[], float] = time.perf_counter) -> HostBandwidth | None:
    """None where numpy or the memory for the buffer is missing: the roofline then has no host figure."""
    try:
        import numpy
    except ImportError:
        return None
    threads = max(1, min(threads, MAX_THREADS))
    size = buffer_mib(available_bytes)
    try:
        buffer = numpy.ones(size * MIB // 8, dtype=numpy.float64)  # ones: every page is really mapped
    except MemoryError:
        return None
    slices = numpy.array_split(buffer, threads)
    samples = []
    for _ in range(repeats + 1):  # the first pass warms the page tables and the threads
        start_line, end_line = threading.Barrier(threads + 1), threading.Barrier(threads + 1)

        def read(part: Any) -> None:
            start_line.wait()
            part.max()
            end_line.wait()

        workers = [threading.Thread(target=read, args=(part,), daemon=True) for part in slices]
        for worker in workers:
            worker.start()
        start_line.wait()
        started = clock()
        end_line.wait()
        elapsed = clock() - started
        for worker in workers:
            worker.join()
        if elapsed > 0:
            samples.append(buffer.nbytes / elapsed / GB)
    samples = samples[1:]
    if not samples:
        return None
    return HostBandwidth(round(statistics.median(samples), 1), round(min(samples), 1), round(max(samples), 1),
                         len(samples), threads, size)
