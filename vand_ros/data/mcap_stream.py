"""MCAP files that survive a crash: a streaming writer that is readable up to its last flush, and a scanner
that recovers the messages of a file whose writer never closed it.

A finished file has the layout rosbag2 and rosbags write (MCAP spec v0, profile `ros2`): magic, header,
schema and channel records, chunks each followed by its message indexes, data end, then a summary
(schemas, channels, chunk indexes, the `rosbag2` metadata record's index, statistics, summary offsets) and
the footer. rosbags (and `ros2 bag`) read a file only through its summary, which a killed writer never
writes; so the writer here closes a chunk and hands it to the kernel on every `flush()`, and `scan` reads
an unfinished file record by record up to the first incomplete one (the work of `ros2 bag reindex` and
`mcap recover`). Everything this module writes or reads is checked against rosbags' reader in the tests.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

MAGIC = b"\x89MCAP0\r\n"
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_MESSAGE_INDEX = 1, 2, 3, 4, 5, 6, 7
OP_CHUNK_INDEX, OP_STATISTICS, OP_METADATA, OP_METADATA_INDEX, OP_SUMMARY_OFFSET, OP_DATA_END = (
    8, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F,
)  # fmt: skip
CHUNK_BYTES = 1 << 20  # a chunk is closed at this size even between flushes (as rosbags does)
NO_TIME = 2**63 - 1


def zstd() -> Any:
    """The zstd module rosbags uses (the standard library's from Python 3.14, its backport before)."""
    try:
        from compression import zstd as module  # type: ignore[import-not-found]
    except ImportError:
        from backports import zstd as module  # type: ignore[import-not-found,no-redef]
    return module


def _u16(v: int) -> bytes:
    return struct.pack("<H", v)


def _u32(v: int) -> bytes:
    return struct.pack("<I", v)


def _u64(v: int) -> bytes:
    return struct.pack("<Q", v)


def _string(s: str) -> bytes:
    b = s.encode()
    return _u32(len(b)) + b


def _string_map(m: dict[str, str]) -> bytes:
    body = b"".join(_string(k) + _string(v) for k, v in sorted(m.items()))
    return _u32(len(body)) + body


def _record(op: int, body: bytes) -> bytes:
    return bytes((op,)) + _u64(len(body)) + body


@dataclass(frozen=True)
class Schema:
    id: int
    name: str  # the message type, e.g. sensor_msgs/msg/JointState
    encoding: str  # ros2msg | ros2idl
    data: bytes  # the message definition

    def record(self) -> bytes:
        return _record(OP_SCHEMA, _u16(self.id) + _string(self.name) + _string(self.encoding)
                       + _u32(len(self.data)) + self.data)  # fmt: skip


@dataclass(frozen=True)
class Channel:
    id: int
    schema_id: int
    topic: str
    encoding: str  # cdr
    metadata: dict[str, str]

    def record(self) -> bytes:
        return _record(OP_CHANNEL, _u16(self.id) + _u16(self.schema_id) + _string(self.topic)
                       + _string(self.encoding) + _string_map(self.metadata))  # fmt: skip


@dataclass
class _Chunk:
    start: int = NO_TIME
    end: int = 0
    body: BytesIO = field(default_factory=BytesIO)
    index: dict[int, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))


