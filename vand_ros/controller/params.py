"""The controller's parameters: one documented contract, validated at start-up. Pure Python; no rclpy.

`PARAMETERS` lists every parameter with its type, default, bounds and description; the node declares them
from this table (with ROS parameter descriptors, so `ros2 param describe` shows the same text) and
`config/controller.yaml` documents the same set (a test checks the two agree). `ControllerConfig.from_values`
turns the values into a typed config and refuses a bad one with a message that names the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vand_ros import robot
from vand_ros.controller.realtime import RealtimeRequest, parse_cpus
from vand_ros.controller.safety import SafetyLimits
from vand_ros.errors import VandError
from vand_ros.runtime.assembler import AssemblerConfig
from vand_ros.runtime.layout import Layout

EXECUTION_MODES = ("stochastic", "noise", "deterministic", "mc")  # mc: Gal's Monte Carlo dropout
ARM_COMMAND_TYPES = ("float64_array", "joint_trajectory")
CMD_VEL_TYPES = ("twist", "twist_stamped")


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any  # its Python type is the parameter's type (bool, int, float, str, list[str], list[float])
    description: str
    low: float | None = None  # inclusive bounds for numbers (and every element of a number list)
    high: float | None = None
    choices: tuple[str, ...] = ()


P = ParamSpec
PARAMETERS: tuple[ParamSpec, ...] = (
    P("model", "", "path to the exported ONNX policy (required)"),
    P(
        "control_rate",
        0.0,
        "control rate [Hz]; 0 = the rate the model was trained at (any other must equal it)",
        0.0,
        1000.0,
    ),
    P(
        "execution_mode",
        "",
        "'' = the model card's validated mode, else one of the modes",
        choices=("", *EXECUTION_MODES),
    ),
    P("seed", 0, "seed of the execution noise and dropout draws (read at start-up)", 0, 2**31 - 1),
    P("autostart", False, "configure and activate at start-up (otherwise wait for the lifecycle services)"),
    P("instruction", "", "behaviour to perform from the start ('' = wait for ~/instruction)"),
    P("reset_on_instruction_change", True, "reset the recurrent state when the instruction changes"),
    P(
        "fault_reset_time",
        1.0,
        "a fault lasting longer than this resets the recurrent state [s]",
        0.0,
        3600.0,
    ),
    P(
        "blend_time",
        1.0,
        "after activate or a fault, ramp the joint step bound up from zero over this time [s]",
        0.0,
        60.0,
    ),
    P("joint_names", list(robot.ARM_JOINT_NAMES), "arm joints in command order; must match the model card"),
    P("joint_lower", [j.lower for j in robot.ARM_JOINTS], "lower joint limits [rad]", -100.0, 100.0),
    P("joint_upper", [j.upper for j in robot.ARM_JOINTS], "upper joint limits [rad]", -100.0, 100.0),
    P(
        "joint_max_velocity",
        [j.max_velocity for j in robot.ARM_JOINTS],
        "max joint speed [rad/s] (bounds the step per tick)",
        1e-6,
        100.0,
    ),
    P(
        "base_max_velocity",
        list(robot.BASE_MAX_VELOCITY),
        "base limits (vx [m/s], vy [m/s], wz [rad/s])",
        1e-6,
        100.0,
    ),
    P(
        "base_max_acceleration",
        list(robot.BASE_MAX_ACCELERATION),
        "base acceleration limits (vx, vy, wz) per second, one factor scaling all three axes",
        1e-6,
        1000.0,
    ),
    P("joint_states_topic", robot.TOPICS.joint_states, "sensor_msgs/JointState input"),
    P("odom_topic", robot.TOPICS.odom, "nav_msgs/Odometry input (twist in the base frame)"),
    P("features_topic", robot.TOPICS.features, "std_msgs/Float32MultiArray camera features input"),
    P("instruction_topic", "~/instruction", "std_msgs/String instruction input"),
    P("arm_command_topic", robot.TOPICS.arm_command, "arm joint position targets output"),
    P("arm_command_type", "float64_array", "arm command message type", choices=ARM_COMMAND_TYPES),
    P("cmd_vel_topic", robot.TOPICS.cmd_vel, "base velocity command output"),
    P("cmd_vel_type", "twist", "base command message type", choices=CMD_VEL_TYPES),
    P("max_age_joints", 0.1, "joint states older than this are stale [s]", 1e-3, 60.0),
    P(
        "joint_alignment",
        0.02,
        "joint positions are moved forward to the control tick by their velocities, at most this far [s] "
        "(0 = off): joint states arrive at a different age each tick",
        0.0,
        0.1,
    ),
    P("max_age_odom", 0.2, "odometry older than this is stale [s]", 1e-3, 60.0),
    P("max_age_features", 0.3, "camera features older than this are stale [s]", 1e-3, 60.0),
    P("diagnostics_period", 1.0, "period of /diagnostics [s]", 0.05, 60.0),
    P(
        "executor",
        "events",
        "rclpy executor: 'events' (EventsExecutor where the distribution has it, else single-threaded)",
        choices=("events", "single_threaded"),
    ),
    P(
        "realtime_priority",
        0,
        "SCHED_FIFO priority of the control thread (0 = the default scheduler; needs CAP_SYS_NICE or rtprio)",
        0,
        99,
    ),
    P("cpu_affinity", "", "CPUs the controller may run on, e.g. '3' or '2,3' ('' = all)"),
    P("lock_memory", False, "lock the process's memory (mlockall; needs a memlock limit or CAP_IPC_LOCK)"),
)
SPECS = {p.name: p for p in PARAMETERS}


@dataclass(frozen=True)
class ControllerConfig:
    """Validated controller parameters."""

    model: str
    control_rate: float  # [Hz], 0 = from the model card
    execution_mode: str  # '' = from the model card
    seed: int
    autostart: bool
    instruction: str
    reset_on_instruction_change: bool
    fault_reset_time: float  # [s]
    blend_time: float  # [s]
    joint_names: tuple[str, ...]
    limits: SafetyLimits
    joint_states_topic: str
    odom_topic: str
    features_topic: str
    instruction_topic: str
    arm_command_topic: str
    arm_command_type: str
    cmd_vel_topic: str
    cmd_vel_type: str
    max_age_joints: float  # [s]
    joint_alignment: float  # [s], 0 = off
    max_age_odom: float  # [s]
    max_age_features: float  # [s]
    diagnostics_period: float  # [s]
    executor: str
    realtime_priority: int  # SCHED_FIFO, 0 = off
    cpu_affinity: str  # '' = all CPUs
    lock_memory: bool

    def realtime_request(self) -> RealtimeRequest:
        return RealtimeRequest(self.realtime_priority, parse_cpus(self.cpu_affinity), self.lock_memory)

    def assembler_config(self, layout: Layout) -> AssemblerConfig:
        """The observation assembler's settings for `layout` (the node and the in-process evaluation)."""
        return AssemblerConfig(
            layout=layout,
            max_age_joints=self.max_age_joints,
            joint_alignment=self.joint_alignment or None,
            max_age_base=self.max_age_odom,
            max_age_features=self.max_age_features,
            topics={
                "joints": self.joint_states_topic,
                "base": self.odom_topic,
                "features": self.features_topic,
                "instruction": self.instruction_topic,
            },
        )

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> ControllerConfig:
        """Validate raw parameter values (missing ones take their defaults)."""
        unknown = set(values) - set(SPECS)
        if unknown:
            raise VandError(f"unknown controller parameter(s) {sorted(unknown)}; known: {sorted(SPECS)}")
        v = {p.name: _check(p, values.get(p.name, p.default)) for p in PARAMETERS}
        if not v["model"]:
            raise VandError("parameter 'model' is required: the path to an exported ONNX policy")
        names = v["joint_names"]
        if not names or len(set(names)) != len(names):
            raise VandError(f"parameter 'joint_names' must be non-empty and unique, got {names}")
        for key in ("joint_lower", "joint_upper", "joint_max_velocity"):
            if len(v[key]) != len(names):
                raise VandError(
                    f"parameter '{key}' has {len(v[key])} entries but 'joint_names' has {len(names)}; "
                    "give one per joint"
                )
        for key in ("base_max_velocity", "base_max_acceleration"):
            if len(v[key]) != 3:
                raise VandError(f"parameter '{key}' needs 3 entries (vx, vy, wz), got {len(v[key])}")
        if any(lo >= hi for lo, hi in zip(v["joint_lower"], v["joint_upper"], strict=True)):
            raise VandError(
                "parameters 'joint_lower'/'joint_upper': every lower limit must be below its upper limit"
            )
        limits = SafetyLimits(
            joint_lower=np.asarray(v.pop("joint_lower"), dtype=np.float64),
            joint_upper=np.asarray(v.pop("joint_upper"), dtype=np.float64),
            joint_max_velocity=np.asarray(v.pop("joint_max_velocity"), dtype=np.float64),
            base_max_velocity=np.asarray(v.pop("base_max_velocity"), dtype=np.float64),
            base_max_acceleration=np.asarray(v.pop("base_max_acceleration"), dtype=np.float64),
        )
        v["joint_names"] = tuple(names)
        try:
            parse_cpus(v["cpu_affinity"])
        except ValueError as err:
            raise VandError(f"parameter 'cpu_affinity': {err}; expected e.g. '3', '2,3' or '0-3'") from None
        return cls(limits=limits, **v)


