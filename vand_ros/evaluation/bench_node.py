"""`vand-ros bench node`: what the controller costs per tick, and how well its loop keeps time.

Side by side in one run:
1. Per-tick compute of the node's control path (feed one joint-state update, assemble the observation,
   ONNX step with the execution draws, safety filter) against a bare `session.run` of the same model with
   prepared inputs, interleaved tick by tick, on one thread. Ratio of medians.
2. Loop period error at 50 and 100 Hz: `sim_node` (real time, stamping in system time as a robot driver
   does) and `controller_node` run as separate processes over DDS; the controller's own deadline
   accounting (/diagnostics, steady clock) gives p50/p99/max period error and compute time.
3. CPU use of the controller process at 50 Hz (user + system time over the measured window / wall time).
4. With `--load N`: N CPU-bound processes run beside the node for the whole loop measurement, and every
   loop run is done twice, side by side: the default scheduler, and the control thread at SCHED_FIFO
   `--realtime-priority` with memory locked (the controller's realtime parameters). Whether the
   realtime request was granted is taken from the controller's own /diagnostics.

The policy is an untrained one of the default size (GRU, H = 64) for the built-in robot: cost does not
depend on what the weights learned.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from vand_ros import robot
from vand_ros.benchmarks import report, summarise
from vand_ros.processes import stop_process

BIN = Path(sys.executable).parent


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ticks", type=int, default=3000, help="ticks for the compute comparison")
    parser.add_argument("--rates", type=float, nargs="+", default=[50.0, 100.0], help="loop rates [Hz]")
    parser.add_argument("--seconds", type=float, default=12.0, help="wall seconds of each loop run")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument(
        "--executors",
        nargs="+",
        default=["events", "single_threaded"],
        help="controller executors to compare",
    )
    parser.add_argument("--skip-loop", action="store_true", help="only the in-process compute comparison")
    parser.add_argument(
        "--load", type=int, default=0, help="CPU-bound processes beside the node; compares realtime on/off"
    )
    parser.add_argument(
        "--realtime-priority", type=int, default=80, help="SCHED_FIFO priority of the realtime runs (1-99)"
    )


def _export(path: Path, rate: float, hidden: int) -> Path:
    from vand_ros.learning.config import TrainConfig
    from vand_ros.learning.export import export_untrained_policy
    from vand_ros.runtime.layout import default_layout

    return export_untrained_policy(
        path, default_layout(), rate, TrainConfig(hidden_size=hidden, encoder_size=hidden)
    )


def compute_comparison(model: Path, ticks: int) -> dict[str, Any]:
    from vand_ros.controller.core import ControlCore
    from vand_ros.controller.params import ControllerConfig
    from vand_ros.controller.safety import SafetyFilter
    from vand_ros.runtime.assembler import AssemblerConfig, ObservationAssembler
    from vand_ros.runtime.policy import PolicyRuntime

    cfg = ControllerConfig.from_values({"model": str(model)})
    policy = PolicyRuntime(model, seed=0)
    layout = policy.layout
    rate = policy.card.control_rate
    assembler = ObservationAssembler(AssemblerConfig(layout=layout))
    core = ControlCore(policy, assembler, SafetyFilter(cfg.limits, rate), layout)
    period = round(1e9 / rate)
    names = list(layout.joint_names)
    home = np.array([j.home for j in robot.ARM_JOINTS])
    features = np.zeros(len(layout.feature_names), np.float32)
    assembler.update_instruction(0, layout.vocabulary[0])
    core.enable()

    bare = PolicyRuntime(model, seed=0)
    feeds = {"obs": np.zeros((1, layout.obs_dim), np.float32), **bare.sampler(), **bare.state}
    out_names = [o.name for o in bare.session.get_outputs()]

    node_ns, bare_ns = [], []
    rng = np.random.default_rng(0)
    for i in range(ticks + 100):
        t = (i + 1) * period
        joints = home + 0.01 * rng.standard_normal(len(names))
        assembler.update_base(t, [0.1, 0, 0, 0, 0, 0])
        assembler.update_features(t, features)
        t0 = time.perf_counter_ns()
        assembler.update_joints(t, names, joints)
        result = core.tick(t)
        t1 = time.perf_counter_ns()
        bare.session.run(out_names, feeds)
        t2 = time.perf_counter_ns()
        assert result.state == "running", result.reasons
        if i >= 100:  # warm-up
            node_ns.append(t1 - t0)
            bare_ns.append(t2 - t1)
    node = summarise(node_ns, 1e-3)
    ref = summarise(bare_ns, 1e-3)
    return {"node_tick_us": node, "bare_onnx_us": ref, "ratio_p50": node["p50"] / ref["p50"]}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def loop_run(
    model: Path,
    rate: float,
    seconds: float,
    domain: int,
    executor_kind: str = "events",
    realtime_priority: int = 0,
) -> dict[str, Any]:
    """sim_node + controller_node over DDS at `rate`; the controller's own /diagnostics after `seconds`."""
    import rclpy
    import rclpy.executors
    from diagnostic_msgs.msg import DiagnosticArray

    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    sim = subprocess.Popen(
        [str(BIN / "sim_node"), "--ros-args", "-p", "real_time_factor:=1.0", "-p", "clock:=system"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ctrl = subprocess.Popen(
        [
            str(BIN / "controller_node"),
            "--ros-args",
            "-p",
            f"model:={model}",
            "-p",
            "autostart:=true",
            "-p",
            f"instruction:={robot.BEHAVIOURS[0]}",
            "-p",
            "diagnostics_period:=1.0",
            "-p",
            f"executor:={executor_kind}",
            "-p",
            f"realtime_priority:={realtime_priority}",
            "-p",
            f"lock_memory:={'true' if realtime_priority else 'false'}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node("bench_node_listener", context=ctx)
    latest: list[dict[str, str]] = []

    def on_diag(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if "vand_ros controller" in status.name:
                latest.append({kv.key: kv.value for kv in status.values})

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    executor = rclpy.executors.SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    try:
        start = time.monotonic()
        cpu0 = wall0 = None
        while time.monotonic() - start < seconds + 3.0:
            executor.spin_once(timeout_sec=0.1)
            if ctrl.poll() is not None:
                err = ctrl.stderr.read() if ctrl.stderr is not None else b""
                raise RuntimeError("controller_node exited: " + (err or b"").decode()[-2000:])
            if cpu0 is None and time.monotonic() - start > 3.0:  # after start-up and discovery
                cpu0, wall0 = _cpu_seconds(ctrl.pid), time.monotonic()
        cpu = (_cpu_seconds(ctrl.pid) - cpu0) / (time.monotonic() - wall0)  # type: ignore[operator]
    finally:
        for proc in (ctrl, sim):
            stop_process(proc, sig=signal.SIGTERM)
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
    if not latest:
        raise RuntimeError("no /diagnostics from the controller")
    d = latest[-1]
    return {
        "rate_hz": rate,
        "executor": executor_kind,
        "scheduling": d.get("scheduling", "default"),
        "memory": d.get("memory", "not locked"),
        "state": d["state"],
        "ticks": int(d["ticks"]),
        "policy_steps": int(d["policy steps"]),
        "period_error_ms": {k: float(d[f"period error {k} [ms]"]) for k in ("p50", "p99", "max")},
        "compute_ms": {k: float(d[f"compute {k} [ms]"]) for k in ("p50", "p99", "max")},
        "overruns": int(d["overruns"]),
        "cpu_percent_of_one_core": 100.0 * cpu,
    }


class _Load:
    """N busy processes; `cpu_percent()` is their CPU use so far (100 = one core)."""

    def __init__(self, n: int) -> None:
        self.procs = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"], stdout=subprocess.DEVNULL)
            for _ in range(n)
        ]
        self.start = time.monotonic()

    def cpu_percent(self) -> float:
        wall = time.monotonic() - self.start
        return 100.0 * sum(_cpu_seconds(p.pid) for p in self.procs) / wall if self.procs else 0.0

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


@contextmanager
def cpu_load(n: int) -> Iterator[_Load]:
    load = _Load(n)
    try:
        yield load
    finally:
        load.stop()


def _loop_rows(at: str, r: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {"measure": f"{at} period error {k} [ms]", "value": r["period_error_ms"][k]}
        for k in ("p50", "p99", "max")
    ]
    rows.append({"measure": f"{at} compute p99 [ms]", "value": r["compute_ms"]["p99"]})
    rows.append({"measure": f"{at} overruns", "value": r["overruns"]})
    rows.append({"measure": f"{at} controller CPU [% of a core]", "value": r["cpu_percent_of_one_core"]})
    return rows


def run(args: argparse.Namespace) -> int:
    results: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        model = _export(Path(tmp) / "bench20.onnx", robot.RATES.control, args.hidden)
        cmp = compute_comparison(model, args.ticks)
        results["compute"] = cmp
        rows.append(
            {"measure": "node tick (assemble+ONNX+safety) p50 [us]", "value": cmp["node_tick_us"]["p50"]}
        )
        rows.append({"measure": "node tick p99 [us]", "value": cmp["node_tick_us"]["p99"]})
        rows.append({"measure": "bare ONNX step p50 [us]", "value": cmp["bare_onnx_us"]["p50"]})
        rows.append({"measure": "bare ONNX step p99 [us]", "value": cmp["bare_onnx_us"]["p99"]})
        rows.append({"measure": "ratio of p50 (goal <= 3)", "value": cmp["ratio_p50"]})
        if not args.skip_loop:
            results["loop"] = []
            results["load_processes"] = args.load
            priorities = [0, args.realtime_priority] if args.load else [0]
            with cpu_load(args.load) as load:
                for i, rate in enumerate(args.rates):
                    m = _export(Path(tmp) / f"bench{rate:g}.onnx", rate, args.hidden)
                    for j, kind in enumerate(args.executors):
                        for k, prio in enumerate(priorities):
                            domain = 60 + 6 * i + 2 * j + k
                            r = loop_run(
                                m, rate, args.seconds, domain, executor_kind=kind, realtime_priority=prio
                            )
                            r["load_processes"] = args.load
                            results["loop"].append(r)
                            at = f"{rate:g} Hz {kind}" + (
                                f" load {args.load} {r['scheduling']}" if args.load else ""
                            )
                            rows += _loop_rows(at, r)
                results["load_cpu_percent"] = load.cpu_percent()
    report("node", results, rows)
    return 0
