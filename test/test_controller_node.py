"""The controller node in-process: real rclpy, real DDS inside one process, a controllable /clock.

The test drives time by publishing /clock (the node runs on `use_sim_time`), publishes sensor messages
stamped on that clock, and polls (never sleeps) until the node has ticked.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray, Float64MultiArray, MultiArrayDimension, String
from std_srvs.srv import Trigger

from vand_ros import robot
from vand_ros.controller.node import ControllerNode
from vand_ros.errors import VandError

PERIOD_NS = 50_000_000  # 20 Hz, the tiny policy's rate
HOME = np.array([j.home for j in robot.ARM_JOINTS])
LOWER = np.array([j.lower for j in robot.ARM_JOINTS])
UPPER = np.array([j.upper for j in robot.ARM_JOINTS])


class Harness:
    """One controller node plus a peer node that plays the robot, in one rclpy context."""

    def __init__(self, model: Path, domain: int, **params: Any) -> None:
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain)
        overrides = [Parameter("use_sim_time", value=True), Parameter("model", value=str(model))]
        overrides += [Parameter(k, value=v) for k, v in params.items()]
        self.node = ControllerNode(context=self.ctx, parameter_overrides=overrides)
        self.peer = rclpy.create_node("peer", context=self.ctx)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        self.ex.add_node(self.peer)
        p = self.peer
        self.clock_pub = p.create_publisher(Clock, "/clock", 10)
        self.joint_pub = p.create_publisher(JointState, "/joint_states", 10)
        self.odom_pub = p.create_publisher(Odometry, "/odom", 10)
        self.feat_pub = p.create_publisher(Float32MultiArray, "/camera/features", 10)
        self.instr_pub = p.create_publisher(String, "/vand_controller/instruction", 10)
        self.arm: list[np.ndarray] = []
        self.cmd: list[np.ndarray] = []
        self.diag: list[DiagnosticArray] = []
        p.create_subscription(
            Float64MultiArray, "/arm_controller/commands", lambda m: self.arm.append(np.array(m.data)), 10
        )
        p.create_subscription(
            Twist, "/cmd_vel", lambda m: self.cmd.append(np.array([m.linear.x, m.linear.y, m.angular.z])), 10
        )
        p.create_subscription(DiagnosticArray, "/diagnostics", self.diag.append, 10)
        self.change_state = p.create_client(ChangeState, "/vand_controller/change_state")
        self.get_state = p.create_client(GetState, "/vand_controller/get_state")
        self.reset_client = p.create_client(Trigger, "/vand_controller/reset")
        self.t = 1_000_000_000
        self.joints = HOME.copy()
        self._publish_clock()

    def close(self) -> None:
        self.ex.shutdown()
        self.node.destroy_node()
        self.peer.destroy_node()
        rclpy.shutdown(context=self.ctx)

    def spin_until(self, cond: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not reached")
            self.ex.spin_once(timeout_sec=0.01)

    def _publish_clock(self) -> None:
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(self.t, 1_000_000_000)
        self.clock_pub.publish(msg)
        self.spin_until(lambda: self.node.get_clock().now().nanoseconds == self.t)

    def tick(
        self,
        joints: bool = True,
        odom: bool = True,
        features: bool = True,
        nan_features: bool = False,
        wait_tick: bool = True,
    ) -> None:
        """Advance one control period: publish the inputs stamped at the new time, then the clock (and wait
        for the node's tick, unless `wait_tick` is False: an inactive node does not tick)."""
        self.t += PERIOD_NS
        stamp = divmod(self.t, 1_000_000_000)
        a = self.node.assembler
        counts = (a.joints.accepted, a.base.accepted, a.features.accepted, sum(a.rejected.values()))
        if joints:
            js = JointState()
            js.header.stamp.sec, js.header.stamp.nanosec = stamp
            js.name = ["base_x", *reversed(robot.ARM_JOINT_NAMES)]  # any order, one extra joint
            js.position = [0.0, *reversed(self.joints.tolist())]
            self.joint_pub.publish(js)
        if odom:
            od = Odometry()
            od.header.stamp.sec, od.header.stamp.nanosec = stamp
            od.twist.twist.linear.x = 0.1
            self.odom_pub.publish(od)
        if features:
            f = Float32MultiArray()
            f.data = [float("nan") if nan_features else 0.5] * robot.FEATURE_SIZE
            f.layout.dim = [
                MultiArrayDimension(
                    label="entity:" + ",".join(robot.FEATURE_ENTITIES),
                    size=len(robot.FEATURE_ENTITIES),
                    stride=robot.FEATURE_SIZE,
                ),
                MultiArrayDimension(label="field:x,y,z,visible", size=4, stride=4),
            ]
            self.feat_pub.publish(f)
        expected = counts[0] + joints, counts[1] + odom, counts[2] + (features and not nan_features)
        self.spin_until(
            lambda: (
                (a.joints.accepted, a.base.accepted, a.features.accepted) == expected
                and sum(a.rejected.values()) == counts[3] + nan_features
            )
        )
        ticks = self.node.core.counters.ticks
        self._publish_clock()
        if wait_tick:
            self.spin_until(lambda: self.node.core.counters.ticks > ticks)
        else:
            self.spin_for(0.05)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.01)

    def transition(self, transition_id: int) -> bool:
        """Ask for a lifecycle transition through the node's service, as `ros2 lifecycle set` does."""
        return bool(
            self.call(self.change_state, ChangeState.Request(transition=Transition(id=transition_id))).success
        )

    def state(self) -> str:
        return str(self.call(self.get_state, GetState.Request()).current_state.label)

    def call(self, client: Any, request: Any) -> Any:
        assert client.wait_for_service(timeout_sec=5.0)
        future = client.call_async(request)
        self.spin_until(future.done)
        return future.result()


