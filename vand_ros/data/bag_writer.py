"""Write real rosbag2 files (MCAP or sqlite3, optional zstd) with `rosbags`, no ROS install needed.

Used by the in-process demonstration generator, the DDS recorder (which writes the exact bytes it received)
and the tests that need small or broken bags. Messages are built with `rosbags`' own classes for the
ROS 2 Kilted type store, so what lands in the file is byte-for-byte standard CDR.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from vand_ros.errors import VandError

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}

T = TYPESTORE.types  # message classes by type name, e.g. T["sensor_msgs/msg/JointState"]


def stamp(ns: int) -> Any:
    """builtin_interfaces/Time from nanoseconds."""
    return T["builtin_interfaces/msg/Time"](sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def header(ns: int, frame_id: str = "") -> Any:
    return T["std_msgs/msg/Header"](stamp=stamp(ns), frame_id=frame_id)


def joint_state(ns: int, names: Sequence[str], position: npt.ArrayLike, velocity: npt.ArrayLike = ()) -> Any:
    return T["sensor_msgs/msg/JointState"](
        header=header(ns),
        name=list(names),
        position=np.asarray(position, dtype=np.float64),
        velocity=np.asarray(velocity, dtype=np.float64),
        effort=np.zeros(0, dtype=np.float64),
    )


def _vector3(x: float, y: float, z: float) -> Any:
    return T["geometry_msgs/msg/Vector3"](x=float(x), y=float(y), z=float(z))


def twist(linear: Sequence[float], angular: Sequence[float]) -> Any:
    return T["geometry_msgs/msg/Twist"](linear=_vector3(*linear), angular=_vector3(*angular))


def twist_stamped(
    ns: int, linear: Sequence[float], angular: Sequence[float], frame_id: str = "base_link"
) -> Any:
    return T["geometry_msgs/msg/TwistStamped"](header=header(ns, frame_id), twist=twist(linear, angular))


def odometry(
    ns: int,
    position: Sequence[float],
    yaw: float,
    linear: Sequence[float],
    angular: Sequence[float],
    frame_id: str = "odom",
    child_frame_id: str = "base_link",
) -> Any:
    """nav_msgs/Odometry with a planar pose (x, y, yaw) and a twist in the child (base) frame."""
    quat = T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=float(np.sin(yaw / 2)), w=float(np.cos(yaw / 2)))
    point = T["geometry_msgs/msg/Point"](x=float(position[0]), y=float(position[1]), z=0.0)
    pose = T["geometry_msgs/msg/PoseWithCovariance"](
        pose=T["geometry_msgs/msg/Pose"](position=point, orientation=quat),
        covariance=np.zeros(36, dtype=np.float64),
    )
    tw = T["geometry_msgs/msg/TwistWithCovariance"](
        twist=twist(linear, angular), covariance=np.zeros(36, dtype=np.float64)
    )
    return T["nav_msgs/msg/Odometry"](
        header=header(ns, frame_id), child_frame_id=child_frame_id, pose=pose, twist=tw
    )


def multi_array_layout(dims: Sequence[tuple[str, int]]) -> Any:
    """std_msgs/MultiArrayLayout, row-major, from (label, size) pairs, outermost first."""
    out, stride = [], 1
    for _, size in dims:
        stride *= size
    for label, size in dims:
        out.append(T["std_msgs/msg/MultiArrayDimension"](label=label, size=size, stride=stride))
        stride //= max(size, 1)
    return T["std_msgs/msg/MultiArrayLayout"](dim=out, data_offset=0)


def float32_array(data: npt.ArrayLike, dims: Sequence[tuple[str, int]] = ()) -> Any:
    return T["std_msgs/msg/Float32MultiArray"](
        layout=multi_array_layout(dims), data=np.asarray(data, dtype=np.float32)
    )


def float64_array(data: npt.ArrayLike, dims: Sequence[tuple[str, int]] = ()) -> Any:
    return T["std_msgs/msg/Float64MultiArray"](
        layout=multi_array_layout(dims), data=np.asarray(data, dtype=np.float64)
    )


def string(text: str) -> Any:
    return T["std_msgs/msg/String"](data=text)


def clock(ns: int) -> Any:
    return T["rosgraph_msgs/msg/Clock"](clock=stamp(ns))


class BagWriter:
    """A rosbag2 being written. Use as a context manager; topics are added on first write or explicitly.

    >>> with BagWriter("out/ep0", storage="mcap") as bag:
    ...     bag.write("/cmd_vel", 1_000_000, twist((0.1, 0, 0), (0, 0, 0)), "geometry_msgs/msg/Twist")
    """

    def __init__(
        self,
        path: str | Path,
        storage: str = "mcap",
        compress: bool = False,
        custom_data: Mapping[str, str] | None = None,
    ) -> None:
        """`custom_data`: string entries for metadata.yaml's custom_data (e.g. data.recording.KIND_KEY)."""
        if storage not in STORAGES:
            raise VandError(f"unknown bag storage {storage!r}; expected one of {sorted(STORAGES)}")
        self.path = Path(path)
        if self.path.exists():
            raise VandError(
                f"{self.path} already exists; rosbag2 writes a new directory, choose another --out"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=STORAGES[storage])
        if compress:
            self._writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(key, value)
        self._connections: dict[str, Any] = {}
        self.count = 0

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._writer.close()

    def add_topic(self, topic: str, msgtype: str) -> None:
        if topic in self._connections:
            if self._connections[topic].msgtype != msgtype:
                raise VandError(
                    f"topic {topic} was added as {self._connections[topic].msgtype}, not {msgtype}"
                )
            return
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=TYPESTORE)

    def write(self, topic: str, ns: int, msg: Any, msgtype: str | None = None) -> None:
        """Serialise `msg` (a rosbags message object) and write it with receive time `ns`."""
        msgtype = msgtype or msg.__msgtype__
        self.write_raw(topic, ns, bytes(TYPESTORE.serialize_cdr(msg, msgtype)), msgtype)

    def write_raw(self, topic: str, ns: int, data: bytes, msgtype: str) -> None:
        """Write already-serialised CDR bytes (e.g. exactly what arrived over DDS)."""
        self.add_topic(topic, msgtype)
        self._writer.write(self._connections[topic], int(ns), data)
        self.count += 1
