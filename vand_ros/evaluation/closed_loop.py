"""Closed-loop rollouts in one process, without DDS, through exactly the controller node's code path.

The simulation's `Runner` emits its sensor stream (joint states 100 Hz, odometry 50 Hz, camera features
15 Hz, all stamped with sim time) into an `AssemblerSink`, which feeds the node's `ObservationAssembler`
with the values the node's subscription callbacks would parse from those messages. At each control tick
(20 Hz) `ControlCore.tick` (the node's tick logic: enable, hold on stale or bad inputs, recurrent-state
resets, `PolicyRuntime` with the card's execution draws, `SafetyFilter` with the controller's default
limits) decides the command, which is applied to the simulation at once, as the demonstrators' commands
are when demonstrations are recorded. What differs from the node over DDS: no transport latency (unless
`command_delay` asks for it), and the tick happens exactly at the sim-time tick after every message stamped
at or before it.

The "policy" is either an exported ONNX file or `DemonstratorPolicy`, the scripted demonstrator behind
the same core and safety filter (reference runs and tests). A `Trajectory` records the run at the
control rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vand_ros import robot
from vand_ros.controller.core import ControlCore, Policy
from vand_ros.controller.params import ControllerConfig
from vand_ros.controller.safety import BASE_AXES, FilterResult, SafetyFilter
from vand_ros.evaluation.conditions import EVAL_SEED_OFFSET, Scenario, SensorNoise
from vand_ros.runtime.assembler import ObservationAssembler
from vand_ros.runtime.layout import Layout, default_layout
from vand_ros.simulation import demonstrators as D
from vand_ros.simulation import features as F
from vand_ros.simulation.perturb import apply_push
from vand_ros.simulation.physics import NS_PER_S, STEPS_PER_S, Odom, Sim
from vand_ros.simulation.runner import PERIODS, Runner

FloatArray = npt.NDArray[np.float64]


@dataclass
class Trajectory:
    """One closed-loop run at the control rate (N ticks). World frame unless said otherwise."""

    t: FloatArray  # (N,) [s] sim time of the tick
    joints: FloatArray  # (N, 6) [rad] measured arm joints (true, before any sensor noise)
    base: FloatArray  # (N, 3) base pose (x [m], y [m], yaw [rad])
    base_vel: FloatArray  # (N, 3) base twist in the base frame (vx, vy [m/s], wz [rad/s])
    ee: FloatArray  # (N, 3) end-effector centre [m]
    cmd_joints: FloatArray  # (N, 6) [rad] commanded arm targets (NaN where nothing was published)
    cmd_base: FloatArray  # (N, 3) commanded base twist (NaN where nothing was published)
    holding: npt.NDArray[np.bool_]  # (N,) the controller held (stale/bad inputs, non-finite action)
    instruction: npt.NDArray[np.int64]  # (N,) index into robot.BEHAVIOURS of the instruction sent
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.t)

    def save(self, path: str | Path) -> Path:
        """Compressed .npz with the arrays, float32, and the meta as JSON text."""
        import json

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: getattr(self, k) for k in _ARRAYS}
        arrays = {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in arrays.items()}
        np.savez_compressed(path, meta=np.array(json.dumps(self.meta, default=str)), **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Trajectory:
        import json

        with np.load(path) as z:
            arrays = {k: z[k].astype(np.float64) if z[k].dtype == np.float32 else z[k] for k in _ARRAYS}
            meta = json.loads(str(z["meta"]))
        return cls(**arrays, meta=meta)


_ARRAYS = ("t", "joints", "base", "base_vel", "ee", "cmd_joints", "cmd_base", "holding", "instruction")


class AssemblerSink:
    """Runner sink that feeds the node's assembler, as the node's subscription callbacks do.

    Joint states and odometry carry their stamp (= sim time), features their receive time (= sim time),
    the features' layout.dim is the one the simulation publishes. `noise` (the `noise` condition)
    perturbs each message and drops feature messages.
    """

    def __init__(self, assembler: ObservationAssembler, noise: SensorNoise | None = None) -> None:
        self.assembler = assembler
        self.noise = noise
        self.names = list(robot.ARM_JOINT_NAMES)
        self.dims = F.layout_dims()

    def clock(self, ns: int) -> None:
        pass

    def joint_states(self, ns: int, position: np.ndarray, velocity: np.ndarray) -> None:
        q = self.noise.joints(position) if self.noise else position
        self.assembler.update_joints(ns, self.names, q, velocity)

    def odom(self, ns: int, odom: Odom) -> None:
        tw = np.array([odom.vx, odom.vy, 0.0, 0.0, 0.0, odom.wz])
        self.assembler.update_base(ns, self.noise.base(tw) if self.noise else tw)

    def features(self, ns: int, data: np.ndarray) -> None:
        values: np.ndarray | None = data
        if self.noise is not None:
            values = self.noise.features(ns / NS_PER_S, data)
        if values is not None:
            self.assembler.update_features(ns, values, self.dims)

    def instruction(self, ns: int, text: str) -> None:
        self.assembler.update_instruction(ns, text)

    def arm_command(self, ns: int, targets: np.ndarray) -> None:
        pass

    def cmd_vel(self, ns: int, twist: tuple[float, float, float]) -> None:
        pass


class DemonstratorPolicy:
    """The scripted demonstrator behind the controller's `Policy` interface (reference runs, tests).

    It reads the instruction and joints from the observation vector like a policy, and, being a script,
    the base pose and sim time from the simulation (privileged). When the instruction changes it starts
    a new demonstrator episode of the new behaviour from where the robot stands, with the parameters of
    episode 0 of `episode_seed` (the same as a clean run of that behaviour with the same scenario seed).
    """

    def __init__(self, sim: Sim, layout: Layout, first: D.Demonstrator, episode_seed: int = 0) -> None:
        self.sim, self.layout = sim, layout
        self.demo: D.Demonstrator = first
        self.memory = D.Memory()
        self.episode_seed = episode_seed
        self._sl = layout.obs_slices
        self._t0: float | None = None
        self._word: str | None = first.behaviour

    def reset(self) -> None:
        if self._t0 is None:
            self._t0 = self.sim.time_ns / NS_PER_S

    def step(self, obs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        now = self.sim.time_ns / NS_PER_S
        word = self.layout.vocabulary[int(np.argmax(obs[self._sl["instruction"]]))]
        joints = np.asarray(obs[self._sl["joints"]], dtype=np.float64)
        odom = self.sim.odom()
        if word != self._word:
            fresh = D.make(word, D.episode_rng(self.episode_seed, 0, word))
            self.demo = D.restarted(fresh, odom, joints)
            self.memory, self._t0, self._word = D.Memory(), now, word
        t0 = now if self._t0 is None else self._t0
        cmd, self.memory = self.demo.act(D.Observation(now - t0, joints, odom), self.memory)
        action = np.zeros(self.layout.act_dim, dtype=np.float32)  # (A,)
        act = self.layout.act_slices
        action[act["joints"]] = cmd.arm
        action[act["base"]] = cmd.twist
        return action


@dataclass
class Controller:
    """A policy wired into the node's tick logic."""

    core: ControlCore
    assembler: ObservationAssembler
    policy: Policy
    description: str
    mode: str


