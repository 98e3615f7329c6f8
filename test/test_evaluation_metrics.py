"""Closed-loop metrics on synthetic signals: each failure mode is caught, and only that one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vand_ros.evaluation.metrics import (
    BehaviourReference,
    SuccessConfig,
    dominant_period,
    periodic_metrics,
    sequential_metrics,
)
from vand_ros.simulation import model as M

DT = 0.05  # [s] control period
T = np.arange(0, 120, DT)  # (N,)
A, F = 0.2, 1 / 3.0  # [m], [Hz]
CFG = SuccessConfig()


def wipe_ref(shake: float) -> BehaviourReference:
    return BehaviourReference("wipe", 3, 25.0, (A, A), (F, F), shake)


def wipe_run(amp: np.ndarray | float, centre_x: np.ndarray | float = 2.0, noise: float = 0.0) -> tuple:
    rng = np.random.default_rng(0)
    y = amp * np.sin(2 * math.pi * F * T) + noise * rng.standard_normal(len(T))
    ee = np.column_stack([np.broadcast_to(centre_x, T.shape), y, np.full(len(T), 0.48)])  # (N, 3)
    base = np.tile([1.2, 0.0, 0.0], (len(T), 1))
    return base, ee


def clean_shake() -> float:
    """The reference's normalised jerk: the clean sinusoid's own (1/sqrt(2) up to sampling)."""
    _base, ee = wipe_run(A)
    from vand_ros.evaluation.metrics import measure_window

    return measure_window("stroke", T, ee[:, :2], ee).shake


def test_clean_sine_passes_and_measures_itself() -> None:
    base, ee = wipe_run(A)
    m = periodic_metrics("wipe", T, base, ee, wipe_ref(clean_shake()), CFG)
    assert m.success, m
    assert m.values["amp_rel_mean"] == pytest.approx(1.0, abs=0.01)
    assert m.values["freq_rel_mean"] == pytest.approx(1.0, abs=0.02)
    assert dominant_period(T, ee[:, 1]) == pytest.approx(3.0, rel=0.01)


def test_decaying_sine_fails_as_dying_out() -> None:
    base, ee = wipe_run(A * np.exp(-T / 30.0))
    m = periodic_metrics("wipe", T, base, ee, wipe_ref(clean_shake()), CFG)
    assert not m.success and "dying-out" in m.failures and "amplitude" in m.failures


def test_drifting_sine_fails_on_drift_only() -> None:
    base, ee = wipe_run(A, centre_x=2.0 + 0.002 * T)  # 0.24 m over the run: 1.2 amplitudes
    m = periodic_metrics("wipe", T, base, ee, wipe_ref(clean_shake()), CFG)
    assert m.failures == ["drift"], m


def test_noisy_sine_fails_on_shake_only() -> None:
    base, ee = wipe_run(A, noise=0.004)  # 4 mm of jitter at 20 Hz
    m = periodic_metrics("wipe", T, base, ee, wipe_ref(clean_shake()), CFG)
    assert m.failures == ["shake"], m


def test_wrong_frequency_and_backwards_loop_fail() -> None:
    base, ee = wipe_run(A)
    ref = BehaviourReference("wipe", 3, 25.0, (A, A), (F * 1.3, F * 1.3), clean_shake())
    assert "frequency" in periodic_metrics("wipe", T, base, ee, ref, CFG).failures
    # patrol: a counter-clockwise loop passes, the same loop driven clockwise fails on frequency.
    ref = BehaviourReference("patrol", 3, 25.0, (0.7, 0.7), (0.1, 0.1), 1.0)
    for sign, ok in ((1, True), (-1, False)):
        ang = sign * 2 * math.pi * 0.1 * T
        loop = np.column_stack([0.7 * np.cos(ang), 0.7 * np.sin(ang), ang])
        ee = np.column_stack([loop[:, :2], np.full(len(T), 0.9)])
        m = periodic_metrics("patrol", T, loop, ee, ref, CFG)
        assert m.success is ok and (ok or m.failures == ["frequency"]), m


def visit_run(order: list[str], stop: bool = True) -> tuple:
    """A base that parks next to each station and dips the end effector onto it, 6 s per station."""
    rows, ee, t = [], [], 0.0
    pose = np.array([0.0, 0.0])
    for name in order:
        sx, sy = M.STATIONS[name]
        for k in range(120):  # 6 s: drive 4 s, touch for 1 s, lift 1 s
            pose = pose + (np.array([sx - 0.6, sy]) - pose) * min(1.0, k / 80)
            z = 0.05 if 80 <= k < 100 else 0.5
            rows.append([pose[0], pose[1], 0.0])
            ee.append([sx if z < 0.1 else pose[0] + 0.3, sy, z])
            t += DT
    for _ in range(600):  # 30 s after the last station
        if not stop:
            pose = pose + np.array([0.01, 0.0])
        rows.append([pose[0], pose[1], 0.0])
        ee.append([pose[0] + 0.3, pose[1], 0.5])
    n = len(rows)
    return np.arange(n) * DT, np.array(rows), np.zeros((n, 6)), np.array(ee)


ABC = ["station_a", "station_b", "station_c"]
REF_ABC = BehaviourReference("visit_abc", 3, 28.0, order=tuple(ABC), completion=(17.0, 18.0))


@pytest.mark.parametrize(
    ("order", "stop", "failures"),
    [
        (ABC, True, []),
        (["station_b", "station_a", "station_c"], True, ["order", "incomplete"]),
        (ABC[:2], True, ["incomplete"]),
        (ABC, False, ["not-stopped"]),
    ],
)
def test_sequential_order_and_stop(order: list[str], stop: bool, failures: list[str]) -> None:
    t, base, joints, ee = visit_run(order, stop)
    m = sequential_metrics("visit_abc", t, base, joints, ee, REF_ABC, CFG)
    assert m.failures == failures, m
    if not failures:
        assert m.values["time_to_complete"] == pytest.approx(12 + 4, abs=0.2)  # first touch of C
