"""`vand-ros bench data`: dataset-builder throughput vs a bare rosbags read-and-deserialise loop.

For an MCAP and a sqlite3 bag of at least `--messages` messages (synthetic, with the simulation's topics and
rates, written to a temporary directory), measured side by side in one run, repeats interleaved, medians:

- raw: rosbags read only (no deserialisation), for context;
- bare: rosbags read + `deserialize_cdr` of every message (the reference);
- builder: `extract_bag` (read, parse the needed fields, validate, resample, episodes), fast CDR parsing;
- builder_rosbags: the same with rosbags deserialisation instead of the fast parsers.

Throughput is the bag's message count divided by the wall time [msg/s]. Goal: builder >= 0.5x bare.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import Reader

from vand_ros.benchmarks import report
from vand_ros.data.builder import extract_bag
from vand_ros.data.config import DataConfig
from vand_ros.data.reader import TYPESTORE
from vand_ros.data.synthetic import seconds_for_messages, write_demo_bag


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=100_000, help="messages per bag (at least)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per variant (median)")
    parser.add_argument("--compress", action="store_true", help="zstd-compress the bags (per message)")
    parser.add_argument("--dir", type=Path, default=None, help="write the bags here (default: a temp dir)")


def bare_loop(path: Path) -> int:
    """rosbags read + full deserialisation of every message; returns the count."""
    n = 0
    deserialize = TYPESTORE.deserialize_cdr
    with Reader(path) as reader:
        for conn, _t, raw in reader.messages():
            deserialize(raw, conn.msgtype)
            n += 1
    return n


def raw_loop(path: Path) -> int:
    n = 0
    with Reader(path) as reader:
        for _ in reader.messages():
            n += 1
    return n


def measure(path: Path, repeats: int) -> dict[str, Any]:
    fast, slow = DataConfig(), DataConfig(fast_cdr=False)
    with Reader(path) as reader:
        count = int(reader.message_count)
    variants: dict[str, Callable[[], object]] = {
        "raw": lambda: raw_loop(path),
        "bare": lambda: bare_loop(path),
        "builder": lambda: extract_bag(path, fast),
        "builder_rosbags": lambda: extract_bag(path, slow),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    rates = {k: count / statistics.median(v) for k, v in times.items()}
    episodes = extract_bag(path, fast).episodes
    return {
        "messages": count,
        "msgs_per_s": rates,
        "seconds": {k: statistics.median(v) for k, v in times.items()},
        "ratio_builder_vs_bare": rates["builder"] / rates["bare"],
        "ratio_builder_rosbags_vs_bare": rates["builder_rosbags"] / rates["bare"],
        "ticks": sum(len(e) for e in episodes),
    }


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="vand_bench_data_") as tmp:
        root = args.dir or Path(tmp)
        seconds = seconds_for_messages(args.messages) * 1.01
        results: dict[str, Any] = {"messages_requested": args.messages, "compress": args.compress, "bags": {}}
        rows = []
        for storage in ("mcap", "sqlite3"):
            path = root / f"bench_{storage}{'_zstd' if args.compress else ''}"
            if not path.exists():
                write_demo_bag(path, seconds, "wipe", storage=storage, compress=args.compress)
            res = measure(path, args.repeats)
            results["bags"][storage] = res
            r = res["msgs_per_s"]
            rows.append(
                {
                    "storage": storage + (" zstd" if args.compress else ""),
                    "messages": res["messages"],
                    "raw msg/s": r["raw"],
                    "bare msg/s": r["bare"],
                    "builder msg/s": r["builder"],
                    "builder/bare": res["ratio_builder_vs_bare"],
                    "builder(rosbags)/bare": res["ratio_builder_rosbags_vs_bare"],
                }
            )
        report("data", results, rows)
    return 0
