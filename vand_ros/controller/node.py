"""The realtime controller node: the stateful ONNX policy at a fixed rate, behind the safety filter.

    ros2 run vand_ros controller_node --ros-args -p model:=/path/policy.onnx -p autostart:=true
    ros2 launch vand_ros controller.launch.py model:=/path/policy.onnx

A managed (lifecycle) node, the ROS 2 way for controllers (`ros2 lifecycle set /vand_controller ...`):

    configure   load the model and check its card against the parameters (failure: stays unconfigured,
                the reason logged and on /diagnostics)
    activate    engage: reset the recurrent state, blend in from the measured pose, start commanding
    deactivate  hold the arm where it is and stop the base, then command nothing
    cleanup     release the model and the topics
    shutdown    as deactivate and cleanup, from any state
    error       (an exception in a transition or in the control tick) hold and stop, release, unconfigured

With `autostart` the node configures and activates itself at start-up (what the launch files do).

Thin by design: it declares the parameters (vand_ros/controller/params.py), wires topics and services,
and on each timer tick feeds `ControlCore` (vand_ros/controller/core.py), which decides what to command.
Observations are assembled by the same code that built the training data (vand_ros/runtime/assembler.py).
Uses only rclpy APIs that Humble, Jazzy and Kilted share.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist, TwistStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray, Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vand_ros.controller import realtime
from vand_ros.controller.core import ControlCore, TickResult
from vand_ros.controller.params import PARAMETERS, ControllerConfig, ParamSpec
from vand_ros.controller.safety import BASE_AXES, SafetyFilter
from vand_ros.controller.timing import LoopMonitor
from vand_ros.errors import VandError
from vand_ros.rclpy_compat import spin_once
from vand_ros.runtime.assembler import ObservationAssembler
from vand_ros.runtime.policy import PolicyRuntime

# Sensor inputs: only the latest value matters. Best effort is compatible with reliable and best-effort
# publishers alike; depth 1 never queues stale samples behind fresh ones.
SENSOR_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)
STOP_ACK_TIMEOUT = 0.5  # [s] how long deactivate/shutdown wait for subscribers to acknowledge the stop
# Commands and instructions: reliable, a short queue.
COMMAND_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)


class ControllerNode(LifecycleNode):
    """Runs an exported vand_ros policy on the robot's topics at a fixed rate (a managed node)."""

    def __init__(self, node_name: str = "vand_controller", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.cfg = self._read_parameters()
        # This thread spins the executor, so it is the control thread.
        self.realtime = realtime.apply(self.cfg.realtime_request())
        for warning in self.realtime.warnings:
            self.get_logger().warning(warning)
        self._sim_time = bool(self.get_parameter("use_sim_time").value)
        self.error = ""  # why the last transition failed ("" when it did not)
        self.lifecycle_state = "unconfigured"
        self.policy: PolicyRuntime | None = None
        self.core: ControlCore | None = None
        self.assembler: ObservationAssembler | None = None
        self.monitor: LoopMonitor | None = None
        self._entities: list[Any] = []  # subscriptions, publishers and the tick timer of a configuration
        self._last_reasons: tuple[str, ...] = ()
        self._last_causes: tuple[str, ...] = ()
        self._last_state = ""
        self._last_result: TickResult | None = None
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_timer(self.cfg.diagnostics_period, self._publish_diagnostics)
        if self.cfg.autostart:
            if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise VandError(self.error or "configure failed")
            self.trigger_activate()
        else:
            self.get_logger().info(
                "unconfigured: configure and activate it (ros2 lifecycle set "
                f"{self.get_fully_qualified_name()} configure, then activate), or set autostart:=true"
            )

    # -- lifecycle --------------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except VandError as err:
            self._release()
            self.error = str(err)
            self.get_logger().error(f"configure failed: {err}")
            return TransitionCallbackReturn.FAILURE
        self.error = ""
        self.lifecycle_state = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self.core is not None and self.monitor is not None
        self.core.enable()
        self.monitor.restart()
        self.timer.reset()
        self.lifecycle_state = "active"
        self.get_logger().info("active: commanding the robot (blending in from the measured pose)")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._disengage()
        self.lifecycle_state = "inactive"
        self.get_logger().info("inactive: arm held, base stopped, no further commands")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.lifecycle_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.lifecycle_state == "active":
            self._disengage()
        self._release()
        self.lifecycle_state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error processing (from {state.label}): holding, stopping, releasing")
        try:
            self._disengage()
        except Exception as err:  # best effort: the error may have left the core half-built
            self.get_logger().error(f"could not command the hold: {err}")
        self._release()
        self.lifecycle_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        cfg = self.cfg
        self.policy = PolicyRuntime(cfg.model, mode=cfg.execution_mode or None, seed=cfg.seed)
        self.policy.check_matches(
            joint_names=cfg.joint_names,
            control_rate=cfg.control_rate or None,
            vocabulary_words=[cfg.instruction],
            base_axes=BASE_AXES,
        )
        self.rate = cfg.control_rate or self.policy.card.control_rate  # [Hz]
        layout = self.policy.layout
        self.assembler = ObservationAssembler(cfg.assembler_config(layout))
        self.core = ControlCore(
            self.policy,
            self.assembler,
            SafetyFilter(cfg.limits, self.rate, cfg.blend_time),
            layout,
            reset_on_instruction_change=cfg.reset_on_instruction_change,
            fault_reset_time=cfg.fault_reset_time,
        )
        self.monitor = LoopMonitor(self.rate)
        self._entities = [
            self.create_subscription(JointState, cfg.joint_states_topic, self._on_joints, SENSOR_QOS),
            self.create_subscription(Odometry, cfg.odom_topic, self._on_odom, SENSOR_QOS),
            self.create_subscription(Float32MultiArray, cfg.features_topic, self._on_features, SENSOR_QOS),
            self.create_subscription(String, cfg.instruction_topic, self._on_instruction, COMMAND_QOS),
        ]
        if cfg.arm_command_type == "joint_trajectory":
            self.arm_pub = self.create_publisher(JointTrajectory, cfg.arm_command_topic, COMMAND_QOS)
        else:
            self.arm_pub = self.create_publisher(Float64MultiArray, cfg.arm_command_topic, COMMAND_QOS)
        msg_type = TwistStamped if cfg.cmd_vel_type == "twist_stamped" else Twist
        self.cmd_pub = self.create_publisher(msg_type, cfg.cmd_vel_topic, COMMAND_QOS)
        self.timer = self.create_timer(1.0 / self.rate, self._on_tick)
        self.timer.cancel()  # ticks while active only
        self._entities += [self.arm_pub, self.cmd_pub, self.timer]
        self.get_logger().info(
            f"configured: policy {self.policy.identity} at {self.rate:g} Hz; "
            f"instruction {cfg.instruction or '(waiting on ' + cfg.instruction_topic + ')'}"
        )

    def _disengage(self) -> None:
        """Stop ticking, hold the arm at its measured pose and stop the base; wait (briefly) until the
        subscribers have the stop: a process that exits right after could otherwise take it with it."""
        if self.core is None:
            return
        self.timer.cancel()
        self.core.disable()
        self.stop_safely()
        for pub in (self.arm_pub, self.cmd_pub):
            if not pub.wait_for_all_acked(Duration(seconds=STOP_ACK_TIMEOUT)):
                self.get_logger().warning(f"the stop command on {pub.topic_name} was not acknowledged")

    def _release(self) -> None:
        """Destroy what configure created and drop the model."""
        for entity in self._entities:  # each destroy_* returns False for what is not of its kind
            _ = (
                self.destroy_subscription(entity)
                or self.destroy_publisher(entity)
                or self.destroy_timer(entity)
            )
        self._entities = []
        self.policy = self.core = self.assembler = self.monitor = None
        self._last_result = None

    # -- parameters -------------------------------------------------------------------------------------
    def _read_parameters(self) -> ControllerConfig:
        values = {}
        for spec in PARAMETERS:
            try:
                self.declare_parameter(spec.name, spec.default, _descriptor(spec))
            except Exception as err:  # rclpy's parameter exceptions differ between distributions
                raise VandError(
                    f"parameter '{spec.name}': {err} (expected a {type(spec.default).__name__}, "
                    f"e.g. {spec.default!r})"
                ) from None
            values[spec.name] = self.get_parameter(spec.name).value
        return ControllerConfig.from_values(values)

    # -- inputs -----------------------------------------------------------------------------------------
    def _now_ns(self) -> int:
        return int(self.get_clock().now().nanoseconds)

    def _on_joints(self, msg: JointState) -> None:
        if self.assembler is not None:
            self.assembler.on_joint_state(msg, self._now_ns())

    def _on_odom(self, msg: Odometry) -> None:
        if self.assembler is not None:
            self.assembler.on_odometry(msg, self._now_ns())

    def _on_features(self, msg: Float32MultiArray) -> None:
        if self.assembler is not None:
            self.assembler.on_features(msg, self._now_ns())

    def _on_instruction(self, msg: String) -> None:
        if self.assembler is None:
            return
        rejection = self.assembler.on_instruction(msg, self._now_ns())
        if rejection is not None:
            self.get_logger().error(f"{rejection}; {rejection.hint}")

    # -- services ---------------------------------------------------------------------------------------
    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.core is None:
            response.success = False
            response.message = f"nothing to reset: the controller is {self.lifecycle_state}"
            return response
        self.core.request_reset("reset service")
        response.success = True
        response.message = "recurrent state will be reset on the next tick"
        return response

    # -- the control tick -------------------------------------------------------------------------------
    def _on_tick(self) -> None:
        try:
            self._tick()
        except Exception as err:  # a bug or a broken model: never keep commanding on a half-done tick
            self.get_logger().error(f"control tick failed ({type(err).__name__}: {err})")
            self.error = f"control tick failed: {err}"
            self._fail()

    def _fail(self) -> None:
        """An error while active: hold and stop at once, then deactivate and clean up (unconfigured)."""
        try:
            self._disengage()
        finally:
            self.trigger_deactivate()
            self.trigger_cleanup()

    def _tick(self) -> None:
        assert self.core is not None and self.assembler is not None and self.monitor is not None
        t0 = time.monotonic_ns()
        now = self._now_ns()
        if self.cfg.instruction and not self.assembler.instruction.stamps:
            # The instruction parameter stands until a message replaces it, also after the assembler
            # forgot its samples because the clock jumped back (a simulation reset).
            self.assembler.update_instruction(now, self.cfg.instruction)
        result = self.core.tick(now)
        if result.command is not None:
            self._publish(result, now)
        self.monitor.tick(now if self._sim_time else t0, time.monotonic_ns() - t0)
        self._report(result)

    def _publish(self, result: TickResult, now_ns: int) -> None:
        assert result.command is not None
        joints, base = result.command.joints, result.command.base
        if self.cfg.arm_command_type == "joint_trajectory":
            traj = JointTrajectory()
            traj.joint_names = list(self.cfg.joint_names)
            point = JointTrajectoryPoint()
            point.positions = joints.tolist()
            point.time_from_start.nanosec = int(1e9 / self.rate)
            traj.points = [point]
            self.arm_pub.publish(traj)
        else:
            arm = Float64MultiArray()
            arm.data = joints.tolist()
            self.arm_pub.publish(arm)
        twist = Twist()
        twist.linear.x, twist.linear.y, twist.angular.z = (float(v) for v in base)
        if self.cfg.cmd_vel_type == "twist_stamped":
            stamped = TwistStamped()
            stamped.header.stamp.sec, stamped.header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
            stamped.header.frame_id = "base_link"
            stamped.twist = twist
            self.cmd_pub.publish(stamped)
        else:
            self.cmd_pub.publish(twist)

    def _report(self, result: TickResult) -> None:
        """Log state changes once, not every tick."""
        self._last_result = result
        log = self.get_logger()
        if result.reset:
            log.info(f"recurrent state reset: {result.reset}")
        if result.state != self._last_state or result.causes != self._last_causes:
            if result.state == "holding":
                log.warning("holding the arm and stopping the base: " + "; ".join(result.reasons))
            elif result.state == "running" and self._last_state == "holding":
                log.info("inputs good again: resuming the policy")
            self._last_state, self._last_causes = result.state, result.causes
        self._last_reasons = result.reasons

    # -- diagnostics ------------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        now = self._now_ns()
        result = self._last_result if self.lifecycle_state == "active" else None
        status = DiagnosticStatus()
        status.name = f"{self.get_name()}: vand_ros controller"
        if self.policy is None or self.core is None or self.monitor is None or self.assembler is None:
            status.level = DiagnosticStatus.ERROR if self.error else DiagnosticStatus.WARN
            status.message = self.lifecycle_state + (f": {self.error}" if self.error else "")
            status.values = [
                KeyValue(key="state", value=self.lifecycle_state),
                KeyValue(key="model", value=str(self.cfg.model)),
                KeyValue(key="error", value=self.error),
            ]
            self._publish_status(status)
            return
        status.hardware_id = self.policy.identity
        state = result.state if result else self.lifecycle_state
        warn = state in ("holding", "inactive") or bool(self.realtime.warnings)
        status.level = DiagnosticStatus.WARN if warn else DiagnosticStatus.OK
        status.message = state + (": " + "; ".join(result.reasons) if result and result.reasons else "")
        loop = self.monitor.summary()
        c = self.core.counters
        values = {
            "state": state,
            "lifecycle state": self.lifecycle_state,
            "instruction": str(result.instruction if result else None),
            "model": str(self.policy.path),
            "regulariser": self.policy.card.regulariser,
            "execution mode": self.policy.mode,
            "seed": str(self.cfg.seed),
            "control rate [Hz]": f"{self.rate:g}",
            "clock": "sim" if self._sim_time else "steady",
            **self.realtime.as_values(),
            "period error p50 [ms]": f"{loop.period_error_ms['p50']:.3f}",
            "period error p99 [ms]": f"{loop.period_error_ms['p99']:.3f}",
            "period error max [ms]": f"{loop.period_error_ms['max']:.3f}",
            "compute p50 [ms]": f"{loop.compute_ms['p50']:.3f}",
            "compute p99 [ms]": f"{loop.compute_ms['p99']:.3f}",
            "compute max [ms]": f"{loop.compute_ms['max']:.3f}",
            "overruns": str(loop.overruns_total),
            "ticks": str(c.ticks),
            "policy steps": str(c.policy_steps),
            "steps since reset": str(self.policy.steps_since_reset),
            "faults": str(c.faults),
            "hold ticks": str(c.holds),
            "state resets": str(c.resets),
            "clamped position": str(c.clamps["position"]),
            "clamped step": str(c.clamps["step"]),
            "clamped base": str(c.clamps["base"]),
            **self.assembler.diagnostics(now),
        }
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        self._publish_status(status)

    def _publish_status(self, status: DiagnosticStatus) -> None:
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [status]
        self.diag_pub.publish(msg)

    def stop_safely(self) -> None:
        """Hold the arm where it is and stop the base (best effort: nothing without a measured pose)."""
        if self.core is None:
            return
        hold = self.core.safety.hold(self.core.measured_joints())
        if hold is not None:
            self._publish(TickResult(hold, "disabled"), self._now_ns())


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(description=spec.description, read_only=True)  # every one is read at start-up
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(repr(c) for c in spec.choices)
    if spec.low is not None and spec.high is not None and not isinstance(spec.default, list):
        if isinstance(spec.default, int) and not isinstance(spec.default, bool):
            d.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=0)]
        elif isinstance(spec.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=spec.low, to_value=spec.high, step=0.0)]
    return d


