"""Observation assembly and resampling: the one piece of code used offline (dataset) and live (node).

Both sides feed it messages in the order they are received and ask for the observation at control ticks:

- offline, the dataset builder feeds every message of a bag in receive-time order and asks at each tick of
  the control grid (a tick `t` is assembled after every message received at or before `t` was fed);
- live, the node's subscription callbacks feed messages as they arrive and its timer asks at each tick.

Rules (the same on both sides, so a replayed bag gives the dataset's observations bit for bit):

- Time of a sample: the header stamp where the message has one (and it is not zero), the receive time
  otherwise (Float32MultiArray, String, Twist have no header) [ns].
- Resampling: the value of a stream at tick `t` is its latest accepted sample with time <= t.
- Time alignment of the joints: a joint sample stamped before the tick is moved forward to it by the
  message's velocities, q + v (t - stamp), by at most `joint_alignment` seconds (default 20 ms; None: off).
  Joint states arrive at 100 Hz or more, asynchronously to the control timer, so the latest one is 0 to
  10 ms old at a tick, a different age each tick; a policy that decodes its targets relative to the measured
  joints turns that jitter into jerk (the wipe's shake doubled over DDS, docs/learnability.md round 16).
  A sample stamped exactly at the tick (every simulated bag) is used as it is. A message without velocities
  (an empty velocity array) or with a non-finite one is used unaligned.
- Max age per stream: a sample older than `max_age` at the tick makes the tick invalid (never zero-filled,
  never extrapolated beyond the joints' time alignment above). The instruction has no max age by default
  (it is sent once, or at 1 Hz).
- Validation on update, with a reason: wrong sizes, NaN/Inf, configured joints missing from a JointState
  (joints are matched by name in any order; extra joints are ignored), a feature layout that does not match,
  an instruction outside the vocabulary, a stamp that goes backwards. A rejected message never reaches the
  observation, and the stream stays invalid until its next good message (the node holds meanwhile).
- The result of `assemble(t)` is an `Observation`: the (D,) float32 vector in `Layout` order, or
  `vector=None` with the reasons; `Observation.reasons` is stable while the cause persists, so the node
  can log it once (when it changes) and publish it on /diagnostics.

Actions (dataset only, `ActionAssembler`): the action of tick `t` is the command the demonstrator sent in
response to the observation of `t`: the latest command sent at or before `t + period - 1 ns`, i.e. the
last one sent before the next tick (a demonstrator or the node sends it at `t`, plus its compute latency).
It must be no older than `max_age` at `t`.

Pure numpy (no ROS, no rosbags, no torch): messages are read duck-typed (`msg.header.stamp.sec`, ...), so
the `on_*` helpers accept rclpy messages and rosbags messages alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from vand_ros.errors import VandError
from vand_ros.runtime.layout import Layout

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]

NS_PER_S = 1_000_000_000
BUFFER = 16  # accepted samples kept per stream (samples stamped ahead of the tick stay usable later)

# Base axis name -> (twist part, component): 0 = linear, 1 = angular; 0/1/2 = x/y/z.
TWIST_AXES: dict[str, tuple[int, int]] = {
    "vx": (0, 0),
    "vy": (0, 1),
    "vz": (0, 2),
    "wx": (1, 0),
    "wy": (1, 1),
    "wz": (1, 2),
}


def stamp_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (rclpy or rosbags) -> nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def sample_time(header_ns: int, receive_ns: int) -> int:
    """The time of a sample: its header stamp, or the receive time where the stamp is unset (zero)."""
    return header_ns if header_ns != 0 else receive_ns


def twist_indices(axes: Sequence[str]) -> list[int]:
    """Index of each base axis in a flat (linear.x, linear.y, linear.z, angular.x, angular.y, angular.z)."""
    out = []
    for axis in axes:
        if axis not in TWIST_AXES:
            raise VandError(f"base axis {axis!r} is not one of {sorted(TWIST_AXES)}; fix base_axes")
        part, comp = TWIST_AXES[axis]
        out.append(3 * part + comp)
    return out


def feature_grid(feature_names: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(entities, fields) when feature names are the entity-major product `entity.field`, else None."""
    entities: list[str] = []
    fields: list[str] = []
    for name in feature_names:
        entity, dot, fld = name.rpartition(".")
        if not dot:
            return None
        if entity not in entities:
            entities.append(entity)
        if fld not in fields:
            fields.append(fld)
    expected = [f"{e}.{f}" for e in entities for f in fields]
    return (tuple(entities), tuple(fields)) if expected == list(feature_names) else None


