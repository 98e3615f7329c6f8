"""Finding and opening rosbag2 recordings (MCAP or sqlite3, optionally zstd-compressed) with `rosbags`.

No ROS install is needed. Every problem with a bag is a `BagError`: a `VandError` that names the file, the
topic and what to do, so the builder can skip the bag with a warning (or stop, with `--strict`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from vand_ros.errors import VandError

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
BAG_FILE_SUFFIXES = (".mcap", ".db3")

# What each configured topic may carry.
EXPECTED_TYPES: dict[str, tuple[str, ...]] = {
    "joint_states": ("sensor_msgs/msg/JointState",),
    "odom": ("nav_msgs/msg/Odometry",),
    "features": ("std_msgs/msg/Float32MultiArray",),
    "instruction": ("std_msgs/msg/String",),
    "arm_command": ("std_msgs/msg/Float64MultiArray",),
    "cmd_vel": ("geometry_msgs/msg/Twist", "geometry_msgs/msg/TwistStamped"),
}

HINT_UNREADABLE = (
    "check it with `ros2 bag info`; if the recording was interrupted, `ros2 bag reindex` (or `mcap recover` "
    "for MCAP) may repair it; otherwise re-record it or leave it out"
)


class BagError(VandError):
    """A bag that cannot be used, and why: names the file, the topic and what to do."""

    def __init__(self, path: str | Path, topic: str, problem: str, hint: str, kind: str = "invalid") -> None:
        self.path = str(path)
        self.topic = topic
        self.problem = problem
        self.hint = hint
        self.kind = kind  # short category for summaries: unreadable, empty, missing-topic, message, ...
        where = f"{self.path}" + (f", topic {topic}" if topic else "")
        super().__init__(f"{where}: {problem}. What to do: {hint}")


def find_bags(paths: Iterable[str | Path]) -> list[Path]:
    """Bags named by `paths`: bag directories (with metadata.yaml), single .mcap/.db3 files, or folders
    searched recursively for either. Sorted, without duplicates."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise VandError(
                f"{p} does not exist; pass rosbag2 directories, .mcap/.db3 files or folders of them"
            )
        if p.is_file():
            if p.suffix not in BAG_FILE_SUFFIXES and p.name != "metadata.yaml":
                raise VandError(f"{p} is not a rosbag2 file (expected a directory, .mcap or .db3)")
            out.append(p.parent if p.name == "metadata.yaml" else p)
        elif (p / "metadata.yaml").is_file():
            out.append(p)
        else:
            found = _search(p)
            if not found:
                raise VandError(
                    f"{p} holds no rosbag2 recording (no metadata.yaml, .mcap or .db3 below it); "
                    "record demonstrations with `vand-ros demos` or `ros2 bag record`"
                )
            out += found
    seen: set[Path] = set()
    unique = []
    for b in out:
        key = b.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(b)
    return sorted(unique)


def _search(root: Path) -> list[Path]:
    bags = sorted(m.parent for m in root.rglob("metadata.yaml"))
    inside = {b.resolve() for b in bags}
    for suffix in BAG_FILE_SUFFIXES:
        for f in sorted(root.rglob(f"*{suffix}")):
            if not any(parent.resolve() in inside for parent in f.parents):
                bags.append(f)
    return bags


def bag_files(bag: Path) -> list[Path]:
    """The files that make up a bag (for content hashing)."""
    if bag.is_file():
        return [bag]
    return sorted(f for f in bag.rglob("*") if f.is_file())


@dataclass(frozen=True)
class TopicInfo:
    topic: str
    msgtype: str
    count: int


class BagSource:
    """An open bag with its topics checked against the configuration's. Use as a context manager."""

    def __init__(self, path: str | Path, topics: dict[str, str], optional: Sequence[str] = ()) -> None:
        """`topics` maps a role (joint_states, odom, ...) to its topic; `optional` roles may be absent."""
        self.path = Path(path)
        self.roles = {role: name for role, name in topics.items() if name}
        self.optional = set(optional)
        self._reader: Any = None
        self.connections: dict[str, list[Any]] = {}  # role -> connections
        self.message_count = 0
        self.start_ns = 0
        self.end_ns = 0

    def __enter__(self) -> BagSource:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        from vand_ros.data.recording import needs_repair

        if needs_repair(self.path):
            raise BagError(
                self.path,
                "",
                "the recording was not finished (its recorder was stopped or crashed mid-run)",
                f"run `vand-ros bag repair {self.path}` (vand-ros dataset does it unless --no-repair)",
                "unfinished",
            )
        try:
            reader = Reader(self.path)
            reader.open()
        except Exception as err:
            raise BagError(
                self.path,
                "",
                f"cannot open the bag ({type(err).__name__}: {err})",
                HINT_UNREADABLE,
                "unreadable",
            ) from None
        self._reader = reader
        try:
            self.message_count = int(reader.message_count)
            self.start_ns, self.end_ns = int(reader.start_time), int(reader.end_time)
        except Exception:
            self.message_count = 0
        if self.message_count == 0:
            self.close()
            raise BagError(
                self.path,
                "",
                "the bag holds no messages",
                "record the demonstration again (check that the recorder subscribes to the robot's "
                "topics) or leave it out",
                "empty",
            )
        present = {c.topic: c for c in reader.connections}
        for role, name in self.roles.items():
            conns = [c for c in reader.connections if c.topic == name]
            if not conns:
                if role in self.optional:
                    continue
                self.close()
                have = sorted(f"{t} ({c.msgtype})" for t, c in present.items())
                raise BagError(
                    self.path,
                    name,
                    f"the topic is missing (the bag has {have})",
                    f"record {name} ({' or '.join(EXPECTED_TYPES[role])}), or set topics.{role} in the "
                    "configuration to the topic that carries it",
                    "missing-topic",
                )
            for c in conns:
                if c.msgtype not in EXPECTED_TYPES[role]:
                    self.close()
                    raise BagError(
                        self.path,
                        name,
                        f"the topic carries {c.msgtype}, expected {' or '.join(EXPECTED_TYPES[role])}",
                        f"set topics.{role} in the configuration to a topic of the expected type",
                        "wrong-type",
                    )
            self.connections[role] = conns

    def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            finally:
                self._reader = None

    def topic_counts(self) -> dict[str, int]:
        return {c.topic: int(c.msgcount) for conns in self.connections.values() for c in conns}

    def messages(self) -> Iterator[tuple[Any, int, bytes]]:
        """(connection, receive time [ns], raw CDR) of the configured topics, in receive-time order.

        Errors while reading (a corrupt or truncated file) become `BagError`s.
        """
        wanted = [c for conns in self.connections.values() for c in conns]
        try:
            yield from self._reader.messages(connections=wanted)
        except BagError:
            raise
        except Exception as err:
            raise BagError(
                self.path,
                "",
                f"the bag cannot be read to the end ({type(err).__name__}: {err})",
                HINT_UNREADABLE,
                "unreadable",
            ) from None


def deserialize(raw: bytes, msgtype: str) -> Any:
    """rosbags deserialisation (the reference the fast CDR parsers are checked against)."""
    return TYPESTORE.deserialize_cdr(raw, msgtype)