@pytest.fixture
def harness_factory(tiny_policy: Path, ros_domain: int) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**params: Any) -> Harness:
        h = Harness(tiny_policy, ros_domain, **params)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def test_runs_the_policy_within_limits_and_reports_diagnostics(harness_factory) -> None:
    h = harness_factory(autostart=True, instruction="wipe")
    for _ in range(25):
        h.tick()
    h.spin_until(lambda: len(h.arm) >= 25 and len(h.cmd) >= 25 and len(h.diag) >= 1)
    arm = np.array(h.arm)
    assert np.all(arm >= LOWER) and np.all(arm <= UPPER) and np.all(np.isfinite(arm))
    assert np.abs(arm[-1] - HOME).max() < 0.3, "the untrained tiny policy stays near its action mean (home)"
    assert h.node.core.counters.policy_steps >= 25
    status = h.diag[-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert status.message.startswith("running")
    assert values["execution mode"] == "noise"  # the card's default for vand keeps the noise on
    assert values["instruction"] == "wipe"
    assert float(values["period error max [ms]"]) == pytest.approx(0.0, abs=1e-6)  # sim clock, exact ticks


def test_lifecycle_configure_activate_deactivate_cleanup(harness_factory) -> None:
    """Unconfigured until configured, silent until activated, blends in from the measured pose, holds and
    stops on deactivate, releases the model on cleanup: driven through the lifecycle services."""
    h = harness_factory(instruction="wipe", blend_time=1.0)
    assert h.state() == "unconfigured" and h.node.policy is None
    assert h.transition(Transition.TRANSITION_CONFIGURE) and h.state() == "inactive"
    h.joints = HOME + 0.2
    for _ in range(3):
        h.tick(wait_tick=False)
    h.spin_until(lambda: h.node.assembler.joints.accepted >= 3)
    assert h.node.core.counters.ticks == 0 and h.arm == [] and h.cmd == [], "inactive: no tick, no command"

    assert h.transition(Transition.TRANSITION_ACTIVATE) and h.state() == "active"
    h.tick()
    h.spin_until(lambda: len(h.arm) >= 1)
    step = np.abs(h.arm[0] - (HOME + 0.2))
    max_step = np.array([j.max_velocity for j in robot.ARM_JOINTS]) * 0.05
    assert np.all(step <= max_step / 20 + 1e-9), "the first command after activate moves at most a ramp step"
    for _ in range(3):
        h.tick()

    n_arm = len(h.arm)
    assert h.transition(Transition.TRANSITION_DEACTIVATE) and h.state() == "inactive"
    h.spin_until(lambda: len(h.arm) > n_arm and len(h.cmd) > n_arm)
    np.testing.assert_allclose(h.arm[-1], h.joints, atol=1e-12)  # held at the measured pose
    np.testing.assert_array_equal(h.cmd[-1], np.zeros(3))  # base stopped
    n_arm = len(h.arm)
    for _ in range(3):
        h.tick(wait_tick=False)
    assert len(h.arm) == n_arm, "inactive again: nothing more is commanded"

    assert h.transition(Transition.TRANSITION_CLEANUP) and h.state() == "unconfigured"
    assert h.node.policy is None and h.node.core is None
    assert not h.call(h.reset_client, Trigger.Request()).success  # nothing to reset without a model
    assert h.transition(Transition.TRANSITION_CONFIGURE) and h.state() == "inactive"  # and back again


def test_an_error_in_the_control_tick_holds_stops_and_unconfigures(harness_factory) -> None:
    h = harness_factory(autostart=True, instruction="wipe")
    for _ in range(3):
        h.tick()
    h.spin_until(lambda: len(h.cmd) >= 3)
    n = len(h.cmd)

    def broken(now_ns: int) -> None:
        raise RuntimeError("model output has the wrong shape")

    h.node.core.tick = broken  # a bug or a broken model mid-run
    h.t += PERIOD_NS
    h._publish_clock()
    h.spin_until(lambda: h.node.lifecycle_state == "unconfigured")
    assert "wrong shape" in h.node.error and h.node.policy is None
    h.spin_until(lambda: len(h.cmd) > n)
    np.testing.assert_array_equal(h.cmd[-1], np.zeros(3))  # its last base command: stop
    np.testing.assert_allclose(h.arm[-1], HOME, atol=1e-12)  # and the arm held at the measured pose
    assert h.state() == "unconfigured"


def test_stale_joints_hold_the_arm_and_stop_the_base_then_resume(harness_factory) -> None:
    h = harness_factory(autostart=True, instruction="wipe", max_age_joints=0.1)
    for _ in range(5):
        h.tick()
    n_before, faults = len(h.arm), h.node.core.counters.faults
    for _ in range(4):  # 200 ms without joint states: stale after 100 ms
        h.tick(joints=False)
    h.spin_until(lambda: len(h.cmd) >= n_before + 4)
    assert h.node.core.counters.faults == faults + 1
    np.testing.assert_allclose(h.arm[-1], HOME, atol=1e-12)  # held at the last measured pose
    np.testing.assert_array_equal(h.cmd[-1], np.zeros(3))
    for _ in range(3):
        h.tick()
    assert h.node._last_state == "running"
    assert h.node.core.counters.faults == faults + 1


def test_nan_features_never_reach_the_policy(harness_factory) -> None:
    h = harness_factory(autostart=True, instruction="wipe")
    for _ in range(3):
        h.tick()
    steps = h.node.core.counters.policy_steps
    for _ in range(3):
        h.tick(nan_features=True)
    assert h.node.core.counters.policy_steps == steps
    assert h.node._last_state == "holding"
    assert any("non-finite" in r for r in h.node._last_reasons)
    h.tick()
    assert h.node._last_state == "running"


def test_instruction_change_and_reset_service_reset_the_recurrent_state(harness_factory) -> None:
    h = harness_factory(autostart=True, instruction="wipe")
    for _ in range(5):
        h.tick()
    assert h.node.policy.steps_since_reset == 5
    h.instr_pub.publish(String(data="patrol"))
    h.spin_until(lambda: len(h.node.assembler.instruction.stamps) >= 2)
    h.tick()
    assert h.node.policy.steps_since_reset == 1
    h.tick()
    assert h.node.policy.steps_since_reset == 2
    assert h.call(h.reset_client, Trigger.Request()).success
    h.tick()
    assert h.node.policy.steps_since_reset == 1
    assert h.node.core.counters.resets == 3  # enable, instruction change, reset service


def test_unknown_instruction_is_rejected_and_not_used(harness_factory) -> None:
    h = harness_factory(autostart=True, instruction="wipe")
    h.tick()
    h.instr_pub.publish(String(data="dance"))
    h.spin_until(lambda: h.node.assembler.rejected["instruction"] == 1)
    h.tick()
    assert h.node._last_state == "holding"  # the bad instruction poisons the stream until a good one
    h.instr_pub.publish(String(data="wipe"))
    h.spin_until(lambda: h.node.assembler.instruction.poisoned is None)
    h.tick()
    assert h.node._last_state == "running"


@pytest.mark.parametrize(
    "params,message",
    [
        ({"joint_names": ["a", "b", "c", "d", "e", "f"]}, "joint names"),
        ({"control_rate": 50.0}, "control rate"),
        ({"instruction": "dance"}, "vocabulary"),
        ({"execution_mode": "stochastic", "model": "/nonexistent.onnx"}, "does not exist"),
    ],
)
def test_a_model_that_does_not_match_the_configuration_is_refused(
    tiny_policy: Path, ros_domain: int, params: dict, message: str
) -> None:
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    try:
        overrides = [Parameter("model", value=str(tiny_policy))] + [
            Parameter(k, value=v) for k, v in params.items()
        ]
        node = ControllerNode(context=ctx, parameter_overrides=overrides)
        # configure fails, says why, and leaves the node unconfigured (a lifecycle failure, not a crash)
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert re.search(message, node.error) and node.lifecycle_state == "unconfigured"
        assert node.policy is None
        node.destroy_node()
        with pytest.raises(VandError, match=message):  # with autostart the process stops with the reason
            ControllerNode(context=ctx, parameter_overrides=[*overrides, Parameter("autostart", value=True)])
    finally:
        rclpy.shutdown(context=ctx)
