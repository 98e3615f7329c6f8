"""The instructed behaviours, defined once: their kind, where demonstrations start, how long they last and
what the closed-loop metrics measure. The demonstrators (`demonstrators.make`), the test conditions
(`evaluation.conditions`) and the metrics (`evaluation.metrics`) all read this table, so a new behaviour
is one `BehaviourSpec` here plus its demonstrator class.

    wipe       periodic    the end effector strokes back and forth across the table (base parked)
    patrol     periodic    the base drives a counter-clockwise circle, arm in carry pose
    visit_abc  sequential  drive to stations A, B, C in turn, touch each with the end effector, then stop
    visit_cba  sequential  the same in the order C, B, A

`robot.BEHAVIOURS` (the instruction vocabulary, read by the robot side, which does not import the
simulation) lists the same names in the same order; a test checks it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vand_ros import robot
from vand_ros.errors import VandError

Range = tuple[float, float]
ARM_START_RANGE = 0.15  # [rad] every demonstration starts its arm at home +- this per joint
STATIONS = ("station_a", "station_b", "station_c")


@dataclass(frozen=True)
class BehaviourSpec:
    """One instructed behaviour."""

    name: str
    kind: str  # "periodic" or "sequential"
    start_base: tuple[Range, Range, Range]  # demonstrated start: x [m], y [m], yaw [rad] (world frame)
    duration: Range  # [s] demonstration length
    motion: str = ""  # periodic: "stroke" (the end effector, back and forth) or "loop" (the base, a circle)
    settle: float = 0.0  # [s] periodic: demonstrations are measured from here (the approach is done)
    order: tuple[str, ...] = ()  # sequential: the stations, in the instructed order
    switch_from: str = ""  # the `switch` condition starts with this instruction ("" = not defined)

    @property
    def periodic(self) -> bool:
        return self.kind == "periodic"

    def moving_point(
        self, base: npt.NDArray[np.float64], ee: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """The world-plane point (N, 2) whose motion is a periodic behaviour: end effector or base."""
        return ee[:, :2] if self.motion == "stroke" else base[:, :2]


SPECS: tuple[BehaviourSpec, ...] = (
    # Not switched into: no demonstrated behaviour leaves the robot parked at the table.
    BehaviourSpec("wipe", "periodic", ((1.15, 1.30), (-0.15, 0.15), (-0.10, 0.10)), (20.0, 30.0),
                  motion="stroke", settle=2.5),
    # Not from wipe: the loop starts tangentially, and from the wiping pose it heads into the table.
    BehaviourSpec("patrol", "periodic", ((-0.3, 0.3), (-0.5, -0.2), (-0.3, 0.3)), (20.0, 30.0),
                  motion="loop", settle=2.0, switch_from="visit_abc"),
    BehaviourSpec("visit_abc", "sequential", ((-0.3, 0.3), (-0.3, 0.3), (-0.5, 0.5)), (26.0, 30.0),
                  order=STATIONS, switch_from="visit_cba"),
    BehaviourSpec("visit_cba", "sequential", ((-0.3, 0.3), (-0.3, 0.3), (-0.5, 0.5)), (26.0, 30.0),
                  order=STATIONS[::-1], switch_from="visit_abc"),
)  # fmt: skip
BEHAVIOURS: dict[str, BehaviourSpec] = {s.name: s for s in SPECS}
PERIODIC: tuple[str, ...] = tuple(s.name for s in SPECS if s.periodic)
SEQUENTIAL: tuple[str, ...] = tuple(s.name for s in SPECS if not s.periodic)


def spec(name: str) -> BehaviourSpec:
    """The behaviour called `name`, or a VandError that lists the known ones."""
    try:
        return BEHAVIOURS[name]
    except KeyError:
        raise VandError(
            f"unknown behaviour {name!r}; expected one of {', '.join(robot.BEHAVIOURS)}"
        ) from None
