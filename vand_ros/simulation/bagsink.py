"""Sink that writes the sim's stream straight into a rosbag2 (bag receive time = sim time)."""

from __future__ import annotations

import numpy as np

from vand_ros import robot
from vand_ros.data import bag_writer as bw
from vand_ros.simulation import features as F
from vand_ros.simulation.physics import Odom

# (topic, type) of every topic a recording holds; the DDS recorder subscribes to exactly these.
RECORDED: tuple[tuple[str, str], ...] = (
    (robot.TOPICS.joint_states, "sensor_msgs/msg/JointState"),
    (robot.TOPICS.odom, "nav_msgs/msg/Odometry"),
    (robot.TOPICS.features, "std_msgs/msg/Float32MultiArray"),
    (robot.TOPICS.instruction, "std_msgs/msg/String"),
    (robot.TOPICS.arm_command, "std_msgs/msg/Float64MultiArray"),
    (robot.TOPICS.cmd_vel, "geometry_msgs/msg/Twist"),
)
CLOCK = (robot.TOPICS.clock, "rosgraph_msgs/msg/Clock")
# Messages per sim second of each recorded topic (the instruction is repeated at 1 Hz).
NOMINAL_RATES: dict[str, float] = {
    robot.TOPICS.joint_states: robot.RATES.joint_states,
    robot.TOPICS.odom: robot.RATES.odom,
    robot.TOPICS.features: robot.RATES.features,
    robot.TOPICS.arm_command: robot.RATES.control,
    robot.TOPICS.cmd_vel: robot.RATES.control,
    robot.TOPICS.instruction: 1.0,
}


class BagSink:
    """Writes each output with bag_writer's builders; /clock only when asked (as the recorder)."""

    def __init__(self, bag: bw.BagWriter, with_clock: bool = False) -> None:
        self.bag, self.with_clock = bag, with_clock
        for topic, msgtype in (*RECORDED, *((CLOCK,) if with_clock else ())):
            bag.add_topic(topic, msgtype)
        self._dims = F.layout_dims()

    def clock(self, ns: int) -> None:
        if self.with_clock:
            self.bag.write(CLOCK[0], ns, bw.clock(ns))

    def joint_states(self, ns: int, position: np.ndarray, velocity: np.ndarray) -> None:
        self.bag.write(
            robot.TOPICS.joint_states, ns, bw.joint_state(ns, robot.ARM_JOINT_NAMES, position, velocity)
        )

    def odom(self, ns: int, odom: Odom) -> None:
        msg = bw.odometry(ns, (odom.x, odom.y), odom.yaw, (odom.vx, odom.vy, 0.0), (0.0, 0.0, odom.wz))
        self.bag.write(robot.TOPICS.odom, ns, msg)

    def features(self, ns: int, data: np.ndarray) -> None:
        self.bag.write(robot.TOPICS.features, ns, bw.float32_array(data, self._dims))

    def instruction(self, ns: int, text: str) -> None:
        self.bag.write(robot.TOPICS.instruction, ns, bw.string(text))

    def arm_command(self, ns: int, targets: np.ndarray) -> None:
        self.bag.write(robot.TOPICS.arm_command, ns, bw.float64_array(targets))

    def cmd_vel(self, ns: int, twist: tuple[float, float, float]) -> None:
        self.bag.write(robot.TOPICS.cmd_vel, ns, bw.twist((twist[0], twist[1], 0.0), (0.0, 0.0, twist[2])))
