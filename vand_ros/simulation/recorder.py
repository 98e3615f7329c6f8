"""`recorder_node`: record the robot's topics over DDS into a real rosbag2 (MCAP), no ROS install.

Stands in for `ros2 bag record` where rosbag2_py is not available. It subscribes with raw=True and writes
the exact CDR bytes it received (rclpy's re-serialisation pads empty arrays; see STACK.md), stamped with
the node's clock at reception: with use_sim_time (on by default) that is the sim time from /clock, so a
recording of the sim lines up with the bags `vand-ros demos` writes in-process.

The bag survives the recorder (`data.recording`): metadata.yaml exists from the start, the open file is
flushed to the kernel every FLUSH_PERIOD of wall time, and files are split by max_bag_duration /
max_bag_size. Killed with SIGKILL it loses at most the last FLUSH_PERIOD; `vand-ros bag repair DIR`
recovers the rest. A write error (a full disk) stops the recording with exit status 1 and says so.

Stops on SIGINT/SIGTERM/SIGHUP (after draining what already arrived, for at most DRAIN_MAX whether or
not the topics go quiet) or after `duration` sim seconds measured from the first message. Parameters:
out (str, required), compress (bool), duration (float, 0 = until signalled), max_bag_duration (float
[s], 0 = no split), max_bag_size (int [bytes], 0 = no split), with_clock (bool: also record /clock),
episode_kind (str, "": how the demonstration is made, e.g. clean or recovery, kept in the bag's metadata:
data.recording.KIND_KEY), *_topic (topic names).
"""

from __future__ import annotations

import importlib
import signal
import sys
import time
from typing import Any

import rclpy
from rclpy.clock import Clock, ClockType  # type: ignore[attr-defined]  # Humble defines it here
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from vand_ros.data.recording import RecordingBag
from vand_ros.errors import VandError
from vand_ros.simulation.bagsink import CLOCK, RECORDED

QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
DRAIN_QUIET = 0.3  # [s] wall time without messages that ends the drain after a stop signal
DRAIN_MAX = 1.0  # [s] the drain ends after this even if the topics never go quiet
FLUSH_PERIOD = 1.0  # [s] wall time between flushes of the open bag file to the kernel


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
        compress = bool(self.declare_parameter("compress", False).value)
        self.duration = float(self.declare_parameter("duration", 0.0).value)
        max_duration = float(self.declare_parameter("max_bag_duration", 0.0).value)
        max_size = int(self.declare_parameter("max_bag_size", 0).value)
        with_clock = bool(self.declare_parameter("with_clock", False).value)
        episode_kind = str(self.declare_parameter("episode_kind", "").value)
        if not out:
            raise VandError("parameter out is empty: expected the directory of the new bag (-p out:=DIR)")
        topics = [*RECORDED, *((CLOCK,) if with_clock else ())]
        self.bag = RecordingBag(
            out, max_duration=max_duration, max_size=max_size, compress=compress, episode_kind=episode_kind
        )
        self.first_ns: int | None = None
        self.done = False
        self.error = ""  # why the recording stopped early ("" while it runs)
        self.last_wall = time.monotonic()
        self.create_timer(FLUSH_PERIOD, self._flush, clock=Clock(clock_type=ClockType.STEADY_TIME))
        for default, msgtype in topics:
            key = default.strip("/").replace("/", "_") + "_topic"
            topic = str(self.declare_parameter(key, default).value)
            self.bag.add_topic(topic, msgtype)
            self.create_subscription(
                message_class(msgtype), topic, self._callback(topic, msgtype), QOS, raw=True
            )
        self.get_logger().info(f"recording {len(topics)} topics to {out} (mcap)")

    def _callback(self, topic: str, msgtype: str) -> Any:
        def write(data: bytes) -> None:
            if self.error:
                return
            ns = self.get_clock().now().nanoseconds
            if self.first_ns is None:
                self.first_ns = ns
            try:
                self.bag.write_raw(topic, ns, bytes(data), msgtype)
            except OSError as err:
                self._fail(f"cannot write to {self.bag.path}: {err}")
                return
            self.last_wall = time.monotonic()
            if self.duration > 0 and ns - self.first_ns >= self.duration * 1e9:
                self.done = True

        return write

    def _flush(self) -> None:
        if not self.error:
            try:
                self.bag.flush()
            except OSError as err:
                self._fail(f"cannot write to {self.bag.path}: {err}")

    def _fail(self, why: str) -> None:
        self.error = why
        self.done = True
        self.get_logger().error(f"{why}; the recording stops here")

    def close(self) -> bool:
        """Finish the bag; False (with the reason logged) when it could not be finished."""
        try:
            if self.error:
                raise OSError(self.error)
            self.bag.close()
        except OSError as err:
            self.bag.abort()
            self.get_logger().error(
                f"the bag {self.bag.path} is unfinished ({err}); `vand-ros bag repair {self.bag.path}` "
                "recovers what reached the disk"
            )
            return False
        self.get_logger().info(f"wrote {self.bag.count} messages to {self.bag.path} (complete)")
        return True


def main(args: list[str] | None = None) -> int:
    """Record until signalled or `duration`; 0 when the bag was finished, 1 otherwise."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = {"requested": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["requested"] = True

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        node = Recorder()
    except VandError as err:
        print(f"recorder_node: error: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        raise SystemExit(1) from None
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    finished = False
    try:
        while not stop["requested"] and not node.done:
            executor.spin_once(timeout_sec=0.05)
        # Drain what DDS already delivered: until the topics have been quiet for DRAIN_QUIET, and never
        # longer than DRAIN_MAX (a publisher that keeps going must not keep the recorder alive).
        drain_end = time.monotonic() + DRAIN_MAX
        while not node.done and time.monotonic() < drain_end:
            if time.monotonic() - node.last_wall >= DRAIN_QUIET:
                break
            executor.spin_once(timeout_sec=0.05)
    finally:
        finished = node.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0 if finished else 1


if __name__ == "__main__":
    sys.exit(main())
