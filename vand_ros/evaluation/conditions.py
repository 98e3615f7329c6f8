"""Test conditions for closed-loop runs: how a run starts and what happens to it on the way.

Each condition is deterministic given (behaviour, seed): the start state, push times and directions,
sensor noise and dropped messages all come from generators seeded from them. The conditions, as
VAND.md's "The claim to test" asks, each reported on its own:

- clean      start state drawn like a demonstration's (the behaviour's `BehaviourSpec` ranges, with a
             seed stream the demonstration bags do not use: `EVAL_SEED_OFFSET`).
- perturbed  start outside the demonstrated range: every arm joint home +- 0.25..0.40 rad (demonstrated
             +- ARM_START_RANGE, 0.15), and each base coordinate 10..50 % of its demonstrated range's
             width beyond the range (`BehaviourSpec.start_base`), on a random side.
- push       the base is displaced by 0.15 m in a random direction and turned by +-0.2 rad, and the arm
             joints are displaced by +-0.2 rad, at 30 % and 60 % of the run (the simulation moves the
             robot; nothing is commanded). Sequential behaviours get one more push at 6 s, mid-task. An
             arm displacement that would lower the end effector is halved until it does not, as in the
             recovery demonstrations (`simulation.perturb.arm_push`): before round 16 such pushes put
             the wiping end effector inside the table, where it stayed stuck whatever the policy did.
- noise      Gaussian noise on every sensor message (joints 0.01 rad, base velocity 0.02, visible
             feature coordinates 0.02 m), 10 % of feature messages dropped at random, and every 20 s
             a burst of 6 consecutive dropped feature messages (0.4 s > the controller's 0.3 s max
             age: the controller holds for a moment and must resume).
- switch     the run starts with another instruction and switches, 20 % into the run (at least 5 s),
             to the measured behaviour; metrics count from the switch. The first instruction is the
             behaviour's `BehaviourSpec.switch_from` (visit_cba -> visit_abc, visit_abc -> visit_cba,
             visit_abc -> patrol from standing after the visits); not defined for wipe (the spec says why).
- latency    a clean start, but every command reaches the simulated robot LATENCY (10 ms) after its tick,
             as over DDS, where the in-process loop of the other conditions applies it at the tick (a
             policy whose wipe passed in-process failed over DDS: docs/learnability.md, round 10). Not one
             of the comparison's five (`COMPARISON_CONDITIONS`); ask for it by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vand_ros import robot
from vand_ros.errors import VandError
from vand_ros.simulation import demonstrators as D
from vand_ros.simulation.behaviours import spec

CONDITIONS: tuple[str, ...] = ("clean", "perturbed", "push", "noise", "switch", "latency")
COMPARISON_CONDITIONS: tuple[str, ...] = CONDITIONS[:5]  # what `vand-ros evaluate` runs by default
LATENCY = 0.010  # [s] command delay of the latency condition
EVAL_SEED_OFFSET = 100_000  # evaluation starts use seeds the demonstration bags (seed < 1e5) do not

PERTURBED_ARM = (0.25, 0.40)  # [rad] perturbed: home +- this per joint
PERTURBED_BASE = (0.1, 0.5)  # beyond the range, in units of the range's width

SWITCH_FRACTION = 0.2
SWITCH_MIN = 5.0  # [s]

PUSH_FRACTIONS = (0.3, 0.6)
PUSH_EARLY_SEQUENTIAL = 6.0  # [s]
PUSH_BASE = 0.15  # [m]
PUSH_YAW = 0.2  # [rad]
PUSH_ARM = 0.2  # [rad]

NOISE_JOINTS = 0.01  # [rad]
NOISE_BASE = 0.02  # [m/s], [rad/s]
NOISE_FEATURES = 0.02  # [m]
DROP_PROB = 0.1
BURST_EVERY = 20.0  # [s]
BURST_LENGTH = 6  # feature messages


@dataclass(frozen=True)
class Push:
    """The simulation displaces the robot at time t: base (dx, dy [m], dyaw [rad]) and arm (6,) [rad]."""

    t: float  # [s]
    base: tuple[float, float, float]
    arm: tuple[float, ...]


@dataclass(frozen=True)
class Scenario:
    """Everything a closed-loop run needs to know about its condition, drawn from a seed."""

    condition: str
    behaviour: str  # the measured behaviour (the instruction in force after any switch)
    demonstrator: D.Demonstrator  # episode parameters of the start instruction (start state included)
    start_base: tuple[float, float, float]
    start_arm: np.ndarray  # (6,) [rad]
    instructions: tuple[tuple[float, str], ...]  # (time [s], word), first at 0
    pushes: tuple[Push, ...] = ()
    noise: bool = False
    seed: int = 0
    notes: dict[str, object] = field(default_factory=dict)
    command_delay: float = 0.0  # [s] from a tick to its command reaching the robot (transport latency)

    @property
    def measure_from(self) -> float:
        """[s] metrics count from here: the last instruction change."""
        return self.instructions[-1][0]


def applies(condition: str, behaviour: str) -> bool:
    """Whether `condition` is defined for `behaviour` (only `switch` is not defined for every one)."""
    return condition != "switch" or bool(spec(behaviour).switch_from)


def _outside(rng: np.random.Generator, lo: float, hi: float) -> float:
    width = hi - lo
    beyond = rng.uniform(*PERTURBED_BASE) * width
    return lo - beyond if rng.random() < 0.5 else hi + beyond


def scenario(condition: str, behaviour: str, seed: int, duration: float) -> Scenario:
    """The scenario of one run of `behaviour` under `condition`, `duration` [s] long, from `seed`."""
    if condition not in CONDITIONS:
        raise VandError(f"unknown condition {condition!r}; expected one of {list(CONDITIONS)}")
    if behaviour not in robot.BEHAVIOURS:
        raise VandError(f"unknown behaviour {behaviour!r}; expected one of {list(robot.BEHAVIOURS)}")
    if not applies(condition, behaviour):
        raise VandError(
            f"condition {condition!r} is not defined for {behaviour!r} (see BehaviourSpec.switch_from)"
        )
    eval_seed = EVAL_SEED_OFFSET + seed
    first = spec(behaviour).switch_from if condition == "switch" else behaviour
    demo = D.make(first, D.episode_rng(eval_seed, 0, first))
    rng = np.random.default_rng([eval_seed, CONDITIONS.index(condition), robot.BEHAVIOURS.index(behaviour)])
    base = tuple(float(v) for v in demo.start_base)
    arm = np.asarray(demo.start_arm, dtype=np.float64).copy()
    instructions: tuple[tuple[float, str], ...] = ((0.0, first),)
    pushes: tuple[Push, ...] = ()
    notes: dict[str, object] = {}
    if condition == "perturbed":
        base = tuple(_outside(rng, lo, hi) for lo, hi in spec(behaviour).start_base)
        sign = rng.choice([-1.0, 1.0], size=arm.shape)
        arm = D.HOME + sign * rng.uniform(*PERTURBED_ARM, size=arm.shape)
        lower = np.array([j.lower for j in robot.ARM_JOINTS])
        upper = np.array([j.upper for j in robot.ARM_JOINTS])
        arm = np.clip(arm, lower, upper)
        notes["start"] = "outside the demonstrated range"
    elif condition == "push":
        times = [f * duration for f in PUSH_FRACTIONS]
        if not spec(behaviour).periodic and duration > 2 * PUSH_EARLY_SEQUENTIAL:
            times = [PUSH_EARLY_SEQUENTIAL, *times]
        out = []
        for t in times:
            angle = rng.uniform(0, 2 * math.pi)
            dyaw = float(rng.choice([-1.0, 1.0])) * PUSH_YAW
            darm = rng.choice([-1.0, 1.0], size=arm.shape) * PUSH_ARM
            out.append(
                Push(
                    round(t * robot.RATES.control) / robot.RATES.control,
                    (PUSH_BASE * math.cos(angle), PUSH_BASE * math.sin(angle), dyaw),
                    tuple(float(v) for v in darm),
                )
            )
        pushes = tuple(out)
    elif condition == "switch":
        t_switch = max(SWITCH_MIN, SWITCH_FRACTION * duration)
        t_switch = round(t_switch * robot.RATES.control) / robot.RATES.control
        instructions = ((0.0, first), (t_switch, behaviour))
    return Scenario(
        condition,
        behaviour,
        demo,
        (base[0], base[1], base[2]),
        arm,
        instructions,
        pushes,
        noise=condition == "noise",
        seed=seed,
        notes=notes,
        command_delay=LATENCY if condition == "latency" else 0.0,
    )


class SensorNoise:
    """Noise on sensor messages and dropped feature messages, seeded (the `noise` condition)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng([EVAL_SEED_OFFSET + seed, 7])
        self.burst_left = 0
        self.next_burst = BURST_EVERY  # [s]
        self.dropped = 0

    def joints(self, q: np.ndarray) -> np.ndarray:
        return q + self.rng.normal(0.0, NOISE_JOINTS, size=q.shape)

    def base(self, twist: np.ndarray) -> np.ndarray:
        return twist + self.rng.normal(0.0, NOISE_BASE, size=twist.shape)

    def features(self, t: float, data: np.ndarray) -> np.ndarray | None:
        """Noisy features, or None when this message is dropped."""
        if t >= self.next_burst:
            self.next_burst += BURST_EVERY
            self.burst_left = BURST_LENGTH
        if self.burst_left > 0:
            self.burst_left -= 1
            self.dropped += 1
            return None
        if self.rng.random() < DROP_PROB:
            self.dropped += 1
            return None
        out = data.astype(np.float32).reshape(-1, 4).copy()  # (E, 4)
        seen = out[:, 3] > 0.5
        out[seen, :3] += self.rng.normal(0.0, NOISE_FEATURES, size=(int(seen.sum()), 3)).astype(np.float32)
        flat: np.ndarray = out.reshape(-1)
        return flat
