"""The sim's event loop, shared by the ROS node and the in-process bag writer, so both emit the same stream.

Time advances in physics steps of 1/600 s. Every output has a period that is a whole number of steps:
joint states every 6 (100 Hz), odometry every 12 (50 Hz), control ticks every 30 (20 Hz), camera
features every 40 (15 Hz), the instruction every 600 (1 Hz, starting at t = 0). At each step where
anything is due, the sink sees, in this order: clock, joint states, odometry, features, then (on control
ticks with a demonstrator) instruction, arm command and cmd_vel, all stamped with the same sim time.

With a `perturb.Disturber` (recovery data, `vand-ros demos --perturb`), on control ticks the due pushes
displace the robot before anything is measured, and the demonstrator's command is executed with noise
added while the sink still gets the clean command (the label).

With a `demonstrators.Switch` (`vand-ros demos --switch`), at the first control tick at or after its time
the demonstrator is replaced by the switch's, started from the measured pose and joints with its clock at
zero, and the new instruction goes out at that tick (then at 1 Hz again).

A disturber with a command delay (`--max-delay`) executes each command at the event step that delay after
its tick (DELAY_STEP is one event step); the sink gets it at the tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vand_ros import robot
from vand_ros.simulation import demonstrators as D
from vand_ros.simulation.perturb import Disturber, apply_push
from vand_ros.simulation.physics import STEPS_PER_S, Odom, Sim


def _every(rate: float) -> int:
    steps = STEPS_PER_S / rate
    if abs(steps - round(steps)) > 1e-9:
        raise ValueError(f"rate {rate} Hz is not a whole number of {STEPS_PER_S} Hz physics steps")
    return round(steps)


@dataclass(frozen=True)
class Periods:
    """Output periods in physics steps."""

    joint_states: int = _every(robot.RATES.joint_states)
    odom: int = _every(robot.RATES.odom)
    features: int = _every(robot.RATES.features)
    control: int = _every(robot.RATES.control)
    instruction: int = STEPS_PER_S

    def event_steps(self) -> int:
        """Gap [steps] to the next step where anything is due is at most this (the gcd of the periods)."""
        return int(np.gcd.reduce([self.joint_states, self.odom, self.features, self.control]))


PERIODS = Periods()


class Sink(Protocol):
    """Where the sim's messages go: rclpy publishers, or a bag written in-process."""

    def clock(self, ns: int) -> None: ...
    def joint_states(self, ns: int, position: np.ndarray, velocity: np.ndarray) -> None: ...
    def odom(self, ns: int, odom: Odom) -> None: ...
    def features(self, ns: int, data: np.ndarray) -> None: ...
    def instruction(self, ns: int, text: str) -> None: ...
    def arm_command(self, ns: int, targets: np.ndarray) -> None: ...
    def cmd_vel(self, ns: int, twist: tuple[float, float, float]) -> None: ...


class Runner:
    """Steps a Sim from event to event, emits what is due to a sink, drives an optional demonstrator."""

    def __init__(
        self,
        sim: Sim,
        sink: Sink,
        demonstrator: D.Demonstrator | None = None,
        disturber: Disturber | None = None,
        switch: D.Switch | None = None,
    ) -> None:
        self.sim, self.sink, self.demo = sim, sink, demonstrator
        self.disturber = disturber
        self.switch = switch if demonstrator is not None else None
        self.memory = D.Memory()
        self.t0 = 0.0  # [s] sim time at which the acting demonstrator's episode began
        self.p = PERIODS
        self.delay_steps = round(disturber.delay * STEPS_PER_S) if disturber is not None else 0
        if self.delay_steps % self.p.event_steps() or self.delay_steps >= self.p.control:
            raise ValueError(
                f"command delay of {self.delay_steps} physics steps: expected a multiple of "
                f"{self.p.event_steps()} below one control period ({self.p.control})"
            )
        self.pending: list[tuple[int, np.ndarray, tuple[float, float, float]]] = []  # (step, arm, twist)

    def start(self) -> None:
        """Reset the sim to the demonstrator's start state (if any) at t = 0."""
        if self.demo is not None:
            self.sim.reset(self.demo.start_base, self.demo.start_arm)
        self.memory, self.t0, self.pending = D.Memory(), 0.0, []

    def due(self, k: int) -> bool:
        p = self.p
        return k % p.joint_states == 0 or k % p.odom == 0 or k % p.features == 0 or k % p.control == 0

    def emit(self) -> None:
        """Emit everything due at the current step (call once per event step)."""
        sim, sink, p, k = self.sim, self.sink, self.p, self.sim.steps
        while self.pending and self.pending[0][0] <= k:
            self._execute(*self.pending.pop(0)[1:])
        if not self.due(k):
            return
        ns = sim.time_ns
        if self.disturber is not None and self.demo is not None and k % p.control == 0:
            for push in self.disturber.due_pushes(ns / 1e9):
                apply_push(sim, push.arm, push.base)
        sink.clock(ns)
        # Stamped messages start after t = 0: ROS reads a zero header stamp as "unset", and a consumer that
        # falls back to its receive time for it would see the next stamp go backwards.
        if k % p.joint_states == 0 and ns > 0:
            sink.joint_states(ns, sim.joint_positions(), sim.joint_velocities())
        if k % p.odom == 0 and ns > 0:
            sink.odom(ns, sim.odom())
        if k % p.features == 0:
            sink.features(ns, sim.features())
        if self.demo is not None and k % p.control == 0:
            switched = False
            if self.switch is not None and ns / 1e9 >= self.switch.at - 1e-9:
                self.demo = D.restarted(self.switch.then, sim.odom(), sim.joint_positions())
                self.memory, self.t0, self.switch, switched = D.Memory(), ns / 1e9, None, True
            if k % p.instruction == 0 or switched:
                sink.instruction(ns, self.demo.behaviour)
            obs = D.Observation(ns / 1e9 - self.t0, sim.joint_positions(), sim.odom())
            cmd, self.memory = self.demo.act(obs, self.memory)
            clean = sim.clamp_arm(cmd.arm)  # as executed without noise
            arm, twist = clean, cmd.twist
            if self.disturber is not None:
                arm, twist = self.disturber.executed(clean, cmd.twist)
            if self.delay_steps:
                self.pending.append((k + self.delay_steps, arm, twist))
            else:
                self._execute(arm, twist)
            sink.arm_command(ns, clean)
            sink.cmd_vel(ns, cmd.twist)

    def _execute(self, arm: np.ndarray, twist: tuple[float, float, float]) -> None:
        self.sim.set_arm_targets(arm)
        self.sim.set_base_twist(*twist)

    def advance(self) -> None:
        """Step the physics to the next event step."""
        k = self.sim.steps
        nxt = min(
            (k // per + 1) * per
            for per in (self.p.joint_states, self.p.odom, self.p.features, self.p.control)
        )
        self.sim.step(nxt - k)

    def run(self, duration: float) -> None:
        """Emit and step until `duration` [s]: outputs at every due step with t < duration."""
        end = round(duration * STEPS_PER_S)
        while self.sim.steps < end:
            self.emit()
            self.advance()
