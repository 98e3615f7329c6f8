"""`vand-ros run`: the controller node (and optionally the simulation and a recorder) without ROS tools.

The same composition as `ros2 launch vand_ros sim.launch.py` / `controller.launch.py`, for machines with
no launch_ros: each node is its own process, started with `--ros-args`, talking over DDS.

    vand-ros run --model policy.onnx                        # on a robot (or against any running sim)
    vand-ros run --model policy.onnx --sim --instruction wipe --duration 60 --record bags/run1

With `--instruction`, this process also plays the operator: it publishes the instruction on
/vand/instruction at 1 Hz (the topic the demonstrations carry it on), and the controller listens there,
so a recorded run is labelled like a demonstration and can be used for retraining.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from vand_ros import robot
from vand_ros.errors import VandError
from vand_ros.processes import describe_exit, start_child, stop_process

BIN = Path(sys.executable).parent


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="exported ONNX policy")
    parser.add_argument("--config", type=Path, help="controller parameter file (YAML, ros__parameters)")
    parser.add_argument("--instruction", default="", help="behaviour to perform from the start")
    parser.add_argument("--sim", action="store_true", help="also start the simulated robot (sim_node)")
    parser.add_argument(
        "--real-time-factor", type=float, default=1.0, help="with --sim: 1.0 real time, 0 as fast as possible"
    )
    parser.add_argument(
        "--initial-pose",
        type=float,
        nargs=3,
        metavar=("X", "Y", "YAW"),
        help="with --sim: base start pose [m, m, rad]",
    )
    parser.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many wall seconds (0: run)"
    )
    parser.add_argument(
        "--record", type=Path, help="also record every robot topic to this new rosbag2 directory"
    )
    parser.add_argument(
        "--max-bag-duration",
        type=float,
        default=0.0,
        help="with --record: start a new bag file after this many seconds (0: one file)",
    )
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="extra controller parameter (repeatable), e.g. -p execution_mode:=deterministic",
    )


def _exe(name: str) -> str:
    path = BIN / name
    if not path.exists():
        raise VandError(
            f"{name} is not installed next to {sys.executable}; reinstall vand_ros (make install)"
        )
    return str(path)


def commands(args: argparse.Namespace) -> list[list[str]]:
    """The processes to start, as argv lists (controller last, so the robot is up when it starts)."""
    if not args.model.is_file():
        raise VandError(
            f"model {args.model} does not exist; export one with `vand-ros export RUN_DIR --out FILE`"
        )
    cmds = []
    sim_time = "true" if args.sim else "false"
    if args.sim:
        sim = [_exe("sim_node"), "--ros-args", "-p", f"real_time_factor:={args.real_time_factor}"]
        if args.initial_pose:
            sim += ["-p", "initial_pose:=[" + ",".join(str(float(v)) for v in args.initial_pose) + "]"]
        cmds.append(sim)
    if args.record:
        # The bag says how its episode was made: by the policy (data.recording.KIND_KEY).
        rec = [_exe("vand-ros"), "record", "--out", str(args.record), "--episode-kind", "policy"]
        rec += ["--max-bag-duration", str(args.max_bag_duration)] if args.max_bag_duration else []
        cmds.append(rec + ([] if args.sim else ["--no-sim-time"]))
    ctrl = [_exe("controller_node"), "--ros-args"]
    if args.config:
        ctrl += ["--params-file", str(args.config)]
    ctrl += ["-p", f"model:={args.model.resolve()}", "-p", f"use_sim_time:={sim_time}"]
    if args.instruction:
        ctrl += ["-p", f"instruction:={args.instruction}", "-p", "autostart:=true"]
        ctrl += ["-p", f"instruction_topic:={robot.TOPICS.instruction}"]
    for p in args.param:
        if ":=" not in p:
            raise VandError(f"--param {p!r}: expected NAME:=VALUE")
        ctrl += ["-p", p]
    cmds.append(ctrl)
    return cmds


class Operator:
    """Publishes the instruction at 1 Hz (reliable), as an operator or task-level node would."""

    def __init__(self, word: str) -> None:
        import rclpy
        from rclpy.signals import SignalHandlerOptions
        from std_msgs.msg import String

        self.ctx = rclpy.Context()
        # `run` handles its stop signals itself (the ordered stop): rclpy's must not take them over.
        rclpy.init(context=self.ctx, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("vand_operator", context=self.ctx)
        self.pub = self.node.create_publisher(String, robot.TOPICS.instruction, 10)
        self.msg = String(data=word)
        self.next = 0.0

    def poll(self) -> None:
        if time.monotonic() >= self.next:
            self.pub.publish(self.msg)
            self.next = time.monotonic() + 1.0

    def close(self) -> None:
        import rclpy

        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)


class _StopSignalError(Exception):
    """A stop signal (SIGTERM, SIGHUP) arrived: stop the children in order, then exit."""


def _raise_on(signum: int, frame: object) -> None:
    raise _StopSignalError(signal.Signals(signum).name)


# The controller first (it stops the robot), then the robot, then the recorder (so the bag holds the stop).
STOP_ORDER = ("controller_node", "sim_node")


def run(args: argparse.Namespace) -> int:
    """Start the processes, supervise them, stop them in order. Non-zero (naming the process) when a child
    exited on its own with an error, failed to stop cleanly, or the recording is not finished."""
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []  # (name, its process)
    operator = None
    code = 0
    # Every stop signal explicitly, SIGINT too: started in the background by a non-interactive shell, this
    # process inherits SIGINT ignored, and `kill -INT` (or a supervisor's stop) would then never stop it.
    handlers = {
        signal.SIGTERM: _raise_on,
        signal.SIGHUP: _raise_on,
        signal.SIGINT: signal.default_int_handler,
    }
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        for cmd in commands(args):
            print("starting:", " ".join(cmd), flush=True)
            name = Path(cmd[0]).name + (" record" if cmd[1:2] == ["record"] else "")
            procs.append((name, start_child(cmd, env=os.environ.copy())))
        operator = Operator(args.instruction) if args.instruction else None
        deadline = time.monotonic() + args.duration if args.duration > 0 else None
        while True:
            ended = [(name, p) for name, p in procs if p.poll() is not None]
            if ended:
                name, proc = ended[0]
                print(f"{name} exited with {describe_exit(proc.returncode)}; stopping the others", flush=True)
                code = proc.returncode if proc.returncode >= 0 else 1
                break
            if deadline is not None and time.monotonic() > deadline:
                break
            if operator is not None:
                operator.poll()
            time.sleep(0.05)
    except KeyboardInterrupt:
        print("interrupted (SIGINT); stopping", flush=True)
    except _StopSignalError as err:
        print(f"received {err}; stopping", flush=True)
    finally:
        # Further stop signals must not cut the ordered stop short.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if operator is not None:
            operator.close()
        order = [(n, p) for key in STOP_ORDER for n, p in procs if n == key]
        for name, proc in order + [(n, p) for n, p in procs if (n, p) not in order]:
            outcome = stop_process(proc)
            if outcome != "exited":
                print(f"{name}: {outcome}", flush=True)
            if outcome == "killed":
                print(f"{name} did not stop within 10 s and was killed", flush=True)
                code = code or 1
            elif outcome == "stopped" and proc.returncode not in CLEAN_EXITS:
                print(f"{name} exited with {describe_exit(proc.returncode)} while stopping", flush=True)
                code = code or 1
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    recorder = next((p for name, p in procs if name.endswith(" record")), None)
    if args.record and recorder is not None:
        code = _report_recording(args.record, recorder.returncode) or code
    return code


# Exit statuses of a child that stopped cleanly on SIGINT: 0, or killed by the signal it was sent.
CLEAN_EXITS = (0, -signal.SIGINT, 128 + signal.SIGINT)


def _report_recording(bag: Path, status: int | None) -> int:
    """Whether the bag is finished, from how its recorder ended: it exits 0 only after finishing the bag
    (data.recording) and says so itself, with the message count."""
    if status == 0:
        print(f"recording {bag}: complete", flush=True)
        return 0
    print(f"the recording {bag} is not finished: `vand-ros bag repair {bag}` recovers what reached the "
          "disk (up to about the last second)", flush=True)  # fmt: skip
    return 1