def feature_dims(feature_names: Sequence[str]) -> tuple[tuple[str, int], ...] | None:
    """The MultiArrayLayout dims a features message must carry (when it carries any), or None if free-form.

    [("entity:" + ",".join(entities), E), ("field:" + ",".join(fields), F)], as the simulation publishes.
    """
    grid = feature_grid(feature_names)
    if grid is None:
        return None
    entities, fields = grid
    return (("entity:" + ",".join(entities), len(entities)), ("field:" + ",".join(fields), len(fields)))


# Input stamps and the node's clock this far apart are not a slow sensor but two clocks: sim time (from
# /clock, starting near 0) against wall time (about 1.8e9 s since 1970). Said instead of the per-stream age,
# once, with what to set.
CLOCK_MISMATCH_NS = 10**6 * NS_PER_S  # [ns] (11.6 days)
WALL_NODE_SIM_INPUTS = (
    "The inputs are stamped in simulation time (a simulator publishes /clock) but this node runs on wall "
    "time: set its parameter use_sim_time:=true (e.g. `-p use_sim_time:=true`)."
)
SIM_NODE_WALL_INPUTS = (
    "The inputs are stamped in wall time but this node runs on simulation time (use_sim_time is true): set "
    "use_sim_time:=false, or run the simulator that publishes /clock."
)


def cause_of(reason: str) -> str:
    """A reason with its numbers blanked ("/odom: latest sample is # s old (max # s)")."""
    return re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "#", reason)


@dataclass(frozen=True)
class Rejection:
    """Why one message was not used."""

    stream: str  # "joints", "base", "features", "instruction", "arm", "cmd"
    topic: str
    stamp_ns: int
    reason: str
    hint: str  # what to do
    kind: str  # time-backwards, non-finite, joint-names, size, feature-layout, vocabulary

    def __str__(self) -> str:
        return f"{self.topic}: {self.reason}"


