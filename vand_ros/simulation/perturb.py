"""Recovery data for imitation learning: perturbed demonstrations whose recorded commands stay correct.

A policy cloned from clean demonstrations only ever saw the demonstrated states. Worse, with a
position-controlled arm the measured joints at tick t are almost exactly the command of tick t - 1
(measured: |q(t+1) - cmd(t)| ~ 0.005-0.01 rad), so the cheapest fit is "copy the joints and add a small
step"; in closed loop that fixed point stalls the arm at the end of a stroke and lets the base creep. Two
perturbations, both applied by the simulation while the scripted demonstrator keeps acting in closed loop,
break that shortcut and show states off the demonstrated path with the demonstrator's correct reaction:

- DART-style noise (Laskey et al., "DART: Noise Injection for Robust Imitation Learning", CoRL 2017): the
  *executed* arm targets and base twist get temporally correlated Gaussian noise (an Ornstein-Uhlenbeck
  process with time constant `tau`, stationary std `dart_arm` [rad] per joint and `dart_base`
  [m/s, m/s, rad/s]); the bag records the clean command as the action.
- pushes: `pushes` times per episode, at uniform random times in [`push_after`, duration - `push_before`],
  the simulation displaces the arm joints by uniform(-push_arm, push_arm) [rad] each (halved until the
  end effector does not end lower: teleporting it down would put it inside the table) and the base by up to
  `push_base` [m] in a random direction and up to `push_yaw` [rad]; nothing is commanded, the demonstrator
  recovers (the closed-loop ones steer back; the time-indexed wipe resumes its stroke).

- command latency (`max_delay` [s], below one control period): every command of the episode reaches the
  robot the same delay after its tick, a whole number of DELAY_STEP drawn per episode from [0, max_delay],
  as transport latency over DDS delays it; the bag records the command at its tick, as the robot's
  recorder does. A policy trained on clean timing only saw joints that answer a command within one tick,
  and its stroke died under 5-20 ms of latency (docs/learnability.md, round 10).

Everything is drawn from `rng(seed, episode, behaviour)`, a stream independent of the episode parameters,
so a perturbed episode has the same task parameters as the clean episode of the same seed and index, and
replays identically. Bags keep their format: only the motion differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vand_ros import robot
from vand_ros.errors import VandError

if TYPE_CHECKING:
    from vand_ros.simulation.physics import Sim

PRESETS: tuple[str, ...] = ("none", "dart", "push", "dart+push")
DELAY_STEP = 1.0 / robot.RATES.joint_states  # [s] the sim's finest event step: delays are whole multiples


@dataclass(frozen=True)
class Perturbation:
    """How a demonstration is disturbed (all zero: a clean demonstration)."""

    dart_arm: float = 0.0  # [rad] stationary std of the executed arm-target noise, per joint
    dart_base: tuple[float, float, float] = (0.0, 0.0, 0.0)  # stationary std of the twist noise
    tau: float = 0.5  # [s] correlation time of the noise
    pushes: int = 0  # per episode
    push_arm: float = 0.25  # [rad] max per joint
    push_base: float = 0.15  # [m] max
    push_yaw: float = 0.25  # [rad] max
    push_after: float = 2.5  # [s] no push before this
    push_before: float = 3.0  # [s] and none this close to the end
    max_delay: float = 0.0  # [s] command latency drawn per episode from [0, max_delay] in DELAY_STEPs

    def __post_init__(self) -> None:
        values = (self.dart_arm, *self.dart_base, self.push_arm, self.push_base, self.push_yaw)
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise VandError(f"perturbation magnitudes must be finite and >= 0, found {self}")
        if not self.tau > 0 or self.pushes < 0:
            raise VandError(f"perturbation: expected tau > 0 and pushes >= 0, found {self}")
        period = 1.0 / robot.RATES.control
        if not (math.isfinite(self.max_delay) and 0 <= self.max_delay < period):
            raise VandError(
                f"command delay {self.max_delay} s: expected 0 <= delay < one control period ({period} s)"
            )

    @property
    def active(self) -> bool:
        return (
            self.dart_arm > 0 or any(v > 0 for v in self.dart_base) or self.pushes > 0 or self.max_delay > 0
        )

    @classmethod
    def preset(
        cls,
        name: str,
        dart_scale: float = 1.0,
        pushes: int = 2,
        dart_base_scale: float | None = None,
        max_delay: float = 0.0,
    ) -> Perturbation:
        """`none`, `dart` (arm 0.05 rad times `dart_scale`, base 0.05 m/s and 0.1 rad/s times
        `dart_base_scale`, which defaults to `dart_scale`), `push` (`pushes` per episode) or `dart+push`;
        any of them with commands up to `max_delay` [s] late."""
        base_scale = dart_scale if dart_base_scale is None else dart_base_scale
        if name not in PRESETS:
            raise VandError(f"unknown perturbation {name!r}; expected one of {', '.join(PRESETS)}")
        dart = "dart" in name
        return cls(
            dart_arm=0.05 * dart_scale if dart else 0.0,
            dart_base=(0.05 * base_scale, 0.05 * base_scale, 0.1 * base_scale) if dart else (0.0, 0.0, 0.0),
            pushes=pushes if "push" in name else 0,
            max_delay=max_delay,
        )


def rng(seed: int, episode: int, behaviour: str) -> np.random.Generator:
    """The perturbation stream of one episode (independent of the episode's parameters)."""
    return np.random.default_rng([seed, episode, robot.BEHAVIOURS.index(behaviour), 7919])


@dataclass(frozen=True)
class Push:
    t: float  # [s]
    arm: np.ndarray  # (6,) [rad]
    base: tuple[float, float, float]  # (dx [m], dy [m], dyaw [rad]), world frame


class Disturber:
    """The per-episode state of a Perturbation: noise processes and the push schedule."""

    def __init__(self, p: Perturbation, duration: float, gen: np.random.Generator) -> None:
        self.p, self.gen = p, gen
        dt = 1.0 / robot.RATES.control
        self.a = math.exp(-dt / p.tau)  # OU decay per control tick
        self.arm_noise = gen.normal(size=len(robot.ARM_JOINTS)) * p.dart_arm  # (6,) stationary start
        self.base_noise = gen.normal(size=3) * np.asarray(p.dart_base)  # (3,)
        lo, hi = p.push_after, duration - p.push_before
        times = np.sort(gen.uniform(lo, hi, size=p.pushes)) if hi > lo else np.zeros(0)
        self.pushes: list[Push] = []
        for t in times:
            heading = gen.uniform(-math.pi, math.pi)
            dist = gen.uniform(0.3, 1.0) * p.push_base
            arm = gen.uniform(-p.push_arm, p.push_arm, size=len(robot.ARM_JOINTS))
            yaw = gen.uniform(-p.push_yaw, p.push_yaw)
            self.pushes.append(Push(float(t), arm, (dist * math.cos(heading), dist * math.sin(heading), yaw)))
        # Drawn last, and only when asked: the streams of the other perturbations stay as they were.
        steps = math.floor(p.max_delay / DELAY_STEP + 1e-9)
        self.delay = float(gen.integers(0, steps + 1)) * DELAY_STEP if steps > 0 else 0.0  # [s]

    def due_pushes(self, t: float) -> list[Push]:
        """Pushes at or before time t [s] not yet returned."""
        out = []
        while self.pushes and self.pushes[0].t <= t + 1e-9:
            out.append(self.pushes.pop(0))
        return out

    def executed(
        self, arm: np.ndarray, twist: tuple[float, float, float]
    ) -> tuple[np.ndarray, tuple[float, float, float]]:
        """Advance the noise by one control tick; the noisy (arm (6,) [rad], twist) to execute."""
        s = math.sqrt(1.0 - self.a * self.a)
        self.arm_noise = self.a * self.arm_noise + s * self.p.dart_arm * self.gen.normal(size=len(arm))
        base_std = np.asarray(self.p.dart_base)  # (3,)
        self.base_noise = self.a * self.base_noise + s * base_std * self.gen.normal(size=3)
        noisy = np.asarray(twist, dtype=np.float64) + self.base_noise
        return arm + self.arm_noise, (float(noisy[0]), float(noisy[1]), float(noisy[2]))


def arm_push(q: np.ndarray, arm: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """A push's joint displacement (6,) [rad] for joints at `q`: `arm`, halved (up to 4 times, then zero)
    until the end effector ends no lower than it was. Teleporting it down would put it inside the table, a
    state no push makes and no policy can leave (the arm stays stuck under the table top). The recovery
    demonstrations and the evaluation's `push` condition both push through this (`apply_push`)."""
    from vand_ros.simulation import kinematics as K

    z0 = float(K.forward(q)[2])
    d = np.asarray(arm, dtype=np.float64)
    for _ in range(5):
        if float(K.forward(q + d)[2]) >= z0 - 0.005:
            return d
        d = 0.5 * d
    return np.zeros_like(d)


def apply_push(sim: Sim, arm: np.ndarray | tuple[float, ...], base: tuple[float, float, float]) -> None:
    """Push the simulated robot: the arm joints by `arm_push(q, arm)`, the base by `base` (dx [m], dy [m],
    dyaw [rad], world frame). Nothing is commanded; the simulation moves the robot."""
    q = sim.joint_positions()
    sim.data.qpos[sim.ids.arm_qpos] = q + arm_push(q, arm)
    sim.displace_base(*base)  # also recomputes the kinematics
