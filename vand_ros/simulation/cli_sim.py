"""`vand-ros sim`: run the simulated robot (sim_node) in this process."""

from __future__ import annotations

import argparse

from vand_ros import robot


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rtf", type=float, default=1.0, help="real-time factor; 0 = as fast as possible")
    parser.add_argument("--duration", type=float, default=0.0, help="sim seconds to run (0: until Ctrl-C)")
    parser.add_argument("--demonstrator", choices=robot.BEHAVIOURS, help="let a scripted demonstrator drive")
    parser.add_argument("--seed", type=int, default=0, help="demonstrator episode seed")
    parser.add_argument("--episode", type=int, default=0, help="demonstrator episode index")
    parser.add_argument(
        "--wait-for-subscribers", type=int, default=0, help="wait for N subscribers per topic"
    )
    parser.add_argument(
        "--render",
        metavar="FILE",
        help="no ROS: render the demonstrator's run offscreen to FILE (.gif or .mp4)",
    )
    parser.add_argument("--fps", type=int, default=15, help="frames per second of --render")
    parser.set_defaults(ros_args=[])  # `--ros-args ...` at the end goes to the node (cli.split_ros_args)
    parser.epilog = "Anything after --ros-args goes to the node, e.g. --ros-args -p clock:=system."


def run(args: argparse.Namespace) -> int:
    if args.render:
        from vand_ros.errors import VandError
        from vand_ros.simulation.render import ensure_offscreen_gl

        if not args.demonstrator:
            raise VandError("--render needs --demonstrator NAME: it renders a scripted run")
        ensure_offscreen_gl()  # before anything imports mujoco
        from pathlib import Path

        from vand_ros.simulation.render import render_demo

        n = render_demo(
            args.demonstrator, Path(args.render), args.seed, args.episode, args.duration, args.fps
        )
        print(f"{args.render}: {n} frames")
        return 0
    from vand_ros.simulation import node

    params = {
        "real_time_factor": args.rtf,
        "duration": args.duration,
        "demonstrator": args.demonstrator or "",
        "seed": args.seed,
        "episode": args.episode,
        "wait_for_subscribers": args.wait_for_subscribers,
    }
    ros = ["--ros-args"]
    for name, value in params.items():
        # Strings are quoted so that ROS's YAML parsing keeps them strings (an empty one included).
        ros += ["-p", f"{name}:={value!r}" if isinstance(value, str) else f"{name}:={value}"]
    extra = [a for a in args.ros_args if a != "--ros-args"]
    node.main(["vand-ros-sim", *ros, *extra])
    return 0
