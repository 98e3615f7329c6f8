"""A rosbag2 recording that survives its recorder: split MCAP files, metadata from the start, and repair.

rosbag2's own answers are the model. The bag directory holds `<name>_<i>.mcap` files, a new one whenever
the open file spans `max_duration` seconds or reaches `max_size` bytes (`ros2 bag record
--max-bag-duration / --max-bag-size`; 0 = never). `metadata.yaml` exists from the first moment and is
rewritten atomically whenever a file is finished; while the recording runs it lists the finished files
only, so every finished part opens with rosbags and `ros2 bag` at any time, and its custom_data says
`vand_ros.recording: in_progress`. The open file is flushed to the kernel every `flush()` (the recorder
calls it once a second), so a recorder killed with SIGKILL loses at most what arrived since.

`repair(DIR)` (`vand-ros bag repair DIR`, and `vand-ros dataset` before it reads a bag) is `ros2 bag
reindex` for such a directory: it recovers the messages of every unfinished file into a finished one
(the original is kept beside it as `<file>.unfinished`) and rewrites metadata.yaml from the files.

A bag may also say how its demonstration was made, in custom_data `vand_ros.episode_kind` (`clean`,
`recovery`, `switch`, `switch+recovery` from `vand-ros demos`; any word a user chooses with `vand-ros bag
kind` or the recorder's `episode_kind`). The dataset keeps it on every episode, and the copycat diagnostic
reports each kind apart (a recovery demonstration's targets hold noise no policy can predict).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from vand_ros.data.bag_writer import TYPESTORE
from vand_ros.data.mcap_stream import McapStream, ScanResult, scan, zstd
from vand_ros.errors import VandError

STATE_KEY = "vand_ros.recording"  # in metadata.yaml custom_data: in_progress | complete | repaired
KIND_KEY = "vand_ros.episode_kind"  # in metadata.yaml custom_data: how the demonstration was made
KIND_PATTERN = re.compile(r"[a-z0-9_]+(\+[a-z0-9_]+)*")  # clean, recovery, switch+recovery, ...
UNFINISHED_SUFFIX = ".unfinished"
BAG_VERSION = 9  # rosbag2 metadata version (Jazzy and later; rosbags reads 1-9)


@dataclass(frozen=True)
class Topic:
    name: str
    msgtype: str
    msgdef: str
    encoding: str  # ros2msg | ros2idl
    rihs01: str


@dataclass
class FileInfo:
    path: str  # relative to the bag directory
    start_ns: int
    end_ns: int
    counts: dict[str, int] = field(default_factory=dict)  # topic -> messages

    @property
    def message_count(self) -> int:
        return sum(self.counts.values())


def _topic(name: str, msgtype: str) -> Topic:
    try:
        msgdef, _ = TYPESTORE.generate_msgdef(msgtype, ros_version=2)
        rihs01 = TYPESTORE.hash_rihs01(msgtype)
    except Exception as err:
        raise VandError(f"topic {name}: unknown message type {msgtype!r} ({err})") from None
    encoding = "ros2idl" if msgdef.startswith("=" * 80 + "\nIDL: ") else "ros2msg"
    return Topic(name, msgtype, msgdef, encoding, rihs01)


class RecordingBag:
    """A rosbag2 directory being recorded (MCAP). Add topics, write raw CDR, `flush()` often, `close()`."""

    def __init__(
        self,
        path: str | Path,
        max_duration: float = 0.0,
        max_size: int = 0,
        compress: bool = False,
        episode_kind: str = "",
    ) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise VandError(f"{self.path} already exists; a recording goes to a new directory")
        if max_duration < 0 or max_size < 0:
            raise VandError("max_duration and max_size must be >= 0 (0: do not split)")
        self.custom = {KIND_KEY: check_kind(episode_kind)} if episode_kind else {}
        self.path.mkdir(parents=True)
        self.max_duration_ns = int(max_duration * 1e9)
        self.max_size = int(max_size)
        self.compress = compress
        self.topics: dict[str, Topic] = {}
        self.finished: list[FileInfo] = []
        self.count = 0
        self._file: McapStream | None = None
        self._info: FileInfo | None = None
        self._channels: dict[str, int] = {}
        self._open_next()
        write_metadata(self.path, self.finished, self.topics, "in_progress", compress, self.custom)

    def _open_next(self) -> None:
        name = f"{self.path.name}_{len(self.finished)}.mcap"
        self._file = McapStream(self.path / name)
        self._info = FileInfo(name, 0, 0)
        self._channels = {}
        for topic in self.topics.values():
            self._add_channel(topic)
        self._file.flush()

    def _add_channel(self, topic: Topic) -> None:
        assert self._file is not None
        sid = next((s.id for s in self._file.schemas if s.name == topic.msgtype), 0)
        sid = sid or self._file.add_schema(topic.msgtype, topic.encoding, topic.msgdef.encode())
        meta = {"offered_qos_profiles": "[]", "topic_type_hash": topic.rihs01}
        self._channels[topic.name] = self._file.add_channel(topic.name, sid, "cdr", meta)

    def add_topic(self, name: str, msgtype: str) -> None:
        if name in self.topics:
            if self.topics[name].msgtype != msgtype:
                raise VandError(f"topic {name} was added as {self.topics[name].msgtype}, not {msgtype}")
            return
        self.topics[name] = _topic(name, msgtype)
        self._add_channel(self.topics[name])

    def write_raw(self, topic: str, ns: int, data: bytes, msgtype: str) -> None:
        """Write already-serialised CDR bytes received at time `ns`."""
        self.add_topic(topic, msgtype)
        assert self._file is not None and self._info is not None
        if self._file.message_count and self._should_split(ns):
            self._finish_file()
            self._open_next()
        if self.compress:
            data = zstd().compress(data)
        self._file.write(self._channels[topic], int(ns), data)
        info = self._info
        info.start_ns = ns if not info.counts else min(info.start_ns, ns)
        info.end_ns = max(info.end_ns, ns)
        info.counts[topic] = info.counts.get(topic, 0) + 1
        self.count += 1

    def _should_split(self, ns: int) -> bool:
        assert self._file is not None and self._info is not None
        by_time = self.max_duration_ns > 0 and ns - self._info.start_ns >= self.max_duration_ns
        by_size = self.max_size > 0 and self._file.size >= self.max_size
        return by_time or by_size

    def _finish_file(self) -> None:
        assert self._file is not None and self._info is not None
        self._file.close({"serialized_metadata": ""})
        self.finished.append(self._info)
        write_metadata(self.path, self.finished, self.topics, "in_progress", self.compress, self.custom)

    def flush(self, fsync: bool = False) -> None:
        """Everything written so far reaches the kernel (and the disk, with `fsync`)."""
        if self._file is not None:
            self._file.flush(fsync)

    def close(self) -> None:
        """Finish the open file (kept only if it holds messages) and the metadata."""
        if self._file is None:
            return
        file, info = self._file, self._info
        assert info is not None
        self._file = None
        if file.message_count or not self.finished:
            file.close({"serialized_metadata": ""})
            self.finished.append(info)
        else:  # opened by a split just before the stop: nothing in it
            file.abort()
            (self.path / info.path).unlink()
        write_metadata(self.path, self.finished, self.topics, "complete", self.compress, self.custom)

    def abort(self) -> None:
        """Stop without finishing anything: what a crash leaves (for tests)."""
        if self._file is not None:
            self._file.abort()
            self._file = None


def write_metadata(
    bag: Path,
    files: list[FileInfo],
    topics: dict[str, Topic],
    state: str,
    compress: bool = False,
    custom: dict[str, str] | None = None,
) -> None:
    """metadata.yaml (rosbag2 version 9) for `files`, written atomically (a temporary file, then rename);
    custom_data holds the recording `state` and the entries of `custom`."""
    counts: dict[str, int] = {}
    for f in files:
        for name, n in f.counts.items():
            counts[name] = counts.get(name, 0) + n
    used = [f for f in files if f.message_count]
    start = min((f.start_ns for f in used), default=0)
    end = max((f.end_ns for f in used), default=0)
    info = {
        "version": BAG_VERSION,
        "storage_identifier": "mcap",
        "relative_file_paths": [f.path for f in files],
        "duration": {"nanoseconds": end - start},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": sum(counts.values()),
        "topics_with_message_count": [
            {
                "topic_metadata": {
                    "name": t.name,
                    "type": t.msgtype,
                    "serialization_format": "cdr",
                    "offered_qos_profiles": [],
                    "type_description_hash": t.rihs01,
                },
                "message_count": counts.get(t.name, 0),
            }
            for t in topics.values()
        ],
        "compression_format": "zstd" if compress else "",
        "compression_mode": "message" if compress else "",
        "files": [
            {
                "path": f.path,
                "starting_time": {"nanoseconds_since_epoch": f.start_ns},
                "duration": {"nanoseconds": f.end_ns - f.start_ns},
                "message_count": f.message_count,
            }
            for f in files
        ],
        "custom_data": {**(custom or {}), STATE_KEY: state},
        "ros_distro": "vand_ros",
    }
    _dump_metadata(bag, info)


def _dump_metadata(bag: Path, info: dict[str, Any]) -> None:
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    text = StringIO()
    yaml.dump({"rosbag2_bagfile_information": info}, text)
    tmp = bag / "metadata.yaml.tmp"
    tmp.write_text(text.getvalue(), encoding="utf-8")
    os.replace(tmp, bag / "metadata.yaml")


def read_metadata(bag: Path) -> dict[str, Any]:
    """The rosbag2_bagfile_information of a bag directory ({} when it has no metadata.yaml)."""
    path = bag / "metadata.yaml"
    if not path.is_file():
        return {}
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
    return dict(data.get("rosbag2_bagfile_information") or {})


def recording_state(bag: Path) -> str:
    """in_progress | complete | repaired for a bag this package recorded; "" for any other bag."""
    return str((read_metadata(bag).get("custom_data") or {}).get(STATE_KEY, ""))


def check_kind(kind: str) -> str:
    """`kind` if it is a valid episode kind (lower-case words joined by '+'), else a VandError."""
    if not KIND_PATTERN.fullmatch(kind):
        raise VandError(
            f"episode kind {kind!r}: expected lower-case words (letters, digits, _) joined by '+', "
            "e.g. clean, recovery or switch+recovery"
        )
    return kind


def episode_kind(bag: Path) -> str:
    """How the bag's demonstration was made (custom_data vand_ros.episode_kind); "" when it does not say."""
    return str((read_metadata(bag).get("custom_data") or {}).get(KIND_KEY, ""))


