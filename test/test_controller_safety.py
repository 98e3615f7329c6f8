"""The safety filter: no input makes it emit a command outside the limits or a NaN (property-based)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vand_ros.controller.safety import SafetyFilter, SafetyLimits
from vand_ros.errors import VandError

J = 4
RATE = 50.0
LIMITS = SafetyLimits(
    joint_lower=np.array([-1.0, -2.0, 0.0, -0.5]),
    joint_upper=np.array([1.0, 2.0, 2.5, 0.5]),
    joint_max_velocity=np.array([1.0, 1.0, 2.0, 0.5]),
    base_max_velocity=np.array([0.5, 0.5, 1.0]),
    base_max_acceleration=np.array([1.0, 1.0, 2.0]),
)
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)


def _vec(n: int) -> st.SearchStrategy[np.ndarray]:
    return arrays(np.float64, n, elements=ANY_FLOAT)


def _assert_safe(result, filt: SafetyFilter) -> None:
    if result is None:
        return
    assert result.joints.shape == (J,) and result.base.shape == (3,)
    assert np.all(np.isfinite(result.joints)) and np.all(np.isfinite(result.base))
    assert np.all(result.joints >= LIMITS.joint_lower) and np.all(result.joints <= LIMITS.joint_upper)
    assert np.all(np.abs(result.base) <= LIMITS.base_max_velocity)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(_vec(J), _vec(3), st.one_of(st.none(), _vec(J)), st.booleans()), min_size=1, max_size=20
    )
)
def test_no_input_sequence_gives_an_unsafe_command(steps) -> None:
    filt = SafetyFilter(LIMITS, RATE, blend_time=0.2)
    previous = None
    for joints, base, measured, hold in steps:
        result = filt.hold(measured) if hold else filt.filter(joints, base, measured)
        _assert_safe(result, filt)
        if result is not None and previous is not None and not hold:
            # The base command never changes faster than the acceleration bound, except to stop: a hold
            # (also for a bad action) stops it at once, and the next command starts from rest.
            if np.any(result.base != 0.0):
                assert np.all(np.abs(result.base - previous.base) <= filt.max_base_delta + 1e-12)
            # Between two published targets a joint never moves more than one step bound.
            assert np.all(np.abs(result.joints - previous.joints) <= filt.max_step + 1e-12) or np.array_equal(
                result.joints, np.clip(measured, LIMITS.joint_lower, LIMITS.joint_upper)
            )
        previous = result


def test_wrong_sizes_and_nan_give_the_hold_command() -> None:
    filt = SafetyFilter(LIMITS, RATE)
    measured = np.array([0.1, 0.2, 0.3, 0.4])
    for joints, base in [
        (np.zeros(J + 1), np.zeros(3)),
        (np.zeros(J), np.zeros(2)),
        (np.array([np.nan, 0, 0, 0]), np.zeros(3)),
        (np.zeros(J), np.array([0, np.inf, 0])),
    ]:
        result = filt.filter(joints, base, measured)
        assert result is not None
        np.testing.assert_array_equal(result.joints, measured)
        np.testing.assert_array_equal(result.base, np.zeros(3))


def test_hold_without_any_measurement_or_history_publishes_no_arm_target() -> None:
    filt = SafetyFilter(LIMITS, RATE)
    assert filt.hold(None) is None
    assert filt.hold(np.array([np.nan, 0, 0, 0])) is None
    assert filt.filter(np.zeros(J), np.zeros(3), None) is None


def test_blends_in_from_the_measured_pose_then_tracks() -> None:
    filt = SafetyFilter(LIMITS, RATE, blend_time=0.5)  # 25 ticks of ramp
    measured = np.zeros(J)
    filt.engage(measured)
    goal = np.array([0.9, 1.5, 2.0, 0.4])
    first = filt.filter(goal, np.zeros(3), measured)
    assert first is not None and first.clamped_step
    assert np.all(np.abs(first.joints) <= filt.max_step / 25 + 1e-12), (
        "first tick after enable moves a ramp step"
    )
    out = first
    for _ in range(400):
        out = filt.filter(goal, np.zeros(3), measured)
    assert out is not None
    np.testing.assert_allclose(out.joints, goal)
    assert not out.clamped_step


def test_position_and_base_limits_apply() -> None:
    filt = SafetyFilter(LIMITS, RATE, blend_time=0.02)
    filt.engage(LIMITS.joint_upper.copy())
    out = filt.filter(LIMITS.joint_upper + 5.0, np.array([9.0, -9.0, 0.01]), LIMITS.joint_upper)
    assert out is not None and out.clamped_position and out.clamped_base
    np.testing.assert_array_equal(out.joints, LIMITS.joint_upper)
    # Acceleration bound: from rest, one tick changes the base command by at most a_max * dt, all three
    # axes scaled by the same factor (vx and vy at their bound; wz by the same fraction of its request).
    scale = (1.0 / RATE) / 0.5  # vx's bound over its request (clipped to the 0.5 m/s velocity limit)
    np.testing.assert_allclose(out.base, [1.0 / RATE, -1.0 / RATE, 0.01 * scale])
    for _ in range(100):
        out = filt.filter(LIMITS.joint_upper, np.array([9.0, -9.0, 0.0]), LIMITS.joint_upper)
    assert out is not None
    np.testing.assert_allclose(out.base, [0.5, -0.5, 0.0])


def test_the_base_speeds_up_along_the_commanded_path() -> None:
    """From rest (engaged, or after a hold) the acceleration bound scales all three axes by one factor, so
    the ramp keeps the commanded curvature wz / vx. Clipping each axis alone turned a patrol loop's restart
    into a tighter turn (the turn rate arrived in 6 ticks, the speed in 9) and moved the loop's centre on
    every hold (docs/learnability.md, round 16)."""
    limits = replace(LIMITS, base_max_velocity=np.array([1.0, 1.0, 1.5]))
    filt = SafetyFilter(limits, 20.0)
    filt.engage(np.zeros(J))
    patrol = np.array([0.45, 0.0, 0.64])
    ramp = []
    for _ in range(20):
        out = filt.filter(np.zeros(J), patrol, np.zeros(J))
        assert out is not None
        ramp.append(out.base.copy())
    ramp_a = np.array(ramp)
    np.testing.assert_allclose(ramp_a[:, 2], ramp_a[:, 0] * 0.64 / 0.45)  # the curvature of every tick
    assert ramp_a[0, 0] == pytest.approx(1.0 / 20.0)  # vx at its bound, wz below its own
    np.testing.assert_allclose(ramp_a[-1], patrol)
    assert filt.hold(np.zeros(J)) is not None
    out = filt.filter(np.zeros(J), patrol, np.zeros(J))
    assert out is not None
    np.testing.assert_allclose(out.base, ramp_a[0])  # after a hold: the same ramp from rest


def test_hold_stops_the_base_and_clamps_a_measured_pose_outside_the_limits() -> None:
    filt = SafetyFilter(LIMITS, RATE)
    filt.engage(np.zeros(J))
    for _ in range(30):
        filt.filter(np.zeros(J), np.array([0.5, 0.0, 0.0]), np.zeros(J))
    out = filt.hold(np.array([5.0, 0.0, -1.0, 0.0]))
    assert out is not None
    np.testing.assert_array_equal(out.base, np.zeros(3))
    np.testing.assert_array_equal(out.joints, [1.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize(
    "field,value",
    [("joint_upper", np.array([1.0, 2.0, 2.5])), ("joint_max_velocity", np.array([1.0, 1.0, 0.0, 1.0]))],
)
def test_bad_limits_are_refused(field: str, value: np.ndarray) -> None:
    kwargs = {k: getattr(LIMITS, k) for k in LIMITS.__dataclass_fields__}
    kwargs[field] = value
    with pytest.raises(VandError, match=field):
        SafetyLimits(**kwargs)


def test_a_long_hold_latches_the_pose_and_does_not_creep_with_the_measurement() -> None:
    filt = SafetyFilter(LIMITS, RATE)
    filt.engage(np.zeros(J))
    filt.filter(np.zeros(J), np.zeros(3), np.zeros(J))
    sagging = np.array([0.0, -0.01, 0.0, 0.0])
    first = filt.hold(sagging)
    assert first is not None
    for k in range(2, 50):  # the arm sags under gravity while held: the target must not follow it down
        out = filt.hold(sagging * k)
        assert out is not None
        np.testing.assert_array_equal(out.joints, first.joints)
    resumed = filt.filter(np.zeros(J), np.zeros(3), sagging * 50)
    assert resumed is not None
    assert filt.hold(sagging * 60) is not None
    np.testing.assert_allclose(
        filt.hold(sagging * 70).joints, np.clip(sagging * 60, LIMITS.joint_lower, LIMITS.joint_upper)
    )
