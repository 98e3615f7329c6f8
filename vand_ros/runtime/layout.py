"""The observation and action layout shared by the dataset, the checkpoints, the ONNX model card and the node.

Observation, in this order (every group may be empty except the joints):
    joints       arm joint positions [rad], in `joint_names` order
    base         base velocity in the base frame (vx [m/s], vy [m/s], wz [rad/s]) from /odom
    features     camera features in `feature_names` order (entity.x/.y/.z [m], camera frame; entity.visible)
    instruction  one-hot over `vocabulary`

Action, in this order:
    joints       arm joint position targets [rad] (what the demonstrator sent on /arm_controller/commands)
    base         base velocity command (vx, vy, wz) (what the demonstrator sent on /cmd_vel)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from vand_ros.errors import VandError

LAYOUT_VERSION = 1


@dataclass(frozen=True)
class Layout:
    """Names and slices of the observation and action vectors."""

    joint_names: tuple[str, ...]
    base_axes: tuple[str, ...]
    feature_names: tuple[str, ...]
    vocabulary: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.joint_names:
            raise VandError("Layout needs at least one arm joint name")
        for group in ("joint_names", "base_axes", "feature_names", "vocabulary"):
            names = getattr(self, group)
            if len(set(names)) != len(names):
                raise VandError(f"Layout.{group} has duplicate names: {list(names)}")

    # -- sizes and slices -------------------------------------------------------------------------------
    @property
    def obs_slices(self) -> dict[str, slice]:
        sizes = {
            "joints": len(self.joint_names),
            "base": len(self.base_axes),
            "features": len(self.feature_names),
            "instruction": len(self.vocabulary),
        }
        return _consecutive(sizes)

    @property
    def act_slices(self) -> dict[str, slice]:
        return _consecutive({"joints": len(self.joint_names), "base": len(self.base_axes)})

    @property
    def obs_dim(self) -> int:
        return sum(s.stop - s.start for s in self.obs_slices.values())

    @property
    def act_dim(self) -> int:
        return sum(s.stop - s.start for s in self.act_slices.values())

    @property
    def obs_names(self) -> list[str]:
        return (
            [f"joint.{n}" for n in self.joint_names]
            + [f"base.{a}" for a in self.base_axes]
            + [f"feature.{f}" for f in self.feature_names]
            + [f"instruction.{w}" for w in self.vocabulary]
        )

    @property
    def act_names(self) -> list[str]:
        return [f"target.{n}" for n in self.joint_names] + [f"cmd.{a}" for a in self.base_axes]

    # -- serialisation ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"version": LAYOUT_VERSION, **{k: list(v) for k, v in asdict(self).items()}}
        d["obs"] = {k: [s.start, s.stop] for k, s in self.obs_slices.items()}
        d["act"] = {k: [s.start, s.stop] for k, s in self.act_slices.items()}
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Layout:
        if d.get("version") != LAYOUT_VERSION:
            raise VandError(
                f"layout version {d.get('version')!r} is not supported (expected {LAYOUT_VERSION}); "
                "re-export the model with this version of vand_ros"
            )
        try:
            layout = cls(
                joint_names=tuple(d["joint_names"]),
                base_axes=tuple(d["base_axes"]),
                feature_names=tuple(d["feature_names"]),
                vocabulary=tuple(d["vocabulary"]),
            )
        except KeyError as err:
            raise VandError(f"layout is missing the field {err}") from None
        return layout

    @classmethod
    def from_json(cls, text: str) -> Layout:
        return cls.from_dict(json.loads(text))

    def differences(self, other: Layout) -> list[str]:
        """Human-readable differences between two layouts (empty when they match)."""
        out = []
        for group in ("joint_names", "base_axes", "feature_names", "vocabulary"):
            a, b = getattr(self, group), getattr(other, group)
            if a != b:
                out.append(f"{group}: {list(a)} != {list(b)}")
        return out


def _consecutive(sizes: dict[str, int]) -> dict[str, slice]:
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = slice(start, start + size)
        start += size
    return out


def default_layout() -> Layout:
    """The layout of the built-in simulated robot (vand_ros.robot)."""
    from vand_ros import robot

    return Layout(
        joint_names=robot.ARM_JOINT_NAMES,
        base_axes=robot.BASE_AXES,
        feature_names=tuple(f"{e}.{f}" for e in robot.FEATURE_ENTITIES for f in robot.FEATURE_FIELDS),
        vocabulary=robot.BEHAVIOURS,
    )