class Stream:
    """Accepted samples of one input, and the latest-at-or-before-the-tick rule with a max age."""

    __slots__ = ("accepted", "label", "last_rejection", "max_age_ns", "name", "poisoned", "stamps", "values")

    def __init__(self, name: str, label: str, max_age_s: float | None) -> None:
        self.name = name
        self.label = label
        self.max_age_ns = None if max_age_s is None else round(max_age_s * NS_PER_S)
        self.stamps: list[int] = []
        self.values: list[Any] = []
        self.poisoned: Rejection | None = None
        self.last_rejection: Rejection | None = None
        self.accepted = 0

    def reset(self) -> None:
        self.stamps.clear()
        self.values.clear()
        self.poisoned = None

    def reject(self, stamp: int, reason: str, hint: str, kind: str) -> Rejection:
        rej = Rejection(self.name, self.label, stamp, reason, hint, kind)
        self.poisoned = self.last_rejection = rej
        return rej

    def accept(self, stamp: int, value: Any) -> Rejection | None:
        stamps = self.stamps
        if stamps and stamp < stamps[-1]:
            return self.reject(
                stamp,
                f"time goes backwards: stamp {stamp / NS_PER_S:.6f} s is "
                f"{(stamps[-1] - stamp) / 1e6:.3f} ms before the previous one "
                f"({stamps[-1] / NS_PER_S:.6f} s)",
                "split the recording at the clock jump (a simulation reset?) or re-record it",
                "time-backwards",
            )
        stamps.append(stamp)
        self.values.append(value)
        if len(stamps) > BUFFER:
            del stamps[0]
            del self.values[0]
        self.poisoned = None
        self.accepted += 1
        return None

    def at(self, tick: int, age_from: int | None = None) -> tuple[Any, str | None]:
        """(value, None) for the latest sample at or before `tick`, or (None, reason it is unusable).

        The age is measured from `age_from` (default: `tick`).
        """
        if self.poisoned is not None:
            return None, f"{self.label}: last message rejected ({self.poisoned.reason})"
        stamps = self.stamps
        i = len(stamps) - 1
        while i >= 0 and stamps[i] > tick:
            i -= 1
        if i < 0:
            if stamps and stamps[0] - tick > CLOCK_MISMATCH_NS:
                return None, (
                    f"{self.label}: samples are stamped {(stamps[0] - tick) / NS_PER_S:.0f} s after this "
                    f"node's clock. {SIM_NODE_WALL_INPUTS}"
                )
            if stamps:
                return None, f"{self.label}: no sample at or before the tick (samples are stamped later)"
            return None, f"{self.label}: no message yet"
        age = (tick if age_from is None else age_from) - stamps[i]
        if self.max_age_ns is not None and age > CLOCK_MISMATCH_NS:  # (a latched input never ages)
            return None, f"{self.label}: latest sample is {age / NS_PER_S:.0f} s old. {WALL_NODE_SIM_INPUTS}"
        if self.max_age_ns is not None and age > self.max_age_ns:
            return None, (
                f"{self.label}: latest sample is {age / NS_PER_S:.3f} s old "
                f"(max {self.max_age_ns / NS_PER_S:.3f} s)"
            )
        return self.values[i], None

    def stamp_at(self, tick: int) -> int | None:
        """Stamp of the latest sample at or before `tick` [ns], None when there is none."""
        for s in reversed(self.stamps):
            if s <= tick:
                return s
        return None

    def age_s(self, tick: int) -> float | None:
        """Age of the latest sample at or before `tick` [s] (diagnostics), None when there is none."""
        stamp = self.stamp_at(tick)
        return None if stamp is None else (tick - stamp) / NS_PER_S


@dataclass(frozen=True)
class AssemblerConfig:
    """What the assembler checks: the layout, per-stream max ages [s] and topic names (for messages)."""

    layout: Layout
    max_age_joints: float | None = 0.1  # [s]
    joint_alignment: float | None = 0.02  # [s] at most this far forward by the velocities; None: off
    max_age_base: float | None = 0.2  # [s]
    max_age_features: float | None = 0.3  # [s]
    max_age_instruction: float | None = None  # [s]; None: the last instruction holds until the next
    max_age_arm_command: float | None = 0.1  # [s] (actions, dataset only)
    max_age_cmd_vel: float | None = 0.1  # [s] (actions, dataset only)
    check_feature_layout: bool = True  # compare layout.dim labels/sizes when a features message has them
    topics: dict[str, str] = field(
        default_factory=lambda: {
            "joints": "/joint_states",
            "base": "/odom",
            "features": "/camera/features",
            "instruction": "/vand/instruction",
            "arm": "/arm_controller/commands",
            "cmd": "/cmd_vel",
        }
    )

    def __post_init__(self) -> None:
        for name in (
            "max_age_joints",
            "joint_alignment",
            "max_age_base",
            "max_age_features",
            "max_age_instruction",
            "max_age_arm_command",
            "max_age_cmd_vel",
        ):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value > 0):
                raise VandError(f"{name} must be a positive number of seconds or null, got {value!r}")
        twist_indices(self.layout.base_axes)

    def topic(self, stream: str) -> str:
        return self.topics.get(stream, stream)


_JOINT_HINT = "set joint_names in the configuration to the names the robot publishes"
_SIZE_HINT = "fix the publisher, or the layout in the configuration, so the sizes agree"
_FINITE_HINT = "fix the publisher (a sensor or encoder fault?) or drop this recording"


