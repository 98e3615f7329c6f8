"""`vand-ros`: the one command-line entry point.

Each subcommand lives in the layer it belongs to, as a module with two functions:

    configure(parser: argparse.ArgumentParser) -> None   # declare the arguments
    run(args: argparse.Namespace) -> int                  # do the work, return the exit status

Only the chosen subcommand's module is imported, so `vand-ros --help` and the ROS-only commands start
fast and never import torch or mujoco.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NamedTuple

from vand_ros import __version__
from vand_ros.errors import VandError


class Command(NamedTuple):
    module: str
    summary: str


COMMANDS: dict[str, Command] = {
    "sim": Command("vand_ros.simulation.cli_sim", "run the MuJoCo mobile manipulator as a ROS 2 robot"),
    "demos": Command("vand_ros.simulation.cli_demos", "generate scripted demonstrations as rosbag2 files"),
    "record": Command("vand_ros.simulation.cli_record", "record the robot's topics to a rosbag2 over DDS"),
    "bag": Command("vand_ros.data.cli_bag", "repair recordings that were cut short (bag repair DIR)"),
    "dataset": Command("vand_ros.data.cli", "turn rosbag2 demonstrations into a training dataset"),
    "train": Command("vand_ros.learning.cli_train", "train a VAND (or baseline) recurrent policy"),
    "export": Command("vand_ros.learning.cli_export", "export a trained policy to one ONNX file"),
    "copycat": Command("vand_ros.evaluation.copycat", "does an exported policy copy its measured joints?"),
    "run": Command("vand_ros.controller.cli", "run the realtime controller node (optionally with the sim)"),
    "evaluate": Command("vand_ros.evaluation.cli", "closed-loop comparison of regularisers in simulation"),
    "sweep": Command("vand_ros.evaluation.sweep", "which training design learns the behaviours (3 seeds)"),
    "bench": Command("vand_ros.evaluation.bench", "benchmarks: sim, data, train, node"),
    "demo": Command("vand_ros.evaluation.demo", "the whole pipeline on the built-in simulation"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vand-ros",
        description="Teach a mobile manipulator periodic and sequential behaviours from demonstrations.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="subcommands:\n"
        + "\n".join(f"  {name:<10} {cmd.summary}" for name, cmd in COMMANDS.items())
        + "\n\nRun `vand-ros SUBCOMMAND --help` for its options.",
    )
    parser.add_argument("--version", action="version", version=f"vand-ros {__version__}")
    parser.add_argument("command", choices=list(COMMANDS), metavar="SUBCOMMAND", help="what to do")
    return parser


def _load(name: str) -> object | None:
    """Import a subcommand's module; None where this version does not ship it."""
    module_name = COMMANDS[name].module
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:  # a missing dependency, not a missing subcommand: say which
            raise
        return None


def split_ros_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(our arguments, ROS arguments): everything from `--ros-args` on belongs to rcl, as after a ROS
    executable's own arguments. argparse cannot take it as a remainder: it reads `--ros-args` as an option."""
    argv = list(argv)
    if "--ros-args" not in argv:
        return argv, []
    i = argv.index("--ros-args")
    return argv[:i], argv[i:]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0].startswith("-"):
        top.parse_args(argv or ["--help"])
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        top.parse_args([name])  # prints the usage error with the valid choices
        return 2
    parser = argparse.ArgumentParser(prog=f"vand-ros {name}", description=COMMANDS[name].summary)
    module = _load(name)
    if module is None:
        parser.epilog = "This subcommand is not part of this version of vand_ros yet."
        parser.parse_args(rest)
        print(f"vand-ros {name}: not available in vand_ros {__version__} yet.", file=sys.stderr)
        return 2
    module.configure(parser)  # type: ignore[attr-defined]
    rest, ros_args = split_ros_args(rest)
    args = parser.parse_args(rest)
    args.argv = list(rest)  # for a subcommand that starts itself again (train --nproc under torchrun)
    if ros_args:
        if not hasattr(args, "ros_args"):
            parser.error("--ros-args: this subcommand starts no ROS node of its own")
        args.ros_args = ros_args
    try:
        return int(module.run(args))  # type: ignore[attr-defined]
    except VandError as err:
        print(f"vand-ros {name}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