def set_episode_kind(bag: Path, kind: str) -> None:
    """Write `kind` into the bag directory's metadata.yaml (atomically; everything else is kept)."""
    check_kind(kind)
    info = read_metadata(bag)
    if not info:
        raise VandError(f"{bag} has no metadata.yaml: not a finished rosbag2 directory")
    if needs_repair(bag):
        raise VandError(f"{bag} was not finished by its recorder; run `vand-ros bag repair {bag}` first")
    info["custom_data"] = {**(info.get("custom_data") or {}), KIND_KEY: kind}
    _dump_metadata(bag, info)


def needs_repair(bag: Path) -> bool:
    """True for a bag directory whose recorder never finished it: metadata says in progress, or an MCAP
    file in it is not listed in the metadata."""
    if not bag.is_dir():
        return False
    meta = read_metadata(bag)
    if not meta and not any(bag.glob("*.mcap")):
        return False
    listed = set(meta.get("relative_file_paths") or [])
    unlisted = [p for p in bag.glob("*.mcap") if p.name not in listed]
    return recording_state(bag) == "in_progress" or bool(unlisted) or not meta


@dataclass
class RepairReport:
    bag: Path
    recovered: list[tuple[str, int, str]]  # (file, messages recovered, why it was unfinished)
    files: list[FileInfo]

    @property
    def message_count(self) -> int:
        return sum(f.message_count for f in self.files)

    def describe(self) -> str:
        lines = [f"{self.bag}: {len(self.files)} file(s), {self.message_count} messages"]
        for name, n, why in self.recovered:
            lines.append(f"  {name}: recovered {n} messages ({why}); the original is kept as "
                         f"{name}{UNFINISHED_SUFFIX}")  # fmt: skip
        return "\n".join(lines)