@dataclass(frozen=True)
class JointSample:
    """One accepted JointState in the configured joint order: positions [rad], velocities [rad/s] or None."""

    position: FloatArray  # (J,)
    velocity: FloatArray | None  # (J,); None: the message had none (or a non-finite one)


@dataclass(frozen=True)
class Observation:
    """The observation at one tick: a (D,) float32 vector, or None with the reasons it is invalid."""

    tick_ns: int
    vector: Float32Array | None  # (D,) raw units, Layout order
    reasons: tuple[str, ...]  # empty when valid; with numbers (ages) that change every tick
    instruction: str | None  # the behaviour word in force at the tick

    @property
    def causes(self) -> tuple[str, ...]:
        """The reasons without their numbers: stable while the cause persists (log when this changes)."""
        return tuple(cause_of(r) for r in self.reasons)

    @property
    def valid(self) -> bool:
        return self.vector is not None


class ObservationAssembler:
    """Latest-sample resampler and validator for the policy's observation (see the module docstring).

    Update methods take (stamp_ns, parsed values) and return None, or the `Rejection` that explains why the
    message was not used. `on_*` methods take whole messages (rclpy or rosbags) and the receive time.
    """

    def __init__(self, config: AssemblerConfig) -> None:
        self.config = config
        layout = config.layout
        self.layout = layout
        self._slices = layout.obs_slices
        self._n_joints = len(layout.joint_names)
        self._n_features = len(layout.feature_names)
        self._twist_index = np.asarray(twist_indices(layout.base_axes), dtype=np.intp)
        self._feature_dims = feature_dims(layout.feature_names) if config.check_feature_layout else None
        self._vocab_index = {w: i for i, w in enumerate(layout.vocabulary)}
        self._joint_maps: dict[tuple[str, ...], npt.NDArray[np.intp] | str] = {}
        self.joints = Stream("joints", config.topic("joints"), config.max_age_joints)
        self.base = Stream("base", config.topic("base"), config.max_age_base)
        self.features = Stream("features", config.topic("features"), config.max_age_features)
        self.instruction = Stream("instruction", config.topic("instruction"), config.max_age_instruction)
        self.streams: list[Stream] = [self.joints]
        if layout.base_axes:
            self.streams.append(self.base)
        if layout.feature_names:
            self.streams.append(self.features)
        if layout.vocabulary:
            self.streams.append(self.instruction)
        self.rejected: dict[str, int] = {s.name: 0 for s in (self.joints, self.base, self.features)}
        self.rejected["instruction"] = 0
        self._last_tick: int | None = None
        self.clock_jumps = 0

    # -- lifecycle --------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every sample (e.g. after the clock jumped back). Counters are kept."""
        for s in (self.joints, self.base, self.features, self.instruction):
            s.reset()
        self._last_tick = None

    # -- updates with parsed values ---------------------------------------------------------------------
    def _joint_map(self, names: Sequence[str]) -> npt.NDArray[np.intp] | str:
        key = tuple(names)
        found = self._joint_maps.get(key)
        if found is not None:
            return found
        index: dict[str, int] = {}
        dup = []
        for i, n in enumerate(key):
            if n in index:
                dup.append(n)
            index[n] = i
        wanted = self.layout.joint_names
        missing = [n for n in wanted if n not in index]
        result: npt.NDArray[np.intp] | str
        if missing:
            result = f"joints {missing} are missing (the message names {list(key)})"
        elif dup_wanted := sorted(set(dup) & set(wanted)):
            result = f"joints {dup_wanted} appear more than once"
        else:
            result = np.asarray([index[n] for n in wanted], dtype=np.intp)
        if len(self._joint_maps) > 64:
            self._joint_maps.clear()
        self._joint_maps[key] = result
        return result

    def update_joints(
        self,
        stamp: int,
        names: Sequence[str],
        positions: Sequence[float] | FloatArray,
        velocities: Sequence[float] | FloatArray | None = None,
    ) -> Rejection | None:
        """A JointState: `names`, `positions` [rad] and `velocities` [rad/s] (None or empty: none) in the
        message's order; extra joints are ignored."""
        stream = self.joints
        pos = np.asarray(positions, dtype=np.float64)
        vel = None if velocities is None else np.asarray(velocities, dtype=np.float64)
        if vel is not None and vel.size == 0:
            vel = None  # an empty velocity array: the message has none
        for what, arr in (("positions", pos), ("velocities", vel)):
            if arr is not None and (arr.ndim != 1 or len(arr) != len(names)):
                return self._reject(
                    stream,
                    stamp,
                    f"{len(names)} names but {arr.size} {what}",
                    "fix the JointState publisher",
                    "size",
                )
        index = self._joint_map(names)
        if isinstance(index, str):
            return self._reject(stream, stamp, index, _JOINT_HINT, "joint-names")
        values = pos[index]  # (J,) configured order
        if not np.isfinite(values).all():
            bad = [self.layout.joint_names[i] for i in np.flatnonzero(~np.isfinite(values))]
            why = f"non-finite position (NaN/Inf) for joints {bad}"
            return self._reject(stream, stamp, why, _FINITE_HINT, "non-finite")
        speeds = None if vel is None else vel[index]
        if speeds is not None and not np.isfinite(speeds).all():
            speeds = None  # some drivers publish NaN for unknown velocities: the position alone is used
        return stream.accept(stamp, JointSample(values, speeds))

    def update_base(self, stamp: int, twist: Sequence[float] | FloatArray) -> Rejection | None:
        """Base velocity as a flat twist (linear x, y, z [m/s], angular x, y, z [rad/s]) in the base frame."""
        stream = self.base
        tw = np.asarray(twist, dtype=np.float64)
        if tw.shape != (6,):
            return self._reject(
                stream, stamp, f"twist has shape {tw.shape}, expected (6,)", _SIZE_HINT, "size"
            )
        values = tw[self._twist_index]  # (len(base_axes),)
        if not np.isfinite(values).all():
            return self._reject(
                stream, stamp, f"non-finite base velocity {values.tolist()}", _FINITE_HINT, "non-finite"
            )
        return stream.accept(stamp, values)

    def update_features(
        self,
        stamp: int,
        data: Sequence[float] | npt.NDArray[np.floating[Any]],
        dims: Sequence[tuple[str, int]] = (),
    ) -> Rejection | None:
        """Camera features in the layout's feature order; `dims` = the message's (label, size) layout."""
        stream = self.features
        values = np.asarray(data, dtype=np.float32)
        if values.ndim != 1 or values.size != self._n_features:
            return self._reject(
                stream,
                stamp,
                f"{values.size} feature values, expected {self._n_features} "
                f"({len(self.layout.feature_names)} names in the layout)",
                _SIZE_HINT,
                "size",
            )
        if dims and self._feature_dims is not None:
            got = tuple((str(label), int(size)) for label, size in dims)
            if got != self._feature_dims:
                return self._reject(
                    stream,
                    stamp,
                    f"layout.dim {list(got)} does not match the expected {list(self._feature_dims)}",
                    "make the feature entities/fields in the configuration match the publisher's",
                    "feature-layout",
                )
        if not np.isfinite(values).all():
            bad = [self.layout.feature_names[i] for i in np.flatnonzero(~np.isfinite(values))[:5]]
            return self._reject(
                stream, stamp, f"non-finite feature values (NaN/Inf) in {bad}", _FINITE_HINT, "non-finite"
            )
        return stream.accept(stamp, values)

    def update_instruction(self, stamp: int, word: str) -> Rejection | None:
        """The behaviour word; it must be in the vocabulary."""
        stream = self.instruction
        index = self._vocab_index.get(word.strip())
        if index is None:
            return self._reject(
                stream,
                stamp,
                f"instruction {word!r} is not in the vocabulary {list(self.layout.vocabulary)}",
                "add the word to the vocabulary in the configuration, or fix the instruction publisher",
                "vocabulary",
            )
        return stream.accept(stamp, index)

    def _reject(self, stream: Stream, stamp: int, reason: str, hint: str, kind: str) -> Rejection:
        self.rejected[stream.name] += 1
        return stream.reject(stamp, reason, hint, kind)

    # -- updates with whole messages (rclpy or rosbags objects) ------------------------------------------
    def on_joint_state(self, msg: Any, receive_ns: int) -> Rejection | None:
        stamp = sample_time(stamp_ns(msg.header.stamp), receive_ns)
        return self.update_joints(
            stamp,
            list(msg.name),
            np.asarray(msg.position, dtype=np.float64),
            np.asarray(msg.velocity, dtype=np.float64),
        )

    def on_odometry(self, msg: Any, receive_ns: int) -> Rejection | None:
        stamp = sample_time(stamp_ns(msg.header.stamp), receive_ns)
        tw = msg.twist.twist
        lin, ang = tw.linear, tw.angular
        return self.update_base(stamp, [lin.x, lin.y, lin.z, ang.x, ang.y, ang.z])

    def on_features(self, msg: Any, receive_ns: int) -> Rejection | None:
        dims = [(d.label, int(d.size)) for d in msg.layout.dim]
        return self.update_features(receive_ns, np.asarray(msg.data, dtype=np.float32), dims)

    def on_instruction(self, msg: Any, receive_ns: int) -> Rejection | None:
        return self.update_instruction(receive_ns, str(msg.data))

    # -- the observation at a tick ----------------------------------------------------------------------
    def assemble(self, tick: int) -> Observation:
        """The observation at `tick` [ns]: latest samples at or before it, each within its max age."""
        if self._last_tick is not None and tick < self._last_tick:
            self.clock_jumps += 1  # the clock went back (simulation reset, bag loop): old samples are future
            self.reset()
        self._last_tick = tick
        reasons: list[str] = []
        values: dict[str, Any] = {}
        for s in self.streams:
            value, why = s.at(tick)
            if why is not None:
                reasons.append(why)
            else:
                values[s.name] = value
        word = None
        if "instruction" in values:
            word = self.layout.vocabulary[values["instruction"]]
        if reasons:
            return Observation(tick, None, tuple(reasons), word)
        obs = np.zeros(self.layout.obs_dim, dtype=np.float32)  # (D,)
        sl = self._slices
        obs[sl["joints"]] = self._aligned_joints(values["joints"], tick)
        if "base" in values:
            obs[sl["base"]] = values["base"]
        if "features" in values:
            obs[sl["features"]] = values["features"]
        if "instruction" in values:
            obs[sl["instruction"].start + values["instruction"]] = 1.0
        return Observation(tick, obs, (), word)

    def _aligned_joints(self, sample: JointSample, tick: int) -> FloatArray:
        """The joint positions moved forward to `tick` by their velocities (module docstring), (J,)."""
        horizon = self.config.joint_alignment
        stamp = self.joints.stamp_at(tick)
        if horizon is None or sample.velocity is None or stamp is None or stamp == tick:
            return sample.position
        dt = min((tick - stamp) / NS_PER_S, horizon)
        return sample.position + sample.velocity * dt

    def diagnostics(self, tick: int) -> dict[str, str]:
        """Per-stream age, counts and last rejection, as strings for diagnostic_msgs/KeyValue."""
        out: dict[str, str] = {}
        for s in self.streams:
            age = s.age_s(tick)
            out[f"{s.label} age [s]"] = "none" if age is None else f"{age:.3f}"
            out[f"{s.label} accepted"] = str(s.accepted)
            out[f"{s.label} rejected"] = str(self.rejected[s.name])
            if s.last_rejection is not None:
                out[f"{s.label} last rejection"] = s.last_rejection.reason
        return out


