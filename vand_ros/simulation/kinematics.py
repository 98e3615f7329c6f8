"""Closed-form arm kinematics in the base frame (roll and yaw held at 0), used by the demonstrators.

The arm is a pan joint followed by three pitch joints in one vertical plane, so the end-effector centre
follows from the pan angle and a planar 3-link chain. Angles of the pitch chain are measured from the
vertical towards the arm's forward direction (positive about +y, as in the URDF). Lengths from model.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vand_ros import robot
from vand_ros.simulation import model as M

_LOWER = np.array([j.lower for j in robot.ARM_JOINTS])
_UPPER = np.array([j.upper for j in robot.ARM_JOINTS])


def forward(q: Sequence[float] | np.ndarray) -> np.ndarray:
    """End-effector centre in base_link (3,) [m] for arm joints q (6,) [rad] (roll and yaw must be 0)."""
    pan, lift, elbow, pitch = (float(v) for v in q[:4])
    a1, a2, a3 = lift, lift + elbow, lift + elbow + pitch
    r = M.UPPER_ARM * math.sin(a1) + M.FOREARM * math.sin(a2) + M.HAND * math.sin(a3)
    z = M.UPPER_ARM * math.cos(a1) + M.FOREARM * math.cos(a2) + M.HAND * math.cos(a3)
    mx, my, mz = M.ARM_MOUNT
    return np.array([mx + r * math.cos(pan), my + r * math.sin(pan), mz + M.SHOULDER_HEIGHT + z])


def inverse(
    target: Sequence[float] | np.ndarray, tool_angle: float = math.pi, roll: float = 0.0
) -> np.ndarray:
    """Arm joints (6,) [rad] that put the end-effector centre at `target` (base_link, [m]).

    tool_angle is the hand's direction from the vertical (pi: pointing straight down, for touching).
    Out-of-reach targets are projected onto the workspace boundary; the result is clamped to the limits.
    """
    mx, my, mz = M.ARM_MOUNT
    dx, dy = target[0] - mx, target[1] - my
    pan = math.atan2(dy, dx)
    r = math.hypot(dx, dy)
    dz = target[2] - (mz + M.SHOULDER_HEIGHT)
    rw, zw = r - M.HAND * math.sin(tool_angle), dz - M.HAND * math.cos(tool_angle)  # wrist centre
    l1, l2 = M.UPPER_ARM, M.FOREARM
    c2 = (rw * rw + zw * zw - l1 * l1 - l2 * l2) / (2 * l1 * l2)
    elbow = math.acos(min(1.0, max(-1.0, c2)))
    lift = math.atan2(rw, zw) - math.atan2(l2 * math.sin(elbow), l1 + l2 * math.cos(elbow))
    pitch = tool_angle - lift - elbow
    q = np.array([pan, lift, elbow, pitch, roll, 0.0])
    return q.clip(_LOWER, _UPPER)


def world_to_base(point: Sequence[float], x: float, y: float, yaw: float) -> np.ndarray:
    """A world point (3,) [m] in base_link, given the base pose (x, y [m], yaw [rad])."""
    c, s = math.cos(yaw), math.sin(yaw)
    px, py = point[0] - x, point[1] - y
    return np.array([c * px + s * py, -s * px + c * py, point[2]])


def base_to_world(point: Sequence[float] | np.ndarray, x: float, y: float, yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([x + c * point[0] - s * point[1], y + s * point[0] + c * point[1], point[2]])
