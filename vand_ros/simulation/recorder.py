"""`recorder_node`: record the robot's topics over DDS into a real rosbag2 (MCAP or sqlite3), no ROS install.

Stands in for `ros2 bag record` where rosbag2_py is not available. It subscribes with raw=True and writes
the exact CDR bytes it received (rclpy's re-serialisation pads empty arrays; see STACK.md), stamped with
the node's clock at reception: with use_sim_time (on by default) that is the sim time from /clock, so a
recording of the sim lines up with the bags `vand-ros demos` writes in-process.

Stops on SIGINT/SIGTERM (after draining what already arrived) or after `duration` sim seconds measured
from the first message. Parameters: out (str, required), storage ("mcap" | "sqlite3"), compress (bool),
duration (float, 0 = until signalled), with_clock (bool: also record /clock), *_topic (topic names).
"""

from __future__ import annotations

import importlib
import signal
import sys
import time
from typing import Any

import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from vand_ros.data.bag_writer import BagWriter
from vand_ros.errors import VandError
from vand_ros.simulation.bagsink import CLOCK, RECORDED

QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
DRAIN_QUIET = 0.3  # [s] wall time without messages that ends the drain after a stop signal


def message_class(msgtype: str) -> Any:
    """rclpy message class from 'pkg/msg/Name'."""
    pkg, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


class Recorder(Node):
    """Writes every message on the recorded topics to one bag. Use `close()` to finish the bag."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("parameter_overrides", [Parameter("use_sim_time", value=True)])
        super().__init__("recorder_node", **kwargs)
        out = str(self.declare_parameter("out", "").value)
        storage = str(self.declare_parameter("storage", "mcap").value)
        compress = bool(self.declare_parameter("compress", False).value)
        self.duration = float(self.declare_parameter("duration", 0.0).value)
        with_clock = bool(self.declare_parameter("with_clock", False).value)
        if not out:
            raise VandError("parameter out is empty: expected the directory of the new bag (-p out:=DIR)")
        topics = [*RECORDED, *((CLOCK,) if with_clock else ())]
        self.bag = BagWriter(out, storage=storage, compress=compress)
        self.bag.__enter__()
        self.first_ns: int | None = None
        self.done = False
        self.last_wall = time.monotonic()
        for default, msgtype in topics:
            key = default.strip("/").replace("/", "_") + "_topic"
            topic = str(self.declare_parameter(key, default).value)
            self.bag.add_topic(topic, msgtype)
            self.create_subscription(
                message_class(msgtype), topic, self._callback(topic, msgtype), QOS, raw=True
            )
        self.get_logger().info(f"recording {len(topics)} topics to {out} ({storage})")

    def _callback(self, topic: str, msgtype: str) -> Any:
        def write(data: bytes) -> None:
            ns = self.get_clock().now().nanoseconds
            if self.first_ns is None:
                self.first_ns = ns
            self.bag.write_raw(topic, ns, bytes(data), msgtype)
            self.last_wall = time.monotonic()
            if self.duration > 0 and ns - self.first_ns >= self.duration * 1e9:
                self.done = True

        return write

    def close(self) -> None:
        self.bag.__exit__(None, None, None)
        self.get_logger().info(f"wrote {self.bag.count} messages to {self.bag.path}")


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = {"requested": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        node = Recorder()
    except VandError as err:
        print(f"recorder_node: error: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        raise SystemExit(1) from None
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop["requested"] and not node.done:
            executor.spin_once(timeout_sec=0.05)
        # Drain what DDS already delivered: stop once the topics have been quiet for DRAIN_QUIET.
        while not node.done and time.monotonic() - node.last_wall < DRAIN_QUIET:
            executor.spin_once(timeout_sec=0.05)
    finally:
        node.close()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