def _executor(kind: str) -> Any:
    """rclpy's EventsExecutor where the distribution has it (Jazzy and later; about 2/3 of the CPU of the
    single-threaded one at 50-100 Hz, see `vand-ros bench node`), else the SingleThreadedExecutor (Humble)."""
    if kind == "events":
        try:
            # rclpy re-exports it without `as`, which --strict (no implicit re-export) does not count.
            from rclpy.experimental import EventsExecutor  # type: ignore[attr-defined]
        except ImportError:
            pass
        else:
            return EventsExecutor()
    return SingleThreadedExecutor()


# Set by SIGINT/SIGTERM; the spin loop ends at its next turn (at most one 0.5 s spin later). The handler
# must not raise: a KeyboardInterrupt raised while rclpy converts a received message for a callback comes
# out of spin_once as pybind11's "unable to convert" RuntimeError, which is dropped as a bad message, and
# the node spun on until `vand-ros run` killed it (seen in CI on 2026-12-03), skipping its last commands.
STOP = threading.Event()


def _request_stop(signum: int, frame: Any) -> None:
    STOP.set()


def main(args: list[str] | None = None) -> int:
    # Our own SIGINT/SIGTERM handling: rclpy's would shut the context down first, and the node could no
    # longer send the hold and the zero twist that must be its last commands.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    STOP.clear()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _request_stop)
    node = None
    code = 0
    try:
        node = ControllerNode()
        executor = _executor(node.cfg.executor)
        executor.add_node(node)
        while rclpy.ok() and not STOP.is_set():
            spin_once(executor, 0.5, node.get_logger())
    except VandError as err:
        print(f"controller_node: error: {err}", file=sys.stderr)
        code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            if rclpy.ok():
                node.trigger_shutdown()  # from active: hold the arm, stop the base
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
