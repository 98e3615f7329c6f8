"""What the policy's raw output means: the action representation, named once, on the card and in training.

The node always receives absolute commands: the ONNX graph decodes the representation inside itself, so the
controller, the safety filter and the evaluation never see it. Two things are named here:

    representation  "absolute"  the head predicts the arm joint position targets [rad] themselves
                    "relative"  the head predicts target - measured joint position [rad] (the measured
                                joints of the same tick, the raw observation's joint slice); the graph
                                adds the measured joints back. The base command is a velocity either way.
    chunk           K >= 1: the head predicts the commands of this tick and the next K - 1 ticks (all
                    relative to this tick's measurement when relative). Training fits all K (an auxiliary
                    task that makes the state carry where the motion is going, not only where it is).
    execution       "first"     send the first command of the newest chunk
                    "ensemble"  temporal ensembling (Zhao et al. 2023, ACT): the command for this tick is
                                the weighted mean of every chunk's prediction for this tick, weight
                                exp(-ensemble_decay * age [ticks]) (newer predictions weigh more, unlike
                                ACT's default; decay 0 = uniform). The running sums live in an extra
                                state pair of the graph, `chunk` -> `chunk_out`, shape (1, K, A + 1).
    base_deadband   a linear base command axis (vx, vy) whose magnitude is below this [m/s] is sent as
                    exactly zero; `base_deadband_angular` [rad/s] does the same for angular axes (names
                    starting with "w": wz). Demonstrations command zero or clearly moving velocities; a
                    regression network leaves a residue where they command zero, which integrates into a
                    parked base creeping away (measured: 0.35 m over 220 s of wiping) or turning round
                    (0.03 rad/s). The linear band stays small: a larger one (0.05 m/s) swallowed the first
                    commands of a visit from standstill and the base never started (seen over DDS).

Why this exists: with 20 Hz absolute joint targets the commanded target is the measured joint plus about
one tick of motion, and a network trained on that learns to copy its measured joints (docs/results.md,
"copycat"); the stroke then dies out in closed loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from vand_ros.errors import VandError

REPRESENTATIONS: tuple[str, ...] = ("absolute", "relative")
EXECUTIONS: tuple[str, ...] = ("first", "ensemble")
ENSEMBLE_STATE = ("chunk", "chunk_out")  # the graph's state pair for temporal ensembling


@dataclass(frozen=True)
class ActionSpec:
    """How the policy's output is parameterised (module docstring). Validated on construction."""

    representation: str = "absolute"
    chunk: int = 1  # K: commands predicted per tick (this tick and the next K - 1)
    execution: str = "first"
    ensemble_decay: float = 0.0  # [1/tick] weight exp(-decay * age) in temporal ensembling
    base_deadband: float = 0.0  # [m/s] linear base commands smaller than this become exactly zero
    base_deadband_angular: float = 0.0  # [rad/s] the same for angular base commands

    def __post_init__(self) -> None:
        problems = []
        if self.representation not in REPRESENTATIONS:
            problems.append(
                f"representation {self.representation!r} (expected one of {list(REPRESENTATIONS)})"
            )
        if not isinstance(self.chunk, int) or self.chunk < 1:
            problems.append(f"chunk {self.chunk!r} (expected an integer >= 1)")
        if self.execution not in EXECUTIONS:
            problems.append(f"execution {self.execution!r} (expected one of {list(EXECUTIONS)})")
        if not (math.isfinite(self.ensemble_decay) and self.ensemble_decay >= 0):
            problems.append(f"ensemble_decay {self.ensemble_decay!r} (expected a finite number >= 0)")
        for name in ("base_deadband", "base_deadband_angular"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                problems.append(f"{name} {value!r} (expected a finite number >= 0)")
        if problems:
            raise VandError("action representation: bad " + "; bad ".join(problems))

    @property
    def ensembles(self) -> bool:
        """Whether the graph carries temporal-ensembling sums as state (a chunk of 1 has nothing to mix)."""
        return self.execution == "ensemble" and self.chunk > 1

    @property
    def has_deadband(self) -> bool:
        return self.base_deadband > 0 or self.base_deadband_angular > 0

    def deadband(self, base_axes: Sequence[str]) -> list[float]:
        """Per base axis threshold: angular for axes named w* (wz), linear otherwise."""
        return [self.base_deadband_angular if a.startswith("w") else self.base_deadband for a in base_axes]

    @property
    def label(self) -> str:
        """Short form for logs: 'absolute', 'relative x10 ensemble'."""
        if self.chunk == 1:
            return self.representation
        return f"{self.representation} x{self.chunk} {self.execution}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActionSpec:
        known = {
            "representation",
            "chunk",
            "execution",
            "ensemble_decay",
            "base_deadband",
            "base_deadband_angular",
        }
        unknown = sorted(set(d) - known)
        if unknown:
            raise VandError(f"action representation: unknown fields {unknown}; expected only {sorted(known)}")
        try:
            return cls(
                representation=str(d.get("representation", "absolute")),
                chunk=int(d.get("chunk", 1)),
                execution=str(d.get("execution", "first")),
                ensemble_decay=float(d.get("ensemble_decay", 0.0)),
                base_deadband=float(d.get("base_deadband", 0.0)),
                base_deadband_angular=float(d.get("base_deadband_angular", 0.0)),
            )
        except (TypeError, ValueError) as err:
            raise VandError(f"action representation: malformed field ({err})") from None