def _index(name: str) -> tuple[int, str]:
    m = re.search(r"_(\d+)\.mcap$", name)
    return (int(m.group(1)) if m else 0, name)


def repair(bag: str | Path) -> RepairReport:
    """Make an unfinished recording readable: recover unfinished MCAP files, rewrite metadata.yaml."""
    bag = Path(bag)
    if not bag.is_dir():
        raise VandError(f"{bag} is not a bag directory")
    if any(bag.glob("*.db3")):
        raise VandError(
            f"{bag} is a sqlite3 bag: sqlite keeps its own journal; open it with `ros2 bag reindex` "
            "if its metadata is lost (this repair handles MCAP recordings)"
        )
    files = sorted(bag.glob("*.mcap"), key=lambda p: _index(p.name))
    if not files:
        raise VandError(f"{bag} holds no .mcap file to repair")
    meta = read_metadata(bag)
    compress = meta.get("compression_mode") == "message"
    topics: dict[str, Topic] = {}
    infos: list[FileInfo] = []
    recovered: list[tuple[str, int, str]] = []
    for path in files:
        result = scan(path)
        if not result.finished:
            n = _rewrite(path, result)
            recovered.append((path.name, n, result.problem or "no footer"))
            if not n:
                continue
            result = scan(path)
        infos.append(_file_info(path.name, result, topics))
    if not infos:
        raise VandError(f"{bag}: no message could be recovered from {', '.join(p.name for p in files)}")
    kept = {k: str(v) for k, v in (meta.get("custom_data") or {}).items() if k != STATE_KEY}
    write_metadata(bag, infos, topics, "repaired", compress, kept)
    return RepairReport(bag, recovered, infos)


