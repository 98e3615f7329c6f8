"""The always-on safety filter between the policy and the motors. Pure numpy; no ROS.

Every command the node publishes passes through `SafetyFilter`:
- arm: joint position targets [rad] are clamped to the joint limits, then to a maximum step per tick from the
  previous target (which also blends the arm in from its measured pose after enable, with the step bound
  ramping up from zero over `blend_time`);
- base: velocity commands (vx [m/s], vy [m/s], wz [rad/s]) are clamped to the velocity limits, then
  limited in acceleration from the previous command by one factor for all three axes (the change is scaled
  until every axis is within its limit, as nav2's velocity smoother does with `scale_velocities`). Clipping
  each axis alone would bend the path while the base speeds up: from rest, the turn rate of a patrol loop
  reached its value in 6 ticks and the speed in 9, so every restart after a hold tightened the turn and
  moved the loop's centre (docs/learnability.md, round 16); scaled, the base keeps the commanded curvature;
- a non-finite or wrongly sized action is never used: the filter holds instead.

Holding (on any fault) means: the arm target is the measured position when the hold began, clamped to the
limits (or the last target when no valid measurement exists), kept for the whole hold, and the base
velocity is zero. Stopping the base is immediate; the base controller's own deceleration limits apply
downstream.

Invariant (property-tested): whatever goes in, every emitted joint target is finite and within
[lower, upper], every base command is finite and within +-max_velocity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeGuard

import numpy as np

from vand_ros.errors import VandError

FloatArray = np.ndarray
BASE_AXES = ("vx", "vy", "wz")  # what the filter limits and the node sends as a Twist, in this order


@dataclass(frozen=True)
class SafetyLimits:
    """Limits from the configuration, in the configured joint and base-axis order."""

    joint_lower: FloatArray  # (J,) [rad]
    joint_upper: FloatArray  # (J,) [rad]
    joint_max_velocity: FloatArray  # (J,) [rad/s]; max step per tick = this / rate
    base_max_velocity: FloatArray  # (3,) [m/s, m/s, rad/s]
    base_max_acceleration: FloatArray  # (3,) [m/s^2, m/s^2, rad/s^2]

    def __post_init__(self) -> None:
        j = len(self.joint_lower)
        for name in ("joint_upper", "joint_max_velocity"):
            if len(getattr(self, name)) != j:
                raise VandError(f"safety limits: {name} has {len(getattr(self, name))} entries, expected {j}")
        for name in (
            "joint_lower",
            "joint_upper",
            "joint_max_velocity",
            "base_max_velocity",
            "base_max_acceleration",
        ):
            if not np.all(np.isfinite(getattr(self, name))):
                raise VandError(f"safety limits: {name} must be finite, got {list(getattr(self, name))}")
        if np.any(self.joint_lower >= self.joint_upper):
            raise VandError("safety limits: every joint lower limit must be below its upper limit")
        for name in ("joint_max_velocity", "base_max_velocity", "base_max_acceleration"):
            if np.any(getattr(self, name) <= 0):
                raise VandError(f"safety limits: {name} must be positive, got {list(getattr(self, name))}")

    @property
    def n_joints(self) -> int:
        return len(self.joint_lower)


@dataclass
class FilterResult:
    """One filtered command and what the filter did to it."""

    joints: FloatArray  # (J,) [rad] target to publish
    base: FloatArray  # (3,) velocity to publish
    clamped_position: bool  # a target was outside the joint limits
    clamped_step: bool  # a target moved more than the step bound (includes blending in)
    clamped_base: bool  # the base command hit a velocity or acceleration limit


class SafetyFilter:
    """Clamps policy actions to limits, and produces the hold command on faults."""

    def __init__(self, limits: SafetyLimits, rate: float, blend_time: float = 1.0) -> None:
        if rate <= 0:
            raise VandError(f"safety filter: control rate must be positive, got {rate}")
        self.limits = limits
        self.dt = 1.0 / rate  # [s]
        self.max_step = limits.joint_max_velocity * self.dt  # (J,) [rad/tick]
        self.max_base_delta = limits.base_max_acceleration * self.dt  # (3,) per tick
        self.blend_ticks = max(1, round(blend_time * rate))
        self._last_joints: FloatArray | None = None  # (J,) last published target
        self._last_base = np.zeros(3)
        self._ticks_since_engage = 0
        self._hold_target: FloatArray | None = None  # (J,) latched when a hold begins

    @property
    def last_joints(self) -> FloatArray | None:
        return None if self._last_joints is None else self._last_joints.copy()

    def engage(self, measured_joints: FloatArray | None) -> None:
        """Start (or restart) blending in from the measured pose, with the base at rest."""
        self._ticks_since_engage = 0
        self._last_base = np.zeros(3)
        self._hold_target = None
        if self._valid_measurement(measured_joints):
            self._last_joints = self._clip_position(measured_joints)

    def hold(self, measured_joints: FloatArray | None) -> FilterResult | None:
        """The safe command: arm held at its measured pose (clamped to limits), base stopped.

        The pose is latched when the hold begins and kept until the policy runs again: re-reading the
        measurement every tick would let a position-controlled arm creep down under gravity by its
        steady-state error on every tick of a long hold. Returns None when there is no joint target to
        hold (never measured, never commanded): then nothing should be published for the arm, and the
        caller publishes only the zero base command.
        """
        self._last_base = np.zeros(3)
        if self._hold_target is None:
            if self._valid_measurement(measured_joints):
                self._hold_target = self._clip_position(measured_joints)
            elif self._last_joints is not None:
                self._hold_target = self._last_joints.copy()
        target = self._hold_target
        if target is None:
            return None
        self._last_joints = target.copy()
        self._ticks_since_engage = 0  # resuming after a hold blends in again
        return FilterResult(target.copy(), np.zeros(3), False, False, False)

    def filter(
        self, joints: FloatArray, base: FloatArray, measured_joints: FloatArray | None
    ) -> FilterResult | None:
        """Clamp one policy action. A non-finite or mis-sized action gives the hold command instead."""
        n = self.limits.n_joints
        joints = np.asarray(joints, dtype=np.float64)
        base = np.asarray(base, dtype=np.float64)
        if (
            joints.shape != (n,)
            or base.shape != (3,)
            or not (np.all(np.isfinite(joints)) and np.all(np.isfinite(base)))
        ):
            return self.hold(measured_joints)
        if self._last_joints is None:
            self.engage(measured_joints)
            if self._last_joints is None:
                return self.hold(measured_joints)

        target = self._clip_position(joints)
        clamped_position = bool(np.any(target != joints))
        ramp = min(1.0, (self._ticks_since_engage + 1) / self.blend_ticks)
        step = self.max_step * ramp
        stepped = np.clip(target, self._last_joints - step, self._last_joints + step)
        stepped = self._clip_position(stepped)
        clamped_step = bool(np.any(stepped != target))

        vmax = self.limits.base_max_velocity
        cmd = np.clip(base, -vmax, vmax)
        change = cmd - self._last_base
        scale = 1.0 / max(1.0, float(np.max(np.abs(change) / self.max_base_delta)))
        cmd = np.clip(self._last_base + scale * change, -vmax, vmax)
        clamped_base = bool(np.any(cmd != base))

        self._last_joints = stepped
        self._last_base = cmd
        self._hold_target = None
        self._ticks_since_engage += 1
        return FilterResult(stepped.copy(), cmd.copy(), clamped_position, clamped_step, clamped_base)

    def _valid_measurement(self, measured: FloatArray | None) -> TypeGuard[FloatArray]:
        return (
            measured is not None
            and measured.shape == (self.limits.n_joints,)
            and bool(np.all(np.isfinite(measured)))
        )

    def _clip_position(self, joints: FloatArray) -> FloatArray:
        return np.clip(np.asarray(joints, dtype=np.float64), self.limits.joint_lower, self.limits.joint_upper)
