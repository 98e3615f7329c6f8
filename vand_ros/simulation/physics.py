"""The simulated robot as a plain Python object: set targets, step, read sensors. No ROS here.

Like ros2_control's forward position controller and a base velocity controller: the arm holds the last
position target; the base tracks the last twist (base frame) until `cmd_timeout` of sim time passes
without a new one, then stops. Commands with NaN/Inf or the wrong length are rejected (ValueError) and
never reach the actuators; the ROS node turns that into a throttled warning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import numpy as np
import numpy.typing as npt

from vand_ros import robot
from vand_ros.simulation import features as F
from vand_ros.simulation import model as M

NS_PER_S = 1_000_000_000
STEPS_PER_S = round(1.0 / M.TIMESTEP)  # 600


@dataclass(frozen=True)
class Odom:
    """Planar base state: pose in the world (odom) frame, twist in the base frame."""

    x: float  # [m]
    y: float  # [m]
    yaw: float  # [rad]
    vx: float  # [m/s]
    vy: float  # [m/s]
    wz: float  # [rad/s]


def wrap(angle: float) -> float:
    """Angle wrapped to [-pi, pi) [rad]."""
    return (angle + math.pi) % (2 * math.pi) - math.pi


class Sim:
    """MuJoCo physics of the mobile manipulator with sim time in integer steps (TIMESTEP = 1/600 s)."""

    def __init__(self, model: mujoco.MjModel | None = None, cmd_timeout: float = 0.5) -> None:
        self.model = model if model is not None else M.build_model()
        self.data = mujoco.MjData(self.model)
        self.ids = M.model_ids(self.model)
        self.cmd_timeout_steps = round(cmd_timeout * STEPS_PER_S)
        self.steps = 0
        self._last_twist_step = -(10**12)
        self.reset()

    # ---- episode set-up -------------------------------------------------------------------------------
    def reset(self, base_pose: Sequence[float] = (0.0, 0.0, 0.0), arm: npt.ArrayLike | None = None) -> None:
        """Back to t = 0 with the base at (x [m], y [m], yaw [rad]) and the arm at `arm` (home by default)."""
        mujoco.mj_resetData(self.model, self.data)
        arm_q = np.array([j.home for j in robot.ARM_JOINTS] if arm is None else arm, dtype=np.float64)
        self.data.qpos[self.ids.base_qpos] = base_pose
        self.data.qpos[self.ids.arm_qpos] = arm_q
        self.data.ctrl[self.ids.arm_act] = arm_q
        self.data.ctrl[self.ids.base_act] = 0.0
        self.steps = 0
        self._last_twist_step = -(10**12)
        mujoco.mj_forward(self.model, self.data)

    # ---- commands -------------------------------------------------------------------------------------
    @staticmethod
    def clamp_arm(positions: npt.ArrayLike) -> np.ndarray:
        """Arm targets (6,) [rad] as they would be executed: checked, and clamped to the joint limits."""
        q = np.asarray(positions, dtype=np.float64).reshape(-1)
        if q.shape != (len(robot.ARM_JOINTS),):
            raise ValueError(f"arm command has {q.size} values, expected {len(robot.ARM_JOINTS)}")
        if not np.all(np.isfinite(q)):
            raise ValueError("arm command contains NaN or Inf")
        lo = np.array([j.lower for j in robot.ARM_JOINTS])
        hi = np.array([j.upper for j in robot.ARM_JOINTS])
        return np.clip(q, lo, hi)

    def set_arm_targets(self, positions: npt.ArrayLike) -> None:
        """Position targets [rad] in robot.ARM_JOINT_NAMES order, clamped to the joint limits; held."""
        self.data.ctrl[self.ids.arm_act] = self.clamp_arm(positions)

    def set_base_twist(self, vx: float, vy: float, wz: float) -> None:
        """Base velocity in the base frame ([m/s], [m/s], [rad/s]), clamped to robot.BASE_MAX_VELOCITY."""
        v = np.array([vx, vy, wz], dtype=np.float64)
        if not np.all(np.isfinite(v)):
            raise ValueError("base twist contains NaN or Inf")
        limit = np.array(robot.BASE_MAX_VELOCITY)
        self.data.ctrl[self.ids.base_act] = np.clip(v, -limit, limit)
        self._last_twist_step = self.steps

    def arm_targets(self) -> np.ndarray:
        return np.array(self.data.ctrl[self.ids.arm_act], dtype=np.float64)  # a copy

    # ---- stepping -------------------------------------------------------------------------------------
    def step(self, n: int = 1) -> None:
        """Advance n physics steps, stopping the base when the last twist is older than cmd_timeout."""
        while n > 0:
            deadline = self._last_twist_step + self.cmd_timeout_steps
            if self.steps >= deadline:
                self.data.ctrl[self.ids.base_act] = 0.0
                chunk = n
            else:
                chunk = min(n, deadline - self.steps)
            mujoco.mj_step(self.model, self.data, nstep=chunk)
            self.steps += chunk
            n -= chunk

    @property
    def time_ns(self) -> int:
        """Sim time [ns], exact for step counts (floor of steps * 1e9 / 600)."""
        return self.steps * NS_PER_S // STEPS_PER_S

    # ---- sensors --------------------------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        return np.array(self.data.qpos[self.ids.arm_qpos], dtype=np.float64)  # (6,) [rad], a copy

    def joint_velocities(self) -> np.ndarray:
        return np.array(self.data.qvel[self.ids.arm_dof], dtype=np.float64)  # (6,) [rad/s], a copy

    def odom(self) -> Odom:
        x, y, yaw = self.data.qpos[self.ids.base_qpos]
        vxw, vyw, wz = self.data.qvel[self.ids.base_dof]
        c, s = math.cos(yaw), math.sin(yaw)
        return Odom(float(x), float(y), wrap(float(yaw)), c * vxw + s * vyw, -s * vxw + c * vyw, float(wz))

    def features(self) -> np.ndarray:
        return F.features(self.data, self.ids)  # (E * 4,) float32

    def ee_position(self) -> np.ndarray:
        return np.array(self.data.site_xpos[self.ids.ee_site], dtype=np.float64)  # (3,) world [m], a copy

    def entity_positions(self) -> np.ndarray:
        return F.entity_positions(self.data, self.ids)  # (E, 3) world [m]

    def displace_base(self, dx: float, dy: float, dyaw: float) -> None:
        """A push: move the base by (dx, dy [m], dyaw [rad]) in the world frame (for robustness tests)."""
        self.data.qpos[self.ids.base_qpos] += (dx, dy, dyaw)
        mujoco.mj_forward(self.model, self.data)
