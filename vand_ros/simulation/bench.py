"""`vand-ros bench sim`: real-time factor and achieved message rates of the simulation.

Measures, side by side in one run:
  physics      Sim.step alone (no outputs), sim seconds per wall second;
  demos        the in-process demonstration writer (physics + demonstrator + MCAP bag);
  node_fast    sim_node in a child process with real_time_factor 0 (as fast as possible) and a
               demonstrator, publishing everything; this process subscribes over DDS (loopback) and
               counts what arrives: RTF from the received /clock, rates per wall second and per sim second;
  node_rt      the same at real_time_factor 1.0: achieved rates against the configured ones.
Numbers only; nothing passes or fails on time (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vand_ros import robot
from vand_ros.benchmarks import report
from vand_ros.simulation.bagsink import CLOCK, NOMINAL_RATES, RECORDED

TOPIC_TYPES = dict((CLOCK, *RECORDED))  # everything the sim node publishes, /clock included


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=20.0, help="sim seconds in fast mode")
    parser.add_argument("--rt-duration", type=float, default=3.0, help="sim seconds at real time (0: skip)")
    parser.add_argument("--behaviour", default="patrol", choices=robot.BEHAVIOURS)
    parser.add_argument("--domain-id", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", "57")))


def bench_physics(duration: float) -> float:
    from vand_ros.simulation.physics import STEPS_PER_S, Sim

    sim = Sim()
    sim.set_base_twist(0.3, 0.0, 0.2)
    t0 = time.perf_counter()
    sim.step(round(duration * STEPS_PER_S))
    return duration / (time.perf_counter() - t0)


def bench_demos(behaviour: str, duration: float) -> float:
    from vand_ros.simulation.cli_demos import write_episode

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_episode(behaviour, 0, 0, Path(tmp) / "bag", duration=duration)
        return duration / (time.perf_counter() - t0)


def bench_node(behaviour: str, duration: float, rtf: float, env: dict[str, str]) -> dict[str, Any]:
    """Run sim_node in a child process and count what arrives here over DDS."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from vand_ros.simulation.recorder import message_class

    rclpy.init()
    node = rclpy.create_node("sim_bench_counter")
    qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    counts = dict.fromkeys(TOPIC_TYPES, 0)
    first_wall: dict[str, float] = {}
    last_wall: dict[str, float] = {}
    clock_ns = {"first": -1, "last": -1}

    def counter(topic: str) -> Any:
        def cb(data: bytes) -> None:
            now = time.perf_counter()
            counts[topic] += 1
            first_wall.setdefault(topic, now)
            last_wall[topic] = now

        return cb

    def on_clock(msg: Any) -> None:
        ns = msg.clock.sec * 1_000_000_000 + msg.clock.nanosec
        if clock_ns["first"] < 0:
            clock_ns["first"] = ns
        clock_ns["last"] = ns
        counter(robot.TOPICS.clock)(b"")

    for topic, msgtype in TOPIC_TYPES.items():
        if topic == robot.TOPICS.clock:
            node.create_subscription(message_class(msgtype), topic, on_clock, qos)
        else:
            node.create_subscription(message_class(msgtype), topic, counter(topic), qos, raw=True)
    cmd = [
        sys.executable, "-m", "vand_ros.simulation.node", "--ros-args",
        "-p", f"real_time_factor:={rtf}", "-p", f"duration:={duration}", "-p", f"demonstrator:={behaviour}",
        "-p", "wait_for_subscribers:=1",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    deadline = time.monotonic() + 60 + duration / max(rtf, 1e-3)
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        quiet_end = time.monotonic() + 0.5
        while time.monotonic() < quiet_end:
            executor.spin_once(timeout_sec=0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr = proc.communicate()[1]
        node.destroy_node()
        rclpy.try_shutdown()
    if proc.returncode != 0:
        raise RuntimeError(f"sim_node exited with {proc.returncode}:\n{stderr}")
    clock = robot.TOPICS.clock
    wall = last_wall.get(clock, 0.0) - first_wall.get(clock, 0.0)
    sim_s = (clock_ns["last"] - clock_ns["first"]) / 1e9
    rates = {}
    for topic in TOPIC_TYPES:
        n = counts[topic]
        rates[topic] = {
            "received": n,
            "per_wall_s": n / wall if wall > 0 else 0.0,
            "per_sim_s": n / duration,
            "nominal_per_sim_s": NOMINAL_RATES.get(topic, float("nan")),
        }
    return {"rtf": sim_s / wall if wall > 0 else 0.0, "sim_s": sim_s, "wall_s": wall, "rates": rates}


def run(args: argparse.Namespace) -> int:
    env = dict(os.environ, ROS_DOMAIN_ID=str(args.domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    os.environ.update(ROS_DOMAIN_ID=env["ROS_DOMAIN_ID"], ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    results: dict[str, Any] = {
        "physics_rtf": bench_physics(args.duration),
        "demos_rtf": bench_demos(args.behaviour, args.duration),
        "node_fast": bench_node(args.behaviour, args.duration, 0.0, env),
    }
    if args.rt_duration > 0:
        results["node_rt"] = bench_node(args.behaviour, args.rt_duration, 1.0, env)
    rows = [
        {"what": "physics only", "rtf": results["physics_rtf"]},
        {"what": "demos (in-process bag)", "rtf": results["demos_rtf"]},
        {"what": "sim_node fast, publishing, over DDS", "rtf": results["node_fast"]["rtf"]},
    ]
    for mode in ("node_fast", "node_rt"):
        if mode not in results:
            continue
        for topic, r in results[mode]["rates"].items():
            rows.append({
                "what": f"{mode} {topic}",
                "rtf": results[mode]["rtf"],
                "msgs/wall s": r["per_wall_s"],
                "msgs/sim s": r["per_sim_s"],
                "nominal/sim s": r["nominal_per_sim_s"],
            })  # fmt: skip
    for row in rows:
        for col in ("msgs/wall s", "msgs/sim s", "nominal/sim s"):
            row.setdefault(col, "")
    report("sim", results, rows)
    return 0
