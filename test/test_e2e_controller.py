"""End to end over DDS: sim_node and controller_node as separate processes, faults injected mid-run.

The simulation stamps in system time (`clock:=system`), as a real robot's drivers do, so the controller
runs on the wall clock and notices when the robot goes quiet. The test process sits between them as a
relay for /joint_states and /camera/features, so it can cut or corrupt those streams; it also listens
to the controller's commands and /diagnostics.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vand_ros import robot
from vand_ros.processes import stop_process

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
HOME = np.array([j.home for j in robot.ARM_JOINTS])


class Relay:
    """Test-side node: relays sensors to the controller (with faults on demand) and records its outputs."""

    def __init__(self, domain: int) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import Twist
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float32MultiArray, Float64MultiArray

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain)
        self.node = n = rclpy.create_node("e2e_relay", context=self.ctx)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(n)
        self.cut_joints = False
        self.nan_features = False
        self.joints: list[np.ndarray] = []  # what the sim measured (arm order)
        self.arm: list[np.ndarray] = []
        self.cmd: list[np.ndarray] = []
        self.diag: list[dict[str, str]] = []
        js_pub = n.create_publisher(JointState, "/relay/joint_states", 10)
        ft_pub = n.create_publisher(Float32MultiArray, "/relay/camera/features", 10)

        def on_js(msg: JointState) -> None:
            self.joints.append(np.array(msg.position))
            if not self.cut_joints:
                js_pub.publish(msg)

        def on_ft(msg: Float32MultiArray) -> None:
            if self.nan_features:
                msg.data = [float("nan")] * len(msg.data)
            ft_pub.publish(msg)

        def on_diag(msg: DiagnosticArray) -> None:
            for s in msg.status:
                if "vand_ros controller" in s.name:
                    self.diag.append({"message": s.message, **{kv.key: kv.value for kv in s.values}})

        n.create_subscription(JointState, "/joint_states", on_js, 10)
        n.create_subscription(Float32MultiArray, "/camera/features", on_ft, 10)
        n.create_subscription(
            Float64MultiArray, "/arm_controller/commands", lambda m: self.arm.append(np.array(m.data)), 10
        )
        n.create_subscription(
            Twist, "/cmd_vel", lambda m: self.cmd.append(np.array([m.linear.x, m.linear.y, m.angular.z])), 10
        )
        n.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.01)

    def spin_until(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {what}; last diagnostics: {self.diag[-1:]}")
            self.ex.spin_once(timeout_sec=0.01)

    def state(self) -> str:
        return self.diag[-1]["state"] if self.diag else ""

    def close(self) -> None:
        import rclpy

        self.ex.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


@contextmanager
def _system(
    tiny_policy: Path, ros_domain: int, tmp_path: Path, **overrides: Any
) -> Iterator[tuple[Relay, Any]]:
    """sim_node (system clock) and controller_node as processes, the relay in this one."""
    env = {**os.environ, "ROS_DOMAIN_ID": str(ros_domain)}
    sim_cmd = [str(BIN / "sim_node"), "--ros-args", "-p", "real_time_factor:=1.0", "-p", "clock:=system"]
    procs = {"sim": _start(sim_cmd, env, tmp_path / "sim.log")}
    params = {
        "model": tiny_policy,
        "autostart": "true",
        "instruction": "wipe",
        "joint_states_topic": "/relay/joint_states",
        "features_topic": "/relay/camera/features",
        "diagnostics_period": 0.25,
        "fault_reset_time": 0.5,
        **overrides,
    }
    ctrl_cmd = [str(BIN / "controller_node"), "--ros-args"]
    for name, value in params.items():
        ctrl_cmd += ["-p", f"{name}:={value}"]
    procs["controller"] = _start(ctrl_cmd, env, tmp_path / "controller.log")
    relay = Relay(ros_domain)

    def restart_sim() -> None:
        procs["sim"] = _start(sim_cmd, env, tmp_path / "sim2.log")

    try:
        yield relay, (procs, restart_sim)
    finally:
        relay.close()
        for p in procs.values():
            stop_process(p)
        logs = {p.name: p.read_text(errors="replace")[-3000:] for p in tmp_path.glob("*.log")}
        print("\n".join(f"--- {k}\n{v}" for k, v in logs.items()))


@pytest.fixture
def system(tiny_policy: Path, ros_domain: int, tmp_path: Path) -> Iterator[tuple[Relay, Any]]:
    with _system(tiny_policy, ros_domain, tmp_path) as s:
        yield s


def test_controller_drives_the_sim_and_holds_on_faults_then_recovers(system: tuple[Relay, Any]) -> None:
    relay, (procs, restart_sim) = system
    relay.spin_until(lambda: relay.state() == "running", 30.0, "the controller to run the policy")

    # Running: commands within limits, and the simulated arm tracks them (the tiny policy aims near home).
    n0 = len(relay.arm)
    relay.spin_for(2.0)
    arm = np.array(relay.arm[n0:])
    assert len(arm) >= 20, "about 20 Hz of arm commands"
    lower, upper = (
        np.array([j.lower for j in robot.ARM_JOINTS]),
        np.array([j.upper for j in robot.ARM_JOINTS]),
    )
    assert np.all(arm >= lower) and np.all(arm <= upper)
    assert np.abs(relay.joints[-1] - arm[-1]).max() < 0.1, "the sim's arm follows the controller's targets"

    # Joint states stop reaching the controller: it holds the arm where it is and stops the base.
    relay.cut_joints = True
    relay.spin_until(lambda: relay.state() == "holding", 5.0, "holding after joints went stale")
    assert any("joint_states" in d["message"] for d in relay.diag[-2:])
    relay.spin_for(0.5)
    np.testing.assert_array_equal(relay.cmd[-1], np.zeros(3))
    np.testing.assert_allclose(relay.arm[-1], relay.joints[-1], atol=0.02)
    relay.cut_joints = False
    relay.spin_until(lambda: relay.state() == "running", 5.0, "recovery after joints came back")

    # NaN camera features never reach the policy.
    steps = int(relay.diag[-1]["policy steps"])
    relay.nan_features = True
    relay.spin_until(lambda: relay.state() == "holding", 5.0, "holding on NaN features")
    relay.spin_for(0.6)
    held = int(relay.diag[-1]["policy steps"])
    relay.spin_for(0.6)
    assert int(relay.diag[-1]["policy steps"]) == held >= steps
    relay.nan_features = False
    relay.spin_until(lambda: relay.state() == "running", 5.0, "recovery after good features")

    # The robot dies: the controller holds and stops the base; a new robot brings it back.
    stop_process(procs["sim"])
    relay.spin_until(lambda: relay.state() == "holding", 5.0, "holding after the sim died")
    relay.spin_for(0.3)
    np.testing.assert_array_equal(relay.cmd[-1], np.zeros(3))
    restart_sim()
    relay.spin_until(lambda: relay.state() == "running", 30.0, "recovery with a new sim")
    assert int(relay.diag[-1]["state resets"]) >= 2, "a fault longer than fault_reset_time resets the state"

    # Ctrl-C while commanding: the node exits by itself (not killed) and its last commands hold the arm
    # and stop the base. Its signal handler only requests the stop: a KeyboardInterrupt raised into rclpy
    # while it converted a message was once swallowed, and the node spun on until killed.
    relay.spin_for(0.5)
    assert stop_process(procs["controller"], timeout=5.0) == "stopped"
    assert procs["controller"].returncode == 0
    relay.spin_for(0.5)
    np.testing.assert_array_equal(relay.cmd[-1], np.zeros(3))
    np.testing.assert_allclose(relay.arm[-1], relay.joints[-1], atol=0.05)


def test_the_lifecycle_services_drive_the_controller_from_another_process(
    tiny_policy: Path, ros_domain: int, tmp_path: Path
) -> None:
    """`ros2 lifecycle set` over DDS: configure, activate, deactivate, cleanup, shutdown, each checked by
    what the controller commands (or does not) to the running sim."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    realtime = {"realtime_priority": 10, "lock_memory": "true"}
    with _system(tiny_policy, ros_domain, tmp_path, autostart="false", **realtime) as (relay, (procs, _)):
        change = relay.node.create_client(ChangeState, "/vand_controller/change_state")
        get = relay.node.create_client(GetState, "/vand_controller/get_state")

        def call(client: Any, request: Any) -> Any:
            relay.spin_until(client.service_is_ready, 30.0, f"{client.srv_name}")
            future = client.call_async(request)
            relay.spin_until(future.done, 10.0, f"a reply from {client.srv_name}")
            return future.result()

        def state() -> str:
            return str(call(get, GetState.Request()).current_state.label)

        def transition(tid: int) -> bool:
            return bool(call(change, ChangeState.Request(transition=Transition(id=tid))).success)

        assert state() == "unconfigured"
        relay.spin_until(lambda: relay.state() == "unconfigured", 10.0, "diagnostics while unconfigured")
        assert transition(Transition.TRANSITION_CONFIGURE) and state() == "inactive"
        relay.spin_for(1.0)
        assert relay.arm == [] and relay.cmd == [], "configured but inactive: no command"

        assert transition(Transition.TRANSITION_ACTIVATE) and state() == "active"
        relay.spin_until(lambda: len(relay.arm) >= 20, 10.0, "commands while active")
        assert np.abs(relay.joints[-1] - relay.arm[-1]).max() < 0.1, "the sim follows"
        # The realtime request: granted (here the tests run as root), or refused with a warning.
        relay.spin_until(lambda: "scheduling" in relay.diag[-1], 5.0, "diagnostics while active")
        log = (tmp_path / "controller.log").read_text(errors="replace")
        assert relay.diag[-1]["scheduling"] == "SCHED_FIFO 10" or "rtprio" in log, relay.diag[-1]

        assert transition(Transition.TRANSITION_DEACTIVATE) and state() == "inactive"
        relay.spin_for(0.3)
        np.testing.assert_array_equal(relay.cmd[-1], np.zeros(3))  # the last base command: stop
        np.testing.assert_allclose(relay.arm[-1], relay.joints[-1], atol=0.02)  # the arm held where it is
        n = len(relay.arm)
        relay.spin_for(1.0)
        assert len(relay.arm) == n, "inactive: nothing more is commanded"

        assert transition(Transition.TRANSITION_CLEANUP) and state() == "unconfigured"
        assert transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN) and state() == "finalized"
        assert procs["controller"].poll() is None, "finalized, the process stays until it is stopped"