def _file_info(name: str, result: ScanResult, topics: dict[str, Topic]) -> FileInfo:
    info = FileInfo(name, 0, 0)
    for ch in result.channels.values():
        schema = result.schemas.get(ch.schema_id)
        if ch.topic not in topics and schema is not None:
            topics[ch.topic] = Topic(ch.topic, schema.name, schema.data.decode(), schema.encoding,
                                     ch.metadata.get("topic_type_hash", ""))  # fmt: skip
    times = [t for _, t, _ in result.messages]
    if times:
        info.start_ns, info.end_ns = min(times), max(times)
    for cid, _, _ in result.messages:
        topic = result.channels[cid].topic
        info.counts[topic] = info.counts.get(topic, 0) + 1
    return info


def _rewrite(path: Path, result: ScanResult) -> int:
    """Move an unfinished file aside and write its whole messages into a finished file of the same name."""
    keep = [(cid, t, d) for cid, t, d in result.messages if cid in result.channels]
    backup = path.with_name(path.name + UNFINISHED_SUFFIX)
    os.replace(path, backup)
    if not keep:
        return 0
    out = McapStream(path)
    ids: dict[int, int] = {}
    schema_ids: dict[int, int] = {}
    for cid, ch in sorted(result.channels.items()):
        schema = result.schemas.get(ch.schema_id)
        if schema is None:
            continue
        if ch.schema_id not in schema_ids:
            schema_ids[ch.schema_id] = out.add_schema(schema.name, schema.encoding, schema.data)
        ids[cid] = out.add_channel(ch.topic, schema_ids[ch.schema_id], ch.encoding, ch.metadata)
    n = 0
    for cid, t, data in keep:
        if cid in ids:
            out.write(ids[cid], t, data)
            n += 1
    out.close({"serialized_metadata": ""})
    return n
