"""The robot's interface, described once: joints, base, topics, rates, camera-feature entities, behaviours.

Pure Python (no numpy, no ROS) so that every layer can read it: the simulation builds its model to match,
the data layer reads bags with these defaults, the controller uses them as parameter defaults. A real
robot overrides any of it through configuration files (config/*.yaml); nothing else hard-codes these names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JointSpec:
    """One position-controlled arm joint."""

    name: str
    lower: float  # [rad]
    upper: float  # [rad]
    max_velocity: float  # [rad/s]
    home: float  # [rad] carry pose


ARM_JOINTS: tuple[JointSpec, ...] = (
    JointSpec("arm_shoulder_pan", -2.8, 2.8, 1.5, 0.0),
    JointSpec("arm_shoulder_lift", -1.8, 1.8, 1.5, -0.6),
    JointSpec("arm_elbow", -2.5, 2.5, 1.5, 1.4),
    JointSpec("arm_wrist_pitch", -2.0, 2.0, 2.0, 0.8),
    JointSpec("arm_wrist_roll", -2.8, 2.8, 2.0, 0.0),
    JointSpec("arm_wrist_yaw", -2.8, 2.8, 2.0, 0.0),
)
ARM_JOINT_NAMES: tuple[str, ...] = tuple(j.name for j in ARM_JOINTS)

# Holonomic base, velocity-controlled in its own frame: (vx [m/s], vy [m/s], wz [rad/s]).
BASE_AXES: tuple[str, ...] = ("vx", "vy", "wz")
BASE_MAX_VELOCITY: tuple[float, ...] = (0.6, 0.6, 1.2)
BASE_MAX_ACCELERATION: tuple[float, ...] = (1.0, 1.0, 2.0)  # [m/s^2, m/s^2, rad/s^2]

# Camera features: for each entity, its position in the camera frame [m] and a visibility flag in {0, 1}.
FEATURE_ENTITIES: tuple[str, ...] = ("station_a", "station_b", "station_c", "table", "sponge", "box")
FEATURE_FIELDS: tuple[str, ...] = ("x", "y", "z", "visible")
FEATURE_SIZE = len(FEATURE_ENTITIES) * len(FEATURE_FIELDS)

# Instructed behaviours, the instruction vocabulary. What each one is (kind, start ranges, what is measured)
# is defined once in vand_ros.simulation.behaviours.
BEHAVIOURS: tuple[str, ...] = ("wipe", "patrol", "visit_abc", "visit_cba")


@dataclass(frozen=True)
class Topics:
    """Default topic names (every one is a parameter of the nodes)."""

    joint_states: str = "/joint_states"
    odom: str = "/odom"
    features: str = "/camera/features"
    arm_command: str = "/arm_controller/commands"
    arm_trajectory: str = "/arm_controller/joint_trajectory"
    cmd_vel: str = "/cmd_vel"
    instruction: str = "/vand/instruction"
    clock: str = "/clock"
    diagnostics: str = "/diagnostics"


TOPICS = Topics()


@dataclass(frozen=True)
class Rates:
    """Publishing rates of the robot (simulated or real) and the policy's control rate [Hz]."""

    joint_states: float = 100.0
    odom: float = 50.0
    features: float = 15.0
    control: float = 20.0


RATES = Rates()
