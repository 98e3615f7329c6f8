"""Recordings and processes on a robot that gets stopped, killed or crashes, with real processes over DDS.

- The recorder killed with SIGKILL loses at most about its flush period (1 s) of what it was sent.
- `vand-ros run` stops its children in order on SIGTERM, SIGINT and SIGHUP, and none outlives it even
  when it is itself killed with SIGKILL (PR_SET_PDEATHSIG): no orphan keeps commanding the robot.
- When a child crashes (SIGKILL to the recorder or to the sim), `vand-ros run` exits non-zero and names it,
  says whether the recording is finished, and `vand-ros dataset` reads the recording up to the last second.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vand_ros import robot

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
SHIPPED = Path(__file__).resolve().parents[1] / "models" / "policy.onnx"
FLUSH_SLACK = 1.5  # [s] the recorder flushes every second; what a SIGKILL may cost, with scheduling slack


@pytest.fixture
def ros(ros_domain: int) -> Iterator[Any]:
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    node = rclpy.create_node("recording_test", context=ctx)
    executor = rclpy.executors.SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    yield node, executor
    node.destroy_node()
    rclpy.try_shutdown(context=ctx)


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_for(pred: Any, timeout: float, what: str, spin: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        if spin is not None:
            spin.spin_once(timeout_sec=0.05)
        else:
            time.sleep(0.05)


def _as_a_background_job() -> None:
    """`vand-ros run ... &` in a non-interactive shell (a CI script) starts with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_run(tiny_policy: Path, bag: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`vand-ros run --sim --record` started as a background job: its stop must work all the same."""
    cmd = [str(BIN / "vand-ros"), "run", "--model", str(tiny_policy), "--sim", "--instruction", "patrol",
           "--record", str(bag), *extra]  # fmt: skip
    return subprocess.Popen(
        cmd,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
        preexec_fn=_as_a_background_job,  # noqa: PLW1509 (the test process starts it before any thread)
    )


def test_recorder_killed_with_sigkill_loses_at_most_a_second(tmp_path: Path, ros: Any) -> None:
    from rosbags.highlevel import AnyReader
    from sensor_msgs.msg import JointState

    node, executor = ros
    pub = node.create_publisher(JointState, robot.TOPICS.joint_states, 100)
    bag = tmp_path / "rec"
    rec = subprocess.Popen([str(BIN / "vand-ros"), "record", "--out", str(bag), "--no-sim-time"],
                           stdout=(tmp_path / "rec.log").open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_for(lambda: pub.get_subscription_count() > 0, 30, "the recorder subscribes", executor)
        sent, rate, t0 = 0, 50.0, time.monotonic()
        while time.monotonic() - t0 < 4.0:  # 4 s at 50 Hz, position = sequence number
            pub.publish(JointState(name=["j"], position=[float(sent)]))
            sent += 1
            time.sleep(1 / rate)
        rec.send_signal(signal.SIGKILL)
        rec.wait(timeout=10)
    finally:
        if rec.poll() is None:
            rec.kill()
    result = subprocess.run(
        [str(BIN / "vand-ros"), "bag", "repair", str(bag)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "recovered" in result.stdout
    with AnyReader([bag]) as reader:
        got = [reader.deserialize(raw, c.msgtype).position[0] for c, _, raw in reader.messages()]
    assert got == [float(i) for i in range(len(got))], "in order and without holes"
    assert len(got) >= sent - FLUSH_SLACK * rate, (len(got), sent)


def test_a_full_disk_stops_the_recording_with_status_1_and_keeps_what_was_written(
    tmp_path: Path, ros: Any
) -> None:
    """A file-size limit (RLIMIT_FSIZE) makes writes fail as a full disk does."""
    import resource

    from rosbags.highlevel import AnyReader
    from sensor_msgs.msg import JointState

    node, executor = ros
    pub = node.create_publisher(JointState, robot.TOPICS.joint_states, 100)
    bag = tmp_path / "rec"
    rec = subprocess.Popen([str(BIN / "vand-ros"), "record", "--out", str(bag), "--no-sim-time"],
                           stdout=(tmp_path / "rec.log").open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
    # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG, as one on a full disk does.
    resource.prlimit(rec.pid, resource.RLIMIT_FSIZE, (60_000, 60_000))
    try:
        wait_for(lambda: pub.get_subscription_count() > 0, 30, "the recorder subscribes", executor)
        sent = 0
        while rec.poll() is None and sent < 5000:
            # At most ~20 kB/s: the 1 s flushes succeed until the 60 kB limit falls inside one.
            pub.publish(JointState(name=["j"] * 10, position=[float(sent)] * 10))
            sent += 1
            time.sleep(0.01)
        code = rec.wait(timeout=10)
    finally:
        if rec.poll() is None:
            rec.kill()
    log = (tmp_path / "rec.log").read_text()
    assert code == 1 and "cannot write" in log and "vand-ros bag repair" in log, log[-2000:]
    result = subprocess.run(
        [str(BIN / "vand-ros"), "bag", "repair", str(bag)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with AnyReader([bag]) as reader:
        got = [reader.deserialize(raw, c.msgtype).position[0] for c, _, raw in reader.messages()]
    assert len(got) > 50 and got == [float(i) for i in range(len(got))], "what reached the disk, in order"


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name
)
def test_run_leaves_no_process_behind(tmp_path: Path, ros_domain: int, sig: int) -> None:
    from vand_ros.data.recording import needs_repair

    bag = tmp_path / "rec"
    # The shipped model patrols: the base is moving when the signal comes, so a recorded stop is the stop's.
    run = start_run(SHIPPED, bag, tmp_path / "run.log")
    try:
        wait_for(
            lambda: len(children(run.pid)) == 3 and (bag / "metadata.yaml").exists(), 60, "three children"
        )
        kids = children(run.pid)
        time.sleep(8.0)  # patrolling by then (start-up holds while the inputs arrive)
        run.send_signal(sig)
        code = run.wait(timeout=60)
        wait_for(lambda: not any(alive(k) for k in kids), 30, f"children gone after {sig.name}")
    finally:
        if run.poll() is None:
            run.kill()
        for k in children(run.pid):
            os.kill(k, signal.SIGKILL)
    log = (tmp_path / "run.log").read_text()
    # Even when `vand-ros run` is killed, the recorder gets SIGINT from the kernel and finishes the bag.
    assert not needs_repair(bag), log
    if sig != signal.SIGKILL:
        assert code == 0, log
        from rosbags.highlevel import AnyReader

        with AnyReader([bag]) as reader:  # the controller's last base command, as recorded: a stop
            conns = [c for c in reader.connections if c.topic == robot.TOPICS.cmd_vel]
            last = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(connections=conns)][
                -1
            ]
        assert (last.linear.x, last.linear.y, last.angular.z) == (0.0, 0.0, 0.0), log
        assert "recording" in log and "complete" in log, log
        # In order: the controller before the robot it commands, the recorder last (the bag holds the stop).
        stops = [log.index(f"{name}: stopped") for name in ("controller_node", "sim_node", "vand-ros record")]
        assert stops == sorted(stops), log


@pytest.mark.parametrize("victim", ["record", "sim_node"])
def test_run_names_a_crashed_child_and_the_recording_survives(
    tmp_path: Path, tiny_policy: Path, ros: Any, victim: str
) -> None:
    from rosgraph_msgs.msg import Clock

    from vand_ros.data.recording import read_metadata

    node, executor = ros
    clock = {"ns": 0}
    node.create_subscription(
        Clock, "/clock", lambda m: clock.update(ns=m.clock.sec * 10**9 + m.clock.nanosec), 10
    )
    bag = tmp_path / "rec"
    run = start_run(tiny_policy, bag, tmp_path / "run.log")
    try:
        wait_for(lambda: clock["ns"] > 6e9, 90, "6 s of sim time", executor)
        (pid,) = [k for k in children(run.pid) if victim in cmdline(k)]
        os.kill(pid, signal.SIGKILL)
        killed_at = clock["ns"]
        code = run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    log = (tmp_path / "run.log").read_text()
    assert code != 0, log
    assert f"{'vand-ros record' if victim == 'record' else 'sim_node'} exited with signal SIGKILL" in log, log
    if victim == "record":
        assert "not finished" in log and "vand-ros bag repair" in log, log
    else:
        assert "complete" in log, log

    ds = tmp_path / "ds"
    result = subprocess.run([str(BIN / "vand-ros"), "dataset", str(bag), "--out", str(ds), "--no-cache",
                             "--quiet"], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    meta = read_metadata(bag)
    end = meta["starting_time"]["nanoseconds_since_epoch"] + meta["duration"]["nanoseconds"]
    assert end >= killed_at - FLUSH_SLACK * 1e9, (end / 1e9, killed_at / 1e9)


@pytest.mark.long
def test_ten_minute_recording_at_real_time(tmp_path: Path, tiny_policy: Path, ros_domain: int) -> None:
    """10 minutes of the sim publishing at real time, split into 1-minute files: all finished, no gap."""
    from rosbags.highlevel import AnyReader

    from vand_ros.data.recording import read_metadata, recording_state

    bag = tmp_path / "rec"
    run = start_run(tiny_policy, bag, tmp_path / "run.log", "--duration", "600", "--max-bag-duration", "60")
    try:
        code = run.wait(timeout=720)
    finally:
        if run.poll() is None:
            run.kill()
    log = (tmp_path / "run.log").read_text()
    assert code == 0 and recording_state(bag) == "complete", log[-3000:]
    meta = read_metadata(bag)
    assert len(meta["relative_file_paths"]) >= 9, meta["relative_file_paths"]
    stamps = []
    with AnyReader([bag]) as reader:
        conns = [c for c in reader.connections if c.topic == robot.TOPICS.joint_states]
        stamps = [t for _, t, _ in reader.messages(connections=conns)]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert (stamps[-1] - stamps[0]) / 1e9 > 0.9 * 600, "the sim kept about real time"
    assert max(gaps) < 0.5e9, f"a {max(gaps) / 1e9:.2f} s gap in /joint_states"
