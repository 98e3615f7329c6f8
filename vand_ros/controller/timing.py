"""Deadline accounting for the control loop. Pure Python + numpy; time is passed in, never read here.

The node calls `tick(start_ns, compute_ns)` once per control tick: the tick's start time on the loop's
clock (the steady wall clock on a robot; the ROS clock under `use_sim_time`, where the wall period means
nothing) and the tick's compute time on the steady clock. The monitor keeps a window of ticks and
summarises it for /diagnostics: period error (actual minus nominal period between tick starts), compute
time, and overruns (ticks whose compute time exceeded the period).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LoopSummary:
    ticks: int  # ticks in the window
    overruns_total: int  # since start
    period_error_ms: dict[str, float]  # |actual - nominal| period [ms]: p50, p99, max
    compute_ms: dict[str, float]  # compute time per tick [ms]: p50, p99, max


class LoopMonitor:
    """Period error, compute time and overruns over a sliding window of ticks."""

    def __init__(self, rate: float, window: int = 1000) -> None:
        self.period_ns = 1e9 / rate
        self._last_start: int | None = None
        self._errors: deque[float] = deque(maxlen=window)  # [ns]
        self._compute: deque[float] = deque(maxlen=window)  # [ns]
        self.overruns = 0
        self.ticks_total = 0

    def tick(self, start_ns: int, compute_ns: int) -> None:
        if self._last_start is not None:
            self._errors.append(abs((start_ns - self._last_start) - self.period_ns))
        self._last_start = start_ns
        compute = float(compute_ns)
        self._compute.append(compute)
        self.ticks_total += 1
        if compute > self.period_ns:
            self.overruns += 1

    def restart(self) -> None:
        """Forget the last tick start (after a pause, e.g. the clock jumped or the node was disabled)."""
        self._last_start = None

    def summary(self) -> LoopSummary:
        return LoopSummary(
            ticks=len(self._compute),
            overruns_total=self.overruns,
            period_error_ms=_stats(self._errors),
            compute_ms=_stats(self._compute),
        )


def _stats(values: deque[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    x = np.fromiter(values, dtype=np.float64) / 1e6
    return {"p50": float(np.percentile(x, 50)), "p99": float(np.percentile(x, 99)), "max": float(x.max())}
