"""Synthetic demonstration bags with the simulation's topics, rates and conventions (tests and benchmarks).

Not a simulator: smooth made-up signals, written as real rosbag2 files with `bag_writer`, so the data layer
can be tested and benchmarked without MuJoCo. Conventions match the simulation's bags:
/joint_states 100 Hz (header stamps; extra joints besides the arm, in a shuffled order), /odom 50 Hz (twist
in the base frame), /camera/features 15 Hz (no header; layout.dim entity x field), /vand/instruction at the
start then 1 Hz, /arm_controller/commands and /cmd_vel at the control rate exactly at the ticks. Receive
time = stamp = simulated time.

Tests build broken bags by editing the event list before writing it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vand_ros import robot
from vand_ros.data import bag_writer as bw
from vand_ros.data.config import DataConfig

EXTRA_JOINTS = ("gripper_left", "gripper_right")
JS, ODOM, FEAT, INSTR = (
    "sensor_msgs/msg/JointState",
    "nav_msgs/msg/Odometry",
    "std_msgs/msg/Float32MultiArray",
    "std_msgs/msg/String",
)
ARM, TWIST = "std_msgs/msg/Float64MultiArray", "geometry_msgs/msg/Twist"


@dataclass
class Event:
    """One message to write: topic, receive time [ns], rosbags message object, type name."""

    topic: str
    ns: int
    msg: Any
    msgtype: str


def demo_events(
    seconds: float,
    behaviour: str = "wipe",
    config: DataConfig | None = None,
    start_ns: int = 1_000_000_000,
    seed: int = 0,
) -> list[Event]:
    """A demonstration of `seconds` [s], in receive-time order."""
    cfg = config or DataConfig()
    rng = np.random.default_rng(seed)
    t = cfg.topics
    joints = list(cfg.joint_names)
    order = joints + list(EXTRA_JOINTS)
    perm = rng.permutation(len(order))
    names = [order[i] for i in perm]
    freq = 0.3 + 0.2 * rng.random(len(joints))
    phase = rng.random(len(joints)) * 6.28
    dims = list(cfg.feature_dims() or ())
    n_feat = len(cfg.feature_names)
    end = start_ns + round(seconds * 1e9)
    events: list[Event] = []

    def arm_at(ns: int) -> np.ndarray:
        s = (ns - start_ns) / 1e9
        return 0.5 * np.sin(2 * np.pi * freq * s + phase)  # (J,) [rad]

    def base_at(ns: int) -> tuple[float, float, float]:
        s = (ns - start_ns) / 1e9
        return 0.2 * np.sin(0.5 * s), 0.1 * np.cos(0.3 * s), 0.3 * np.sin(0.2 * s)

    def every(rate: float, offset_ns: int = 0) -> Iterable[int]:
        period = round(1e9 / rate)
        return range(start_ns + offset_ns, end + 1, period)

    for ns in every(100.0):
        full = np.concatenate([arm_at(ns), [0.01, -0.01]])  # arm + extras, configured order
        events.append(Event(t.joint_states, ns, bw.joint_state(ns, names, full[perm]), JS))
    for ns in every(50.0, 3_000_000):
        vx, vy, wz = base_at(ns)
        events.append(
            Event(t.odom, ns, bw.odometry(ns, (0.0, 0.0), 0.0, (vx, vy, 0.0), (0.0, 0.0, wz)), ODOM)
        )
    if n_feat:
        for k, ns in enumerate(every(15.0, 7_000_000)):
            data = np.sin(0.1 * k + np.arange(n_feat)).astype(np.float32)
            events.append(Event(t.features, ns, bw.float32_array(data, dims), FEAT))
    for ns in every(1.0):
        events.append(Event(t.instruction, ns, bw.string(behaviour), INSTR))
    for ns in every(cfg.control_rate):
        later = ns + round(0.1e9)
        target = arm_at(later)
        vx, vy, wz = base_at(later)
        events.append(Event(t.arm_command, ns, bw.float64_array(target), ARM))
        events.append(Event(t.cmd_vel, ns, bw.twist((vx, vy, 0.0), (0.0, 0.0, wz)), TWIST))
    events.sort(key=lambda e: e.ns)  # stable: same-time messages keep the order above
    return events


def write_events(
    path: str | Path, events: Iterable[Event], storage: str = "mcap", compress: bool = False
) -> Path:
    """Write events as a rosbag2 (MCAP or sqlite3, optional zstd); returns the bag directory."""
    with bw.BagWriter(path, storage=storage, compress=compress) as bag:
        for e in events:
            bag.write(e.topic, e.ns, e.msg, e.msgtype)
    return Path(path)


def write_demo_bag(
    path: str | Path,
    seconds: float,
    behaviour: str = "wipe",
    storage: str = "mcap",
    compress: bool = False,
    config: DataConfig | None = None,
    seed: int = 0,
) -> Path:
    return write_events(path, demo_events(seconds, behaviour, config, seed=seed), storage, compress)


def seconds_for_messages(n: int, config: DataConfig | None = None) -> float:
    """Demonstration length [s] that gives about `n` messages at the simulation's rates."""
    cfg = config or DataConfig()
    per_s = robot.RATES.joint_states + robot.RATES.odom + robot.RATES.features + 1 + 2 * cfg.control_rate
    return n / per_s