class McapStream:
    """One MCAP file being written. Records reach the file at `flush()` (and whenever a chunk fills);
    `close()` writes the summary and footer that make it a finished file."""

    def __init__(self, path: str | Path, library: str = "vand_ros") -> None:
        self.path = Path(path)
        self._file = self.path.open("xb")
        self._file.write(MAGIC + _record(OP_HEADER, _string("ros2") + _string(library)))
        self.schemas: list[Schema] = []
        self.channels: list[Channel] = []
        self.counts: dict[int, int] = {}  # channel id -> messages
        self.start_ns, self.end_ns = NO_TIME, 0
        self._chunk = _Chunk()
        self._chunk_indexes: list[bytes] = []
        self.closed = False

    @property
    def message_count(self) -> int:
        return sum(self.counts.values())

    @property
    def size(self) -> int:
        """Bytes in the file so far, plus the open chunk."""
        return self._file.tell() + self._chunk.body.tell()

    def add_schema(self, name: str, encoding: str, data: bytes) -> int:
        schema = Schema(len(self.schemas) + 1, name, encoding, data)
        self.schemas.append(schema)
        self._file.write(schema.record())
        return schema.id

    def add_channel(self, topic: str, schema_id: int, encoding: str, metadata: dict[str, str]) -> int:
        channel = Channel(len(self.channels) + 1, schema_id, topic, encoding, dict(metadata))
        self.channels.append(channel)
        self.counts[channel.id] = 0
        self._chunk_flush()  # the channel record must precede its messages in the file
        self._file.write(channel.record())
        return channel.id

    def write(self, channel_id: int, log_time_ns: int, data: bytes) -> None:
        chunk = self._chunk
        chunk.start, chunk.end = min(chunk.start, log_time_ns), max(chunk.end, log_time_ns)
        chunk.index[channel_id].append((log_time_ns, chunk.body.tell()))
        chunk.body.write(_record(OP_MESSAGE, _u16(channel_id) + _u32(0) + _u64(log_time_ns)
                                 + _u64(log_time_ns) + data))  # fmt: skip
        self.counts[channel_id] += 1
        self.start_ns, self.end_ns = min(self.start_ns, log_time_ns), max(self.end_ns, log_time_ns)
        if chunk.body.tell() > CHUNK_BYTES:
            self._chunk_flush()

    def _chunk_flush(self) -> None:
        """Write the open chunk and its message indexes (nothing if it is empty)."""
        chunk = self._chunk
        if not chunk.body.tell():
            return
        records = chunk.body.getvalue()
        body = (_u64(chunk.start) + _u64(chunk.end) + _u64(len(records)) + _u32(zlib.crc32(records))
                + _string("") + _u64(len(records)) + records)  # fmt: skip
        chunk_start = self._file.tell()
        self._file.write(_record(OP_CHUNK, body))
        chunk_end = self._file.tell()
        offsets = []
        for cid, entries in sorted(chunk.index.items()):
            offsets.append((cid, self._file.tell()))
            pairs = b"".join(_u64(t) + _u64(o) for t, o in entries)
            self._file.write(_record(OP_MESSAGE_INDEX, _u16(cid) + _u32(len(pairs)) + pairs))
        offset_map = b"".join(_u16(cid) + _u64(o) for cid, o in offsets)
        self._chunk_indexes.append(_record(
            OP_CHUNK_INDEX,
            _u64(chunk.start) + _u64(chunk.end) + _u64(chunk_start) + _u64(chunk_end - chunk_start)
            + _u32(len(offset_map)) + offset_map + _u64(self._file.tell() - chunk_end) + _string("")
            + _u64(len(records)) + _u64(len(records)),
        ))  # fmt: skip
        self._chunk = _Chunk()

    def flush(self, fsync: bool = False) -> None:
        """Hand everything written so far to the kernel (it then survives a crash of this process);
        with `fsync`, to the disk (it then survives a power cut)."""
        self._chunk_flush()
        self._file.flush()
        if fsync:
            os.fsync(self._file.fileno())

    def close(self, metadata: dict[str, str] | None = None) -> None:
        """Finish the file: data end, summary, footer. `metadata` becomes the `rosbag2` metadata record."""
        self._chunk_flush()
        f = self._file
        meta_start = f.tell()
        f.write(_record(OP_METADATA, _string("rosbag2") + _string_map(metadata or {})))
        meta_end = f.tell()
        f.write(_record(OP_DATA_END, _u32(0)))
        groups: list[tuple[int, int, int]] = []  # (opcode, start, length) of each summary group

        def group(op: int, records: list[bytes]) -> None:
            if records:
                start = f.tell()
                f.write(b"".join(records))
                groups.append((op, start, f.tell() - start))

        summary_start = f.tell()
        group(OP_SCHEMA, [s.record() for s in self.schemas])
        group(OP_CHANNEL, [c.record() for c in self.channels])
        group(OP_CHUNK_INDEX, self._chunk_indexes)
        group(OP_METADATA_INDEX, [_record(OP_METADATA_INDEX, _u64(meta_start) + _u64(meta_end - meta_start)
                                          + _string("rosbag2"))])  # fmt: skip
        counts = b"".join(_u16(cid) + _u64(n) for cid, n in sorted(self.counts.items()))
        start, end = (self.start_ns, self.end_ns) if self.message_count else (0, 0)
        group(OP_STATISTICS, [_record(
            OP_STATISTICS,
            _u64(self.message_count) + _u16(len(self.schemas)) + _u32(len(self.channels)) + _u32(0)
            + _u32(1) + _u32(len(self._chunk_indexes)) + _u64(start) + _u64(end) + _u32(len(counts)) + counts,
        )])  # fmt: skip
        offsets_start = f.tell()
        for op, gstart, glen in groups:
            f.write(_record(OP_SUMMARY_OFFSET, bytes((op,)) + _u64(gstart) + _u64(glen)))
        f.write(_record(OP_FOOTER, _u64(summary_start) + _u64(offsets_start) + _u32(0)) + MAGIC)
        f.flush()
        os.fsync(f.fileno())
        f.close()
        self.closed = True

    def abort(self) -> None:
        """Stop writing without finishing the file (what a crash leaves; `scan` recovers it). A failing
        flush of what is still buffered (the disk is full) does not stop the abort: the file is closed."""
        if not self._file.closed:
            with contextlib.suppress(OSError):  # close() releases the descriptor even if its flush fails
                self._file.close()