@dataclass(frozen=True)
class Action:
    """The demonstrated action of one tick, or None with the reasons it is unavailable."""

    tick_ns: int
    vector: Float32Array | None  # (A,) raw units, Layout action order
    reasons: tuple[str, ...]

    @property
    def valid(self) -> bool:
        return self.vector is not None


class ActionAssembler:
    """The demonstrator's commands, resampled onto the control grid (dataset side; see the module docstring).

    Arm: std_msgs/Float64MultiArray of joint position targets [rad] in the configured joint order (the
    ros2_control forward command controller's convention). Base: geometry_msgs/Twist or TwistStamped.
    """

    def __init__(self, config: AssemblerConfig, control_rate: float) -> None:
        if not control_rate > 0:
            raise VandError(f"control_rate must be positive, got {control_rate}")
        self.layout = config.layout
        self.period_ns = round(NS_PER_S / control_rate)
        self._slices = config.layout.act_slices
        self._n_joints = len(config.layout.joint_names)
        self._twist_index = np.asarray(twist_indices(config.layout.base_axes), dtype=np.intp)
        self.arm = Stream("arm", config.topic("arm"), config.max_age_arm_command)
        self.cmd = Stream("cmd", config.topic("cmd"), config.max_age_cmd_vel)
        self.streams = [self.arm] + ([self.cmd] if config.layout.base_axes else [])

    def query_time(self, tick: int) -> int:
        """Commands sent at or before this time [ns] count for `tick`: the last one before the next tick."""
        return tick + self.period_ns - 1

    def update_arm(self, stamp: int, targets: Sequence[float] | FloatArray) -> Rejection | None:
        values = np.asarray(targets, dtype=np.float64)
        if values.shape != (self._n_joints,):
            return self.arm.reject(
                stamp,
                f"{values.size} joint targets, expected {self._n_joints} "
                f"(one per configured joint, in the order {list(self.layout.joint_names)})",
                "commands must list every configured joint in order; fix joint_names or the publisher",
                "size",
            )
        if not np.isfinite(values).all():
            return self.arm.reject(
                stamp, f"non-finite joint targets {values.tolist()}", _FINITE_HINT, "non-finite"
            )
        return self.arm.accept(stamp, values)

    def update_cmd(self, stamp: int, twist: Sequence[float] | FloatArray) -> Rejection | None:
        tw = np.asarray(twist, dtype=np.float64)
        if tw.shape != (6,):
            return self.cmd.reject(stamp, f"twist has shape {tw.shape}, expected (6,)", _SIZE_HINT, "size")
        values = tw[self._twist_index]
        if not np.isfinite(values).all():
            return self.cmd.reject(
                stamp, f"non-finite velocity command {values.tolist()}", _FINITE_HINT, "non-finite"
            )
        return self.cmd.accept(stamp, values)

    def on_arm_command(self, msg: Any, receive_ns: int) -> Rejection | None:
        return self.update_arm(receive_ns, np.asarray(msg.data, dtype=np.float64))

    def on_cmd_vel(self, msg: Any, receive_ns: int) -> Rejection | None:
        """geometry_msgs/Twist, or TwistStamped (its header stamp is used when set)."""
        stamp = receive_ns
        if hasattr(msg, "header"):
            stamp = sample_time(stamp_ns(msg.header.stamp), receive_ns)
            msg = msg.twist
        lin, ang = msg.linear, msg.angular
        return self.update_cmd(stamp, [lin.x, lin.y, lin.z, ang.x, ang.y, ang.z])

    def assemble(self, tick: int) -> Action:
        """The action of `tick`: the last command sent before the next tick, within max age of `tick`."""
        query = self.query_time(tick)
        act = np.zeros(self.layout.act_dim, dtype=np.float32)  # (A,)
        reasons: list[str] = []
        for s, key in ((self.arm, "joints"), (self.cmd, "base")):
            if s not in self.streams:
                continue
            value, why = s.at(query, age_from=tick)  # age from the tick: the command may follow it
            if why is not None:
                reasons.append(why)
            else:
                act[self._slices[key]] = value
        if reasons:
            return Action(tick, None, tuple(reasons))
        return Action(tick, act, ())
