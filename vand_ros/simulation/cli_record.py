"""`vand-ros record --out DIR`: record the robot's topics over DDS into a rosbag2 (recorder_node).

The bag is MCAP, written to survive the recorder (see `simulation.recorder`): metadata from the start,
flushed every second, split by `--max-bag-duration` / `--max-bag-size` as `ros2 bag record` does.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="directory of the new bag (must not exist)")
    parser.add_argument("--compress", action="store_true", help="zstd per message")
    parser.add_argument(
        "--duration", type=float, default=0.0, help="sim seconds from the first message (0: Ctrl-C)"
    )
    parser.add_argument(
        "--max-bag-duration", type=float, default=0.0, help="new file after this many seconds (0: never)"
    )
    parser.add_argument(
        "--max-bag-size", type=int, default=0, help="start a new file at this many bytes (0: never)"
    )
    parser.add_argument("--with-clock", action="store_true", help="also record /clock")
    parser.add_argument("--no-sim-time", action="store_true", help="stamp with the wall clock, not /clock")
    parser.add_argument(
        "--episode-kind",
        default="",
        help="how the demonstration is made (e.g. clean, recovery), kept in the bag's metadata; the copycat "
        "diagnostic reports each kind apart",
    )


def run(args: argparse.Namespace) -> int:
    from vand_ros.simulation import recorder

    ros = [
        "--ros-args",
        "-p", f"out:={args.out!r}",
        "-p", f"compress:={str(args.compress).lower()}",
        "-p", f"duration:={args.duration}",
        "-p", f"max_bag_duration:={args.max_bag_duration}",
        "-p", f"max_bag_size:={args.max_bag_size}",
        "-p", f"with_clock:={str(args.with_clock).lower()}",
        "-p", f"use_sim_time:={str(not args.no_sim_time).lower()}",
        "-p", f"episode_kind:={args.episode_kind!r}",
    ]  # fmt: skip
    return recorder.main(["vand-ros-record", *ros])