@dataclass
class ScanResult:
    """What an MCAP file holds, read record by record."""

    schemas: dict[int, Schema]
    channels: dict[int, Channel]
    messages: list[tuple[int, int, bytes]]  # (channel id, log time [ns], data)
    finished: bool  # the footer was reached
    problem: str = ""  # why the scan stopped early ("" when it did not)
    bytes_read: int = 0


class _TruncatedError(Exception):
    pass


def _take(buf: memoryview, pos: int, n: int) -> tuple[memoryview, int]:
    if pos + n > len(buf):
        raise _TruncatedError
    return buf[pos : pos + n], pos + n


def _take_string(buf: memoryview, pos: int) -> tuple[str, int]:
    (n,), pos = struct.unpack("<I", _take(buf, pos, 4)[0]), pos + 4
    raw, pos = _take(buf, pos, n)
    return bytes(raw).decode(), pos


def _take_map(buf: memoryview, pos: int) -> tuple[dict[str, str], int]:
    (n,) = struct.unpack("<I", _take(buf, pos, 4)[0])
    end, pos = pos + 4 + n, pos + 4
    out = {}
    while pos < end:
        k, pos = _take_string(buf, pos)
        v, pos = _take_string(buf, pos)
        out[k] = v
    return out, pos


def _records(buf: memoryview) -> Iterator[tuple[int, memoryview, int]]:
    """(opcode, body, end offset) of each whole record in `buf`; stops at the first incomplete one."""
    pos = 0
    while pos < len(buf):
        head, body_pos = _take(buf, pos, 9)
        (length,) = struct.unpack("<Q", head[1:])
        body, pos = _take(buf, body_pos, length)
        yield head[0], body, pos


def scan(path: str | Path) -> ScanResult:
    """Read every whole record of an MCAP file, finished or not (chunks uncompressed or zstd)."""
    data = memoryview(Path(path).read_bytes())
    out = ScanResult({}, {}, [], finished=False)
    if bytes(data[:8]) != MAGIC:
        out.problem = "not an MCAP file (bad magic)" if len(data) >= 8 else "the file is empty"
        return out
    pos = 8
    try:
        for op, body, end in _records(data[8:]):
            if op == OP_FOOTER:
                out.finished = True
                pos = 8 + end
                break
            if op == OP_CHUNK:
                _scan_chunk(body, out)
            else:
                _scan_record(op, body, out)
            pos = 8 + end
    except _TruncatedError:
        out.problem = f"the file ends inside a record at byte {pos} of {len(data)}"
    except (ValueError, KeyError, UnicodeDecodeError, struct.error) as err:
        out.problem = f"a malformed record at byte {pos}: {err}"
    out.bytes_read = pos
    return out


def _scan_record(op: int, body: memoryview, out: ScanResult) -> None:
    if op == OP_SCHEMA:
        (sid,) = struct.unpack("<H", body[:2])
        name, p = _take_string(body, 2)
        enc, p = _take_string(body, p)
        (n,) = struct.unpack("<I", _take(body, p, 4)[0])
        out.schemas.setdefault(sid, Schema(sid, name, enc, bytes(_take(body, p + 4, n)[0])))
    elif op == OP_CHANNEL:
        cid, sid = struct.unpack("<HH", body[:4])
        topic, p = _take_string(body, 4)
        enc, p = _take_string(body, p)
        meta, p = _take_map(body, p)
        out.channels.setdefault(cid, Channel(cid, sid, topic, enc, meta))
    elif op == OP_MESSAGE:
        cid, _seq, log_time = struct.unpack("<HIQ", _take(body, 0, 14)[0])
        out.messages.append((cid, log_time, bytes(body[22:])))


def _scan_chunk(body: memoryview, out: ScanResult) -> None:
    _start, _end, usize, crc = struct.unpack("<QQQI", _take(body, 0, 28)[0])
    compression, p = _take_string(body, 28)
    (csize,) = struct.unpack("<Q", _take(body, p, 8)[0])
    records = bytes(_take(body, p + 8, csize)[0])
    if compression == "zstd":
        records = zstd().decompress(records)
    elif compression:
        raise ValueError(f"chunk compression {compression!r} is not supported")
    if len(records) != usize or (crc and zlib.crc32(records) != crc):
        raise ValueError("a chunk fails its size or CRC check")
    for op, rec, _ in _records(memoryview(records)):
        _scan_record(op, rec, out)