def _check(spec: ParamSpec, value: Any) -> Any:
    """Type- and range-check one value against its spec; return it in the spec's Python type."""
    kind = type(spec.default)
    where = f"parameter '{spec.name}' ({spec.description})"
    if kind is list:
        if not isinstance(value, (list, tuple)):
            raise VandError(f"{where} must be a list, got {value!r}")
        elem = type(spec.default[0]) if spec.default else float
        out = [_scalar(spec, elem, x, where) for x in value]
        return out
    return _scalar(spec, kind, value, where)


def _scalar(spec: ParamSpec, kind: type, value: Any, where: str) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise VandError(f"{where} must be true or false, got {value!r}")
        return value
    if kind in (int, float):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (kind is int and not isinstance(value, int))
        ):
            raise VandError(f"{where} must be a {kind.__name__}, got {value!r}")
        if not np.isfinite(value):
            raise VandError(f"{where} must be finite, got {value!r}")
        if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
            raise VandError(f"{where} must be in [{spec.low}, {spec.high}], got {value!r}")
        return kind(value)
    if not isinstance(value, str):
        raise VandError(f"{where} must be a string, got {value!r}")
    if spec.choices and value not in spec.choices:
        raise VandError(f"{where} must be one of {list(spec.choices)}, got {value!r}")
    return value
