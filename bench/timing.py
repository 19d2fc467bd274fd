"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_thread_ms(function: Callable[[], object], repeats: int) -> float:
    """Median CPU time of this thread (`time.thread_time`, ms) over `repeats` calls of `function`: one thread's
    work, not the wall clock of a machine other processes share."""
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        function()
        times.append(time.thread_time() - start)
    return 1000 * statistics.median(times)
