"""The dataset configuration: one validated dataclass, defaults from vand_ros.robot, saved with the dataset.

What a bag is read with: topic names, arm joint names (matched by name in the JointState, any order, extras
ignored), base axes, camera-feature entities and fields, the instruction vocabulary, the control rate of
the tick grid and the maximum age of each stream at a tick. The JSON form (`to_json`) is written next to
every dataset and is part of the cache key.

Load a file with `DataConfig.load(path)` (JSON or YAML); any field left out keeps its default, an unknown
field is an error that names it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from vand_ros import robot
from vand_ros.errors import VandError
from vand_ros.runtime.assembler import AssemblerConfig, feature_dims, twist_indices
from vand_ros.runtime.layout import Layout

CONFIG_VERSION = 1


@dataclass(frozen=True)
class DataTopics:
    """Topic names in the bags. An empty `features` topic means the layout has no camera features."""

    joint_states: str = robot.TOPICS.joint_states  # sensor_msgs/JointState
    odom: str = robot.TOPICS.odom  # nav_msgs/Odometry (twist in the base frame)
    features: str = robot.TOPICS.features  # std_msgs/Float32MultiArray
    instruction: str = robot.TOPICS.instruction  # std_msgs/String
    arm_command: str = robot.TOPICS.arm_command  # std_msgs/Float64MultiArray, joint targets in joint order
    cmd_vel: str = robot.TOPICS.cmd_vel  # geometry_msgs/Twist or TwistStamped


@dataclass(frozen=True)
class DataConfig:
    """How bags become episodes. Every field is validated in `__post_init__`."""

    joint_names: tuple[str, ...] = robot.ARM_JOINT_NAMES
    base_axes: tuple[str, ...] = robot.BASE_AXES  # from the odometry twist / cmd_vel, e.g. vx, vy, wz
    feature_entities: tuple[str, ...] = robot.FEATURE_ENTITIES
    feature_fields: tuple[str, ...] = robot.FEATURE_FIELDS
    vocabulary: tuple[str, ...] = robot.BEHAVIOURS
    topics: DataTopics = field(default_factory=DataTopics)
    control_rate: float = robot.RATES.control  # [Hz] tick grid
    max_age_joints: float | None = 0.1  # [s]
    joint_alignment: float | None = 0.02  # [s] joints moved forward to the tick by their velocities, at most
    max_age_odom: float | None = 0.2  # [s]
    max_age_features: float | None = 0.3  # [s]
    max_age_instruction: float | None = None  # [s]; None: an instruction holds until the next one
    max_age_arm_command: float | None = 0.1  # [s], measured from the tick
    max_age_cmd_vel: float | None = 0.1  # [s], measured from the tick
    check_feature_layout: bool = True  # check the features' layout.dim labels when a message has them
    default_instruction: str | None = None  # behaviour of bags that carry no instruction (else: bad bag)
    min_episode_ticks: int = 20  # shorter valid stretches are dropped (and counted)
    val_fraction: float = 0.2  # validation share of each behaviour's episodes
    seed: int = 0  # split seed
    fast_cdr: bool = True  # parse the hot message types' CDR directly (same values as rosbags; faster)

    def __post_init__(self) -> None:
        for name in ("joint_names", "base_axes", "feature_entities", "feature_fields", "vocabulary"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise VandError(f"data config: {name} must be a list of non-empty names, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        if not self.joint_names:
            raise VandError("data config: joint_names must name at least one arm joint")
        if not self.vocabulary:
            raise VandError("data config: vocabulary must list at least one behaviour word")
        if bool(self.feature_entities) != bool(self.feature_fields):
            raise VandError("data config: feature_entities and feature_fields must both be empty or both set")
        twist_indices(self.base_axes)
        if not (isinstance(self.control_rate, int | float) and 0 < self.control_rate <= 1000):
            raise VandError(f"data config: control_rate must be in (0, 1000] Hz, got {self.control_rate!r}")
        if not 0 <= self.val_fraction < 1:
            raise VandError(f"data config: val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if not (isinstance(self.min_episode_ticks, int) and self.min_episode_ticks >= 1):
            raise VandError(f"data config: min_episode_ticks must be >= 1, got {self.min_episode_ticks!r}")
        if self.default_instruction is not None and self.default_instruction not in self.vocabulary:
            raise VandError(
                f"data config: default_instruction {self.default_instruction!r} is not in the vocabulary "
                f"{list(self.vocabulary)}"
            )
        if not self.topics.features and self.feature_entities:
            raise VandError("data config: topics.features is empty but feature_entities are set")
        self.assembler_config()  # validates the max ages

    # -- derived ------------------------------------------------------------------------------------------
    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f"{e}.{f}" for e in self.feature_entities for f in self.feature_fields)

    def layout(self) -> Layout:
        return Layout(
            joint_names=self.joint_names,
            base_axes=self.base_axes,
            feature_names=self.feature_names,
            vocabulary=self.vocabulary,
        )

    def feature_dims(self) -> tuple[tuple[str, int], ...] | None:
        """The layout.dim the features message carries (as the simulation publishes it)."""
        return feature_dims(self.feature_names)

    @property
    def period_ns(self) -> int:
        return round(1e9 / self.control_rate)

    def assembler_config(self) -> AssemblerConfig:
        t = self.topics
        return AssemblerConfig(
            layout=self.layout(),
            max_age_joints=self.max_age_joints,
            joint_alignment=self.joint_alignment,
            max_age_base=self.max_age_odom,
            max_age_features=self.max_age_features,
            max_age_instruction=self.max_age_instruction,
            max_age_arm_command=self.max_age_arm_command,
            max_age_cmd_vel=self.max_age_cmd_vel,
            check_feature_layout=self.check_feature_layout,
            topics={
                "joints": t.joint_states,
                "base": t.odom,
                "features": t.features,
                "instruction": t.instruction,
                "arm": t.arm_command,
                "cmd": t.cmd_vel,
            },
        )

    def extraction_key(self) -> str:
        """The fields that change what a bag turns into (the split fields do not): the cache key part."""
        d = self.to_dict()
        for k in ("val_fraction", "seed", "fast_cdr"):
            d.pop(k)
        return json.dumps(d, sort_keys=True)

    # -- serialisation ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        d["version"] = CONFIG_VERSION
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "data config") -> DataConfig:
        d = dict(d)
        version = d.pop("version", CONFIG_VERSION)
        if version != CONFIG_VERSION:
            raise VandError(f"{source}: version {version!r} is not supported (expected {CONFIG_VERSION})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise VandError(f"{source}: unknown fields {unknown}; known fields are {sorted(known)}")
        topics = d.pop("topics", {}) or {}
        if not isinstance(topics, dict):
            raise VandError(f"{source}: topics must be a mapping, got {topics!r}")
        tknown = {f.name for f in fields(DataTopics)}
        if bad := sorted(set(topics) - tknown):
            raise VandError(f"{source}: unknown topics {bad}; known topics are {sorted(tknown)}")
        for k, v in d.items():
            if isinstance(v, list):
                d[k] = tuple(v)
        try:
            return cls(topics=DataTopics(**topics), **d)
        except TypeError as err:
            raise VandError(f"{source}: {err}") from None

    @classmethod
    def from_json(cls, text: str, source: str = "data config") -> DataConfig:
        return cls.from_dict(json.loads(text), source)

    @classmethod
    def load(cls, path: str | Path) -> DataConfig:
        """A JSON or YAML file with any subset of the fields."""
        path = Path(path)
        if not path.is_file():
            raise VandError(f"config file {path} does not exist")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except Exception as err:
            raise VandError(f"config file {path} cannot be parsed: {err}") from None
        if not isinstance(data, dict):
            raise VandError(f"config file {path} must hold a mapping of fields, got {type(data).__name__}")
        return cls.from_dict(data, source=str(path))

    def with_(self, **changes: Any) -> DataConfig:
        return replace(self, **changes)
