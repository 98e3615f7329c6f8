from __future__ import annotations

import pytest

from vand_ros.controller.timing import LoopMonitor


def test_period_error_compute_and_overruns_from_injected_times() -> None:
    mon = LoopMonitor(rate=100.0, window=10)  # 10 ms period
    starts = [0, 10_000_000, 20_500_000, 30_000_000, 45_000_000]  # errors: 0, 0.5, 0.5, 5 ms
    computes = [1_000_000, 2_000_000, 1_000_000, 12_000_000, 1_000_000]  # one overrun (12 ms > 10 ms)
    for s, c in zip(starts, computes, strict=True):
        mon.tick(s, c)
    summary = mon.summary()
    assert summary.ticks == 5
    assert summary.overruns_total == 1
    assert summary.period_error_ms["max"] == pytest.approx(5.0)
    assert summary.period_error_ms["p50"] == pytest.approx(0.5)
    assert summary.compute_ms["max"] == pytest.approx(12.0)


def test_restart_does_not_count_a_pause_as_period_error() -> None:
    mon = LoopMonitor(rate=50.0)
    mon.tick(0, 1)
    mon.restart()
    mon.tick(10_000_000_000, 1)
    assert mon.summary().period_error_ms["max"] == 0.0


def test_window_slides() -> None:
    mon = LoopMonitor(rate=10.0, window=3)
    for i in range(10):
        mon.tick(i * 100_000_000, 50_000_000 if i == 0 else 1_000_000)
    assert mon.summary().compute_ms["max"] == pytest.approx(1.0)
    assert mon.ticks_total == 10