def build_controller(
    sim: Sim, scenario: Scenario, model: str | Path | None, mode: str | None = None, seed: int = 0
) -> Controller:
    """The node's objects for `model` (None: the scripted demonstrator), default controller parameters."""
    from vand_ros.runtime.policy import PolicyRuntime

    cfg = ControllerConfig.from_values({"model": str(model) if model is not None else "demonstrator"})
    policy: Policy
    if model is not None:
        runtime = PolicyRuntime(model, mode=mode or None, seed=seed)
        runtime.check_matches(
            joint_names=cfg.joint_names,
            vocabulary_words=[w for _, w in scenario.instructions],
            base_axes=BASE_AXES,
        )
        layout, rate, used_mode = runtime.layout, runtime.card.control_rate, runtime.mode
        description, policy = runtime.identity, runtime
    else:
        layout, rate, used_mode = default_layout(), robot.RATES.control, "script"
        policy = DemonstratorPolicy(sim, layout, scenario.demonstrator, EVAL_SEED_OFFSET + scenario.seed)
        description = "scripted demonstrator"
    if abs(rate - robot.RATES.control) > 1e-9:
        raise ValueError(
            f"the model runs at {rate} Hz; the simulation's control ticks are {robot.RATES.control} Hz"
        )
    assembler = ObservationAssembler(cfg.assembler_config(layout))
    core = ControlCore(
        policy,
        assembler,
        SafetyFilter(cfg.limits, rate, cfg.blend_time),
        layout,
        reset_on_instruction_change=cfg.reset_on_instruction_change,
        fault_reset_time=cfg.fault_reset_time,
    )
    return Controller(core, assembler, policy, description, used_mode)


