"""`vand-ros bag repair DIR...` and `vand-ros bag kind DIR... [--set KIND]`: mend and label recordings.

`repair` makes recordings that were cut short readable (as `ros2 bag reindex`). A recorder killed mid-run
(SIGKILL, an OOM kill, a power cut) leaves its open MCAP file without the summary that readers need.
Repair recovers every whole message of such a file into a finished one (keeping the original beside it as
`<file>.unfinished`) and rewrites metadata.yaml from the files, keeping its custom_data. `vand-ros
dataset` does the same before it reads a recording. Exit status 1 when a bag cannot be repaired.

`kind` prints how each recording's demonstration was made (metadata.yaml custom_data
`vand_ros.episode_kind`: `vand-ros demos` writes clean, recovery, switch, ...), or with `--set KIND` labels
recordings made without it (e.g. the corrective demonstrations recorded on a robot: `--set recovery`). The
dataset keeps the kind on every episode and the copycat diagnostic reports each kind apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vand_ros.errors import VandError


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    repair = sub.add_parser("repair", help="recover unfinished recordings (MCAP bag directories)")
    repair.add_argument("bags", nargs="+", type=Path, metavar="DIR", help="bag directories")
    kind = sub.add_parser("kind", help="show, or --set, how each recording's demonstration was made")
    kind.add_argument("bags", nargs="+", type=Path, metavar="DIR", help="bag directories")
    kind.add_argument("--set", metavar="KIND", help="label the bags (e.g. clean, recovery, switch+recovery)")


def run(args: argparse.Namespace) -> int:
    if args.action == "kind":
        return _kind(args.bags, args.set)
    from vand_ros.data.recording import needs_repair, repair

    code = 0
    for bag in args.bags:
        try:
            if not needs_repair(bag):
                print(f"{bag}: finished, nothing to repair")
                continue
            print(repair(bag).describe())
        except VandError as err:
            print(f"error: {err}", file=sys.stderr)
            code = 1
    return code


def _kind(bags: list[Path], new: str | None) -> int:
    from vand_ros.data.recording import check_kind, episode_kind, set_episode_kind

    if new is not None:
        try:
            check_kind(new)
        except VandError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    code = 0
    for bag in bags:
        try:
            if not (bag / "metadata.yaml").is_file():
                raise VandError(f"{bag} is not a rosbag2 directory (no metadata.yaml)")
            if new is not None:
                set_episode_kind(bag, new)
            print(f"{bag}: {episode_kind(bag) or 'unknown'}")
        except VandError as err:
            print(f"error: {err}", file=sys.stderr)
            code = 1
    return code
