"""The simulated robot as a plain Python object: set targets, step, read sensors. No ROS here.

Like ros2_control's forward position controller and a base velocity controller: the arm holds the last
position target; the base tracks the last twist (base frame) until `cmd_timeout` of sim time passes
without a new one, then stops. Commands with NaN/Inf or the wrong length are rejected (ValueError) and
never reach the actuators; the ROS node turns that into a throttled warning.

A base commanded zero (or timed out) holds its pose, as a wheeled base does whose wheel velocity loops
integrate their error (or whose brakes engage): the pose where the command went to zero is latched and
the velocity servo gets a small correction back to it, updated at HOLD_RATE. Without it the velocity
servo alone lets any steady force turn a parked base: the arm's wipe stroke turned it 0.14 rad in 150 s
under exact zero commands (docs/learnability.md, rounds 17 and 20). A push (`displace_base`) re-latches
at the new pose, as a wheel slip would, so the controller does not undo what a disturbance test measures.
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

# The parked base's pose hold (module docstring): pose error -> corrective velocity target.
HOLD_RATE = 100  # [Hz] the hold's update rate, a wheel controller's loop
HOLD_STEPS = STEPS_PER_S // HOLD_RATE
HOLD_GAIN = 2.0  # [1/s] on x, y [m] and yaw [rad] errors
HOLD_MAX_VELOCITY = (0.05, 0.05, 0.1)  # [m/s, m/s, rad/s] the correction's bound (a push is not undone)
_HOLD_BOUND = np.array(HOLD_MAX_VELOCITY)


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


def to_base_frame(x: float, y: float, yaw: float) -> tuple[float, float]:
    """A planar world-frame vector (x, y) (a twist or an offset) in the frame of a base turned by `yaw`."""
    c, s = math.cos(yaw), math.sin(yaw)
    return c * x + s * y, -s * x + c * y


class Sim:
    """MuJoCo physics of the mobile manipulator with sim time in integer steps (TIMESTEP = 1/600 s)."""

    def __init__(self, model: mujoco.MjModel | None = None, cmd_timeout: float = 0.5) -> None:
        self.model = model if model is not None else M.build_model()
        self.data = mujoco.MjData(self.model)
        self.ids = M.model_ids(self.model)
        self.cmd_timeout_steps = round(cmd_timeout * STEPS_PER_S)
        self.steps = 0
        self._last_twist_step = -(10**12)
        self._twist = np.zeros(3)  # the commanded base twist, clamped (ctrl also carries the hold)
        self._hold: np.ndarray | None = None  # latched (x, y, yaw) while the base is commanded zero
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
        self._twist = np.zeros(3)
        self._hold = None
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
        self._twist = np.clip(v, -limit, limit)  # reaches the actuators in `step`
        if np.any(self._twist):
            self._hold = None
        self._last_twist_step = self.steps

    def arm_targets(self) -> np.ndarray:
        return np.array(self.data.ctrl[self.ids.arm_act], dtype=np.float64)  # a copy

    # ---- stepping -------------------------------------------------------------------------------------
    def step(self, n: int = 1) -> None:
        """Advance n physics steps: the base stops when the last twist is older than cmd_timeout, and holds
        its pose while commanded zero (updated every HOLD_STEPS)."""
        while n > 0:
            deadline = self._last_twist_step + self.cmd_timeout_steps
            if self.steps >= deadline:
                self._twist = np.zeros(3)
                chunk = n
            else:
                chunk = min(n, deadline - self.steps)
            if np.any(self._twist):
                self.data.ctrl[self.ids.base_act] = self._twist
            else:
                self.data.ctrl[self.ids.base_act] = self._hold_twist()
                chunk = min(chunk, HOLD_STEPS - self.steps % HOLD_STEPS)
            mujoco.mj_step(self.model, self.data, nstep=chunk)
            self.steps += chunk
            n -= chunk

    def _hold_twist(self) -> np.ndarray:
        """The base-frame velocity target that brings a parked base back to its latched pose."""
        pose = np.array(self.data.qpos[self.ids.base_qpos], dtype=np.float64)
        if self._hold is None:
            self._hold = pose
        dx, dy = self._hold[:2] - pose[:2]
        error = np.array([*to_base_frame(dx, dy, float(pose[2])), wrap(float(self._hold[2] - pose[2]))])
        return np.clip(HOLD_GAIN * error, -_HOLD_BOUND, _HOLD_BOUND)

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
        vx, vy = to_base_frame(float(vxw), float(vyw), float(yaw))
        return Odom(float(x), float(y), wrap(float(yaw)), vx, vy, float(wz))

    def features(self) -> np.ndarray:
        return F.features(self.data, self.ids)  # (E * 4,) float32

    def ee_position(self) -> np.ndarray:
        return np.array(self.data.site_xpos[self.ids.ee_site], dtype=np.float64)  # (3,) world [m], a copy

    def entity_positions(self) -> np.ndarray:
        return F.entity_positions(self.data, self.ids)  # (E, 3) world [m]

    def displace_base(self, dx: float, dy: float, dyaw: float) -> None:
        """A push: move the base by (dx, dy [m], dyaw [rad]) in the world frame (for robustness tests)."""
        self.data.qpos[self.ids.base_qpos] += (dx, dy, dyaw)
        self._hold = None  # a slip: a parked base holds where the push left it
        mujoco.mj_forward(self.model, self.data)