def run_closed_loop(
    scenario: Scenario,
    duration: float,
    model: str | Path | None = None,
    mode: str | None = None,
    seed: int = 0,
    sim: Sim | None = None,
    on_step: Callable[[Sim], None] | None = None,
    command_delay: float | None = None,
) -> Trajectory:
    """Run `model` (an ONNX file; None = the scripted demonstrator) for `duration` [s] of sim time.

    `mode`: execution mode (None = the card's default); `seed`: seed of the execution draws. The
    scenario sets the start state, the instructions over time, pushes and sensor noise. `on_step(sim)` is
    called before every physics step (e.g. simulation.render.VideoRecorder.capture). `command_delay` [s]
    applies each command that much sim time after its tick (rounded to physics steps, below one control
    period), as transport latency over DDS does; 0 applies it at the tick, None as the scenario says.
    """
    if command_delay is None:
        command_delay = scenario.command_delay
    delay_steps = round(command_delay * STEPS_PER_S)
    if not 0 <= delay_steps < PERIODS.control:
        raise ValueError(f"command_delay {command_delay} s: expected 0 <= delay < one control period")
    wall0 = time.perf_counter()
    sim = sim or Sim()
    sim.reset(scenario.start_base, scenario.start_arm)
    ctl = build_controller(sim, scenario, model, mode, seed)
    noise = SensorNoise(scenario.seed) if scenario.noise else None
    runner = Runner(sim, AssemblerSink(ctl.assembler, noise))
    control = PERIODS.control
    n = math.floor(duration * robot.RATES.control + 1e-9)
    rows = _Rows(n)
    instr = list(scenario.instructions)
    pushes = list(scenario.pushes)
    vocab = robot.BEHAVIOURS
    current = instr[0][1]
    ctl.core.enable()  # autostart, as `vand-ros run` with the sim
    end = n * control
    pending: tuple[int, FilterResult] | None = None  # (physics step to apply it at, command)
    while sim.steps < end:
        k = sim.steps
        if pending is not None and k >= pending[0]:
            _apply(sim, pending[1])
            pending = None
        if k % control == 0:
            t = sim.time_ns / NS_PER_S
            while pushes and pushes[0].t <= t + 1e-9:
                push = pushes.pop(0)
                apply_push(sim, push.arm, push.base)  # the arm never into the table
            runner.emit()
            ns = sim.time_ns
            while instr and instr[0][0] <= t + 1e-9:
                current = instr.pop(0)[1]
                ctl.assembler.update_instruction(ns, current)  # as a ~/instruction message at this tick
            result = ctl.core.tick(ns)
            if result.command is not None:
                if delay_steps:
                    pending = (k + delay_steps, result.command)
                else:
                    _apply(sim, result.command)
            rows.add(sim, result.command, result.state == "holding", vocab.index(current))
        elif runner.due(k):
            runner.emit()
        if on_step is not None:
            on_step(sim)
        runner.advance()
    traj = rows.trajectory()
    traj.meta = {
        "behaviour": scenario.behaviour,
        "condition": scenario.condition,
        "policy": ctl.description,
        "mode": ctl.mode,
        "seed": seed,
        "scenario_seed": scenario.seed,
        "duration": duration,
        "command_delay": delay_steps / STEPS_PER_S,
        "measure_from": scenario.measure_from,
        "instructions": [list(x) for x in scenario.instructions],
        "pushes": [p.t for p in scenario.pushes],
        "start_base": list(scenario.start_base),
        "start_arm": [float(v) for v in scenario.start_arm],
        "holds": int(ctl.core.counters.holds),
        "resets": int(ctl.core.counters.resets),
        "dropped_features": noise.dropped if noise else 0,
        "wall_s": time.perf_counter() - wall0,
    }
    return traj


def _apply(sim: Sim, command: FilterResult) -> None:
    sim.set_arm_targets(command.joints)
    sim.set_base_twist(*(float(v) for v in command.base))


class _Rows:
    """Preallocated per-tick records."""

    def __init__(self, n: int) -> None:
        self.i = 0
        self.t = np.zeros(n)
        self.joints = np.zeros((n, 6))
        self.base = np.zeros((n, 3))
        self.base_vel = np.zeros((n, 3))
        self.ee = np.zeros((n, 3))
        self.cmd_joints = np.full((n, 6), np.nan)
        self.cmd_base = np.full((n, 3), np.nan)
        self.holding = np.zeros(n, dtype=bool)
        self.instruction = np.zeros(n, dtype=np.int64)

    def add(self, sim: Sim, command: Any, holding: bool, instruction: int) -> None:
        i = self.i
        o = sim.odom()
        self.t[i] = sim.time_ns / NS_PER_S
        self.joints[i] = sim.joint_positions()
        self.base[i] = (o.x, o.y, o.yaw)
        self.base_vel[i] = (o.vx, o.vy, o.wz)
        self.ee[i] = sim.ee_position()
        if command is not None:
            self.cmd_joints[i] = command.joints
            self.cmd_base[i] = command.base
        self.holding[i] = holding
        self.instruction[i] = instruction
        self.i += 1

    def trajectory(self) -> Trajectory:
        n = self.i
        return Trajectory(
            self.t[:n],
            self.joints[:n],
            self.base[:n],
            self.base_vel[:n],
            self.ee[:n],
            self.cmd_joints[:n],
            self.cmd_base[:n],
            self.holding[:n],
            self.instruction[:n],
        )


