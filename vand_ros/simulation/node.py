"""`sim_node`: the MuJoCo mobile manipulator as a ROS 2 robot (what a Gazebo + ros2_control robot offers).

Publishes /clock, /joint_states (100 Hz), /odom (50 Hz), /camera/features (15 Hz); subscribes to arm
position targets (Float64MultiArray, and JointTrajectory on the trajectory topic) and /cmd_vel (Twist,
or TwistStamped with `cmd_vel_stamped`). Holds the last arm target; stops the base `cmd_timeout` s of
sim time after the last twist; a base commanded zero holds its pose (`simulation.physics`). Bad commands
(NaN/Inf, wrong length, unknown joints) are rejected with a throttled warning and never applied. With
`demonstrator` set, a scripted demonstrator drives the robot at the control rate and its commands and
instruction are published too, so `recorder_node` can record a demonstration; external commands are then
ignored.

Parameters (all validated at start-up):
  real_time_factor (float, 1.0): sim seconds per wall second; <= 0 runs as fast as possible.
  duration (float, 0.0): stop after this many sim seconds (0: run until shut down; with a demonstrator,
      0 means the episode's own length).
  demonstrator (str, ""): one of robot.BEHAVIOURS, or "" for none.
  seed, episode (int, 0): choose the demonstrator's episode parameters (as `vand-ros demos`).
  initial_pose (float[3], [0, 0, 0]): base x [m], y [m], yaw [rad] without a demonstrator.
  cmd_timeout (float, 0.5): [s] of sim time.
  cmd_vel_stamped (bool, False): subscribe to TwistStamped instead of Twist.
  clock (str, "sim"): "sim" publishes /clock and stamps messages with sim time (the Gazebo way: use
      use_sim_time on the other nodes); "system" publishes no /clock and stamps with the system time
      at start plus sim time, as a real robot's drivers do (needs real_time_factor 1.0).
  wait_for_subscribers (int, 0): before t = 0, wait until every publisher has this many subscribers.
  wait_timeout (float, 30.0): [s] wall time for that wait.
  start_delay (float, 0.5): [s] wall time between that match and t = 0. A DDS writer sees a reader
      before the reader has matched the writer; samples sent in between arrive late through reliable
      repair and would be stamped late by a recorder. The sim cannot observe the reader's side, so it
      gives discovery this fixed margin (only when wait_for_subscribers > 0).
  *_topic (str): every topic name (defaults from vand_ros.robot.TOPICS).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Twist, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray, Float64MultiArray, MultiArrayDimension, String
from trajectory_msgs.msg import JointTrajectory

from vand_ros import robot
from vand_ros.errors import VandError
from vand_ros.rclpy_compat import spin_once
from vand_ros.simulation import demonstrators as D
from vand_ros.simulation import features as F
from vand_ros.simulation.physics import Odom, Sim
from vand_ros.simulation.runner import Runner

QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
N_ARM = len(robot.ARM_JOINT_NAMES)
WARN_PERIOD = 2.0  # [s] throttle of repeated warnings


def _time(ns: int) -> Time:
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def feature_layout_rclpy() -> list[MultiArrayDimension]:
    """The /camera/features layout as rclpy dimensions (same strides as bag_writer.multi_array_layout)."""
    dims, stride = [], math.prod(size for _, size in F.layout_dims())
    for label, size in F.layout_dims():
        dims.append(MultiArrayDimension(label=label, size=size, stride=stride))
        stride //= max(size, 1)
    return dims


class RclpySink:
    """Runner sink that publishes rclpy messages (message objects reused to keep publishing cheap)."""

    def __init__(self, node: Node, topics: dict[str, str], with_commands: bool) -> None:
        self.pub_clock = node.create_publisher(Clock, topics["clock"], QOS)
        self.pub_js = node.create_publisher(JointState, topics["joint_states"], QOS)
        self.pub_odom = node.create_publisher(Odometry, topics["odom"], QOS)
        self.pub_feat = node.create_publisher(Float32MultiArray, topics["features"], QOS)
        self.publishers: list[Any] = [self.pub_clock, self.pub_js, self.pub_odom, self.pub_feat]
        if with_commands:
            self.pub_instr = node.create_publisher(String, topics["instruction"], QOS)
            self.pub_arm = node.create_publisher(Float64MultiArray, topics["arm_command"], QOS)
            self.pub_vel = node.create_publisher(Twist, topics["cmd_vel"], QOS)
            self.publishers += [self.pub_instr, self.pub_arm, self.pub_vel]
        self.js = JointState(name=list(robot.ARM_JOINT_NAMES))
        self.od = Odometry()
        self.od.header.frame_id, self.od.child_frame_id = "odom", "base_link"
        self.feat = Float32MultiArray()
        self.feat.layout.dim = feature_layout_rclpy()
        self.counts = dict.fromkeys(("clock", "joint_states", "odom", "features", "commands"), 0)
        self.offset_ns = 0  # added to every stamp: 0 on sim time, the system time at start otherwise
        self.publish_clock = True

    def clock(self, ns: int) -> None:
        if self.publish_clock:
            self.pub_clock.publish(Clock(clock=_time(ns)))
            self.counts["clock"] += 1

    def joint_states(self, ns: int, position: np.ndarray, velocity: np.ndarray) -> None:
        self.js.header.stamp = _time(ns + self.offset_ns)
        self.js.position = position.tolist()
        self.js.velocity = velocity.tolist()
        self.pub_js.publish(self.js)
        self.counts["joint_states"] += 1

    def odom(self, ns: int, odom: Odom) -> None:
        m = self.od
        m.header.stamp = _time(ns + self.offset_ns)
        m.pose.pose.position.x, m.pose.pose.position.y = odom.x, odom.y
        m.pose.pose.orientation.z, m.pose.pose.orientation.w = math.sin(odom.yaw / 2), math.cos(odom.yaw / 2)
        m.twist.twist.linear.x, m.twist.twist.linear.y = float(odom.vx), float(odom.vy)
        m.twist.twist.angular.z = float(odom.wz)
        self.pub_odom.publish(m)
        self.counts["odom"] += 1

    def features(self, ns: int, data: np.ndarray) -> None:
        self.feat.data = data.astype(np.float32)
        self.pub_feat.publish(self.feat)
        self.counts["features"] += 1

    def instruction(self, ns: int, text: str) -> None:
        self.pub_instr.publish(String(data=text))

    def arm_command(self, ns: int, targets: np.ndarray) -> None:
        self.pub_arm.publish(Float64MultiArray(data=targets.tolist()))
        self.counts["commands"] += 1

    def cmd_vel(self, ns: int, twist: tuple[float, float, float]) -> None:
        msg = Twist()
        msg.linear.x, msg.linear.y, msg.angular.z = (float(v) for v in twist)
        self.pub_vel.publish(msg)


class SimNode(Node):
    """The simulated robot. Construct, then call `run(executor)`; see the module docstring for parameters."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("sim_node", **kwargs)
        p = self.declare_parameter
        self.rtf = float(p("real_time_factor", 1.0).value)
        self.duration = float(p("duration", 0.0).value)
        behaviour = str(p("demonstrator", "").value)
        seed, episode = int(p("seed", 0).value), int(p("episode", 0).value)
        # Typed here: with rcl_interfaces untyped, mypy infers Never for a parameter's value.
        initial_pose_value: Sequence[float] = p("initial_pose", [0.0, 0.0, 0.0]).value
        initial_pose = [float(v) for v in initial_pose_value]
        cmd_timeout = float(p("cmd_timeout", 0.5).value)
        stamped = bool(p("cmd_vel_stamped", False).value)
        self.clock_mode = str(p("clock", "sim").value)
        self.wait_subs = int(p("wait_for_subscribers", 0).value)
        self.wait_timeout = float(p("wait_timeout", 30.0).value)
        self.start_delay = float(p("start_delay", 0.5).value)
        topics = {
            name: str(p(f"{name}_topic", getattr(robot.TOPICS, name)).value)
            for name in (
                "clock", "joint_states", "odom", "features", "arm_command", "arm_trajectory", "cmd_vel",
                "instruction",
            )
        }  # fmt: skip
        if behaviour and behaviour not in robot.BEHAVIOURS:
            raise VandError(f"parameter demonstrator={behaviour!r}: expected '' or one of {robot.BEHAVIOURS}")
        if len(initial_pose) != 3 or not all(math.isfinite(v) for v in initial_pose):
            raise VandError(f"parameter initial_pose={initial_pose}: expected 3 finite numbers [x, y, yaw]")
        if self.clock_mode not in ("sim", "system"):
            raise VandError(f"parameter clock={self.clock_mode!r}: expected 'sim' or 'system'")
        if self.clock_mode == "system" and self.rtf != 1.0:
            raise VandError(
                "parameter clock='system' needs real_time_factor 1.0 (stamps follow the wall clock)"
            )
        if cmd_timeout <= 0 or self.duration < 0:
            raise VandError("parameters cmd_timeout must be > 0 and duration >= 0")

        self.sim = Sim(cmd_timeout=cmd_timeout)
        demo = D.make(behaviour, D.episode_rng(seed, episode, behaviour)) if behaviour else None
        if demo is not None and self.duration == 0:
            self.duration = demo.duration
        self.sink = RclpySink(self, topics, with_commands=demo is not None)
        self.sink.publish_clock = self.clock_mode == "sim"
        self.runner = Runner(self.sim, self.sink, demo)
        self.sim.reset(initial_pose)
        self.rejected = 0
        if demo is None:  # with a demonstrator, it alone drives the robot
            self.create_subscription(Float64MultiArray, topics["arm_command"], self._on_arm, 10)
            self.create_subscription(JointTrajectory, topics["arm_trajectory"], self._on_trajectory, 10)
            if stamped:
                self.create_subscription(
                    TwistStamped, topics["cmd_vel"], lambda m: self._on_twist(m.twist), 10
                )
            else:
                self.create_subscription(Twist, topics["cmd_vel"], self._on_twist, 10)
        self.get_logger().info(
            f"sim ready: rtf={self.rtf if self.rtf > 0 else 'max'} duration={self.duration or 'inf'} "
            f"demonstrator={behaviour or 'none'}"
        )

    # ---- commands -------------------------------------------------------------------------------------
    def _reject(self, why: str) -> None:
        self.rejected += 1
        self.get_logger().warning(f"command rejected, not applied: {why}", throttle_duration_sec=WARN_PERIOD)

    def _on_arm(self, msg: Float64MultiArray) -> None:
        q = np.asarray(msg.data, dtype=np.float64)
        if q.size != N_ARM:
            return self._reject(
                f"arm command has {q.size} values, expected {N_ARM} ({', '.join(robot.ARM_JOINT_NAMES)})"
            )
        if not np.all(np.isfinite(q)):
            return self._reject("arm command contains NaN or Inf")
        self.sim.set_arm_targets(q)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        if not msg.points:
            return self._reject("joint trajectory has no points")
        names = list(msg.joint_names)
        if sorted(names) != sorted(robot.ARM_JOINT_NAMES):
            return self._reject(f"trajectory joints {names}, expected {list(robot.ARM_JOINT_NAMES)}")
        point = np.asarray(msg.points[-1].positions, dtype=np.float64)
        if point.size != len(names):
            return self._reject(f"trajectory point has {point.size} positions for {len(names)} joints")
        if not np.all(np.isfinite(point)):
            return self._reject("trajectory point contains NaN or Inf")
        self.sim.set_arm_targets([point[names.index(n)] for n in robot.ARM_JOINT_NAMES])

    def _on_twist(self, msg: Twist) -> None:
        v = (msg.linear.x, msg.linear.y, msg.angular.z)
        if not all(math.isfinite(c) for c in v):
            return self._reject("cmd_vel contains NaN or Inf")
        self.sim.set_base_twist(*v)

    # ---- loop -----------------------------------------------------------------------------------------
    def wait_for_subscribers(self, executor: SingleThreadedExecutor) -> None:
        deadline = time.monotonic() + self.wait_timeout
        while min(pub.get_subscription_count() for pub in self.sink.publishers) < self.wait_subs:
            if time.monotonic() > deadline:
                raise VandError(
                    f"wait_for_subscribers={self.wait_subs}: not every topic had that many subscribers "
                    f"after {self.wait_timeout} s; start the recorder first or lower the parameter"
                )
            spin_once(executor, 0.02, self.get_logger())
        settle_end = time.monotonic() + self.start_delay
        while (remaining := settle_end - time.monotonic()) > 0:
            spin_once(executor, remaining, self.get_logger())

    def run(self, executor: SingleThreadedExecutor) -> None:
        """Step, publish and serve callbacks until `duration` or shutdown; paced by real_time_factor."""
        if self.wait_subs > 0:
            self.wait_for_subscribers(executor)
        if self.clock_mode == "system":
            self.sink.offset_ns = self.get_clock().now().nanoseconds
        self.runner.start()
        end_steps = round(self.duration / self.sim.model.opt.timestep) if self.duration > 0 else None
        wall0 = time.monotonic()
        while rclpy.ok() and (end_steps is None or self.sim.steps < end_steps):
            self.runner.emit()
            self.runner.advance()
            if self.rtf > 0:
                target = wall0 + self.sim.time_ns / 1e9 / self.rtf
                while (remaining := target - time.monotonic()) > 0:
                    spin_once(executor, remaining, self.get_logger())
            elif self.sim.steps % self.runner.p.control == 0:
                spin_once(
                    executor, 0, self.get_logger()
                )  # as fast as possible: serve callbacks once per control tick
        for pub in self.sink.publishers:
            pub.wait_for_all_acked(rclpy.duration.Duration(seconds=2.0))


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = SimNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        node.run(executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except VandError as err:
        if node is not None:
            node.get_logger().error(str(err))
        else:
            print(f"sim_node: error: {err}")
        raise SystemExit(1) from None
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
