"""`vand-ros bag repair DIR...`: make recordings that were cut short readable (as `ros2 bag reindex`).

A recorder killed mid-run (SIGKILL, an OOM kill, a power cut) leaves its open MCAP file without the summary
that readers need. Repair recovers every whole message of such a file into a finished one (keeping the
original beside it as `<file>.unfinished`) and rewrites metadata.yaml from the files. `vand-ros dataset`
does the same before it reads a recording. Exit status 1 when a bag cannot be repaired.
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


def run(args: argparse.Namespace) -> int:
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