def trajectory_from_bag(path: str | Path, rate: float = robot.RATES.control) -> Trajectory:
    """A demonstration bag resampled onto the control grid (latest sample at or before each tick).

    The end effector comes from the arm's closed-form kinematics and the odometry pose (the bag has no
    ground truth); commands are the recorded /arm_controller/commands and /cmd_vel.
    """
    from rosbags.highlevel import AnyReader

    from vand_ros.simulation import kinematics as K

    topics = robot.TOPICS
    streams: dict[str, list[tuple[int, Any]]] = {}
    with AnyReader([Path(path)]) as reader:
        wanted = {topics.joint_states, topics.odom, topics.instruction, topics.arm_command, topics.cmd_vel}
        conns = [c for c in reader.connections if c.topic in wanted]
        for conn, t, raw in reader.messages(connections=conns):
            msg: Any = reader.deserialize(raw, conn.msgtype)
            if conn.topic == topics.joint_states:
                order = [list(msg.name).index(n) for n in robot.ARM_JOINT_NAMES]
                value: Any = np.asarray(msg.position, dtype=np.float64)[order]
            elif conn.topic == topics.odom:
                p, q, tw = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist
                yaw = 2 * math.atan2(q.z, q.w)
                value = np.array([p.x, p.y, yaw, tw.linear.x, tw.linear.y, tw.angular.z])
            elif conn.topic == topics.instruction:
                value = str(msg.data)
            elif conn.topic == topics.arm_command:
                value = np.asarray(msg.data, dtype=np.float64)
            else:
                value = np.array([msg.linear.x, msg.linear.y, msg.angular.z])
            streams.setdefault(conn.topic, []).append((t, value))
    js, od = streams.get(topics.joint_states, []), streams.get(topics.odom, [])
    if not js or not od:
        from vand_ros.errors import VandError

        raise VandError(f"{path}: expected {topics.joint_states} and {topics.odom} messages, found none")
    t0 = max(js[0][0], od[0][0])
    t1 = min(js[-1][0], od[-1][0])
    period = round(NS_PER_S / rate)
    ticks = np.arange(t0 - t0 % period + (period if t0 % period else 0), t1 + 1, period)

    def at(stream: list[tuple[int, Any]], fill: Any) -> list[Any]:
        stamps = np.array([s for s, _ in stream], dtype=np.int64) if stream else np.zeros(0, np.int64)
        idx = np.searchsorted(stamps, ticks, side="right") - 1
        return [stream[i][1] if i >= 0 else fill for i in idx]

    q = np.array(at(js, None))
    o = np.array(at(od, None))
    words = at(streams.get(topics.instruction, []), "")
    instruction = np.array([robot.BEHAVIOURS.index(w) if w in robot.BEHAVIOURS else -1 for w in words])
    cmd_j = np.array(at(streams.get(topics.arm_command, []), np.full(6, np.nan)))
    cmd_b = np.array(at(streams.get(topics.cmd_vel, []), np.full(3, np.nan)))
    ee = np.array([K.base_to_world(K.forward(qq), *oo[:3]) for qq, oo in zip(q, o, strict=True)])
    known = instruction[instruction >= 0]
    behaviour = robot.BEHAVIOURS[int(known[0])] if len(known) else ""
    return Trajectory(
        (ticks - ticks[0]) / NS_PER_S,
        q,
        o[:, :3],
        o[:, 3:],
        ee,
        cmd_j,
        cmd_b,
        np.zeros(len(ticks), dtype=bool),
        np.where(instruction >= 0, instruction, robot.BEHAVIOURS.index(behaviour) if behaviour else 0),
        {"behaviour": behaviour, "source": str(path), "measure_from": 0.0, "pushes": []},
    )


def steps_per_tick() -> int:
    """Physics steps per control tick (for callers that budget sim time)."""
    return STEPS_PER_S // round(robot.RATES.control)
