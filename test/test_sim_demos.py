"""Scripted demonstrations written in-process by `vand-ros demos`: real rosbag2 files, each doing its task."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from vand_ros import cli, robot
from vand_ros.evaluation.metrics import dominant_period
from vand_ros.simulation import demonstrators as D
from vand_ros.simulation import kinematics as K
from vand_ros.simulation import model as M
from vand_ros.simulation.bagsink import NOMINAL_RATES, RECORDED


def read_bag(path: Path) -> dict[str, list[tuple[int, Any]]]:
    """topic -> [(receive time [ns], message)], plus '_types' -> [(topic, type)]."""
    out: dict[str, Any] = {}
    with AnyReader([path]) as reader:
        out["_types"] = sorted((c.topic, c.msgtype) for c in reader.connections)
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype)))
    return out


def stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demos")
    assert cli.main(["demos", "--behaviour", "all", "--episodes", "1", "--seed", "3", "--out", str(out)]) == 0
    return {b: read_bag(out / f"{b}_000") for b in robot.BEHAVIOURS}


def demo(behaviour: str) -> D.Demonstrator:
    return D.make(behaviour, D.episode_rng(3, 0, behaviour))


def series(bag: dict[str, Any], topic: str, fn: Any) -> tuple[np.ndarray, np.ndarray]:
    t = np.array([ns for ns, _ in bag[topic]]) / 1e9
    return t, np.array([fn(m) for _, m in bag[topic]])


@pytest.mark.parametrize("behaviour", robot.BEHAVIOURS)
def test_bag_types_counts_rates_and_stamps(bags: dict[str, Any], behaviour: str) -> None:
    bag = bags[behaviour]
    assert bag["_types"] == sorted(RECORDED)
    duration = demo(behaviour).duration
    assert 20.0 <= duration <= 30.0
    for topic, rate in NOMINAL_RATES.items():
        times = np.array([ns for ns, _ in bag[topic]])
        stamped = topic in (robot.TOPICS.joint_states, robot.TOPICS.odom)  # these start after t = 0
        assert len(times) == math.ceil(duration * rate - 1e-9) - stamped, topic
        assert times.min() > 0 if stamped else times.min() == 0
        measured = (len(times) - 1) / ((times[-1] - times[0]) / 1e9)
        assert abs(measured / rate - 1) < 0.05, (topic, measured)
    for topic in (robot.TOPICS.joint_states, robot.TOPICS.odom):
        assert all(ns == stamp_ns(m) for ns, m in bag[topic])  # receive time = sim time = header stamp
    assert {m.data for _, m in bag[robot.TOPICS.instruction]} == {behaviour}
    js = bag[robot.TOPICS.joint_states][0][1]
    assert list(js.name) == list(robot.ARM_JOINT_NAMES)
    feat = bag[robot.TOPICS.features][0][1]
    assert [(d.label, d.size) for d in feat.layout.dim] == [
        ("entity:" + ",".join(robot.FEATURE_ENTITIES), len(robot.FEATURE_ENTITIES)),
        ("field:x,y,z,visible", 4),
    ]
    assert set(np.unique(feat.data.reshape(-1, 4)[:, 3])) <= {0.0, 1.0}


def test_wipe_strokes_with_its_period_while_the_base_stays(bags: dict[str, Any]) -> None:
    d = demo("wipe")
    t, q = series(bags["wipe"], robot.TOPICS.joint_states, lambda m: m.position)
    t, q = t[t > d.approach + 0.5], q[t > d.approach + 0.5]
    pan = q[:, 0]
    assert dominant_period(t, pan) == pytest.approx(d.period, rel=0.05)
    # Every stroke has the same amplitude: peak-to-peak per period within 10 %.
    n = int(d.period * robot.RATES.joint_states)
    p2p = [np.ptp(pan[i : i + n]) for i in range(0, len(pan) - n, n)]
    assert len(p2p) >= 4 and np.std(p2p) < 0.1 * np.mean(p2p) and np.mean(p2p) > 0.3
    _, pose = series(
        bags["wipe"], robot.TOPICS.odom, lambda m: (m.pose.pose.position.x, m.pose.pose.position.y)
    )
    assert np.ptp(pose, axis=0).max() < 0.02
    # The end effector is on the table top while wiping.
    ee_z = np.array([K.forward(qq)[2] for qq in q])
    assert np.all(np.abs(ee_z - (M.TABLE_HEIGHT + M.EE_RADIUS)) < 0.03)


def test_patrol_drives_a_loop_with_its_period_arm_in_carry(bags: dict[str, Any]) -> None:
    d = demo("patrol")
    t, xy = series(
        bags["patrol"], robot.TOPICS.odom, lambda m: (m.pose.pose.position.x, m.pose.pose.position.y)
    )
    keep = t > 2.0
    assert d.duration / d.period > 1.5
    assert dominant_period(t[keep], xy[keep, 0]) == pytest.approx(d.period, rel=0.05)
    cx, cy = d.centre
    radius = np.hypot(xy[keep, 0] - cx, xy[keep, 1] - cy)
    assert np.all(np.abs(radius - d.radius) < 0.05)
    _, q = series(bags["patrol"], robot.TOPICS.joint_states, lambda m: m.position)
    assert np.abs(q[int(2 * robot.RATES.joint_states) :] - d.carry).max() < 0.02


def touches(bag: dict[str, Any]) -> list[tuple[float, str]]:
    """(time, station) of each new touch: end effector within 6 cm of a station mark, 6 cm off the floor."""
    odom = bag[robot.TOPICS.odom]
    odom_t = np.array([ns for ns, _ in odom])
    out: list[tuple[float, str]] = []
    current = None
    for ns, js in bag[robot.TOPICS.joint_states]:
        o = odom[min(int(np.searchsorted(odom_t, ns)), len(odom) - 1)][1]  # odometry at or just after ns
        yaw = 2 * math.atan2(o.pose.pose.orientation.z, o.pose.pose.orientation.w)
        ee = K.base_to_world(K.forward(js.position), o.pose.pose.position.x, o.pose.pose.position.y, yaw)
        hit = None
        for name, (sx, sy) in M.STATIONS.items():
            if math.hypot(ee[0] - sx, ee[1] - sy) < 0.06 and ee[2] < 0.06:
                hit = name
        if hit and hit != current:
            out.append((ns / 1e9, hit))
        current = hit
    return out


@pytest.mark.parametrize(
    ("behaviour", "order"),
    [
        ("visit_abc", ["station_a", "station_b", "station_c"]),
        ("visit_cba", ["station_c", "station_b", "station_a"]),
    ],
)
def test_visit_touches_stations_in_order_then_stops(
    bags: dict[str, Any], behaviour: str, order: list[str]
) -> None:
    bag = bags[behaviour]
    hits = touches(bag)
    assert [name for _, name in hits] == order
    last = hits[-1][0]
    t, v = series(
        bag,
        robot.TOPICS.odom,
        lambda m: (m.twist.twist.linear.x, m.twist.twist.linear.y, m.twist.twist.angular.z),
    )
    _, pose = series(bag, robot.TOPICS.odom, lambda m: (m.pose.pose.position.x, m.pose.pose.position.y))
    tail = t > last + 2.5
    assert t[-1] - last > 4.0  # the episode goes on long enough to show the stop
    assert np.abs(v[tail]).max() < 0.01
    assert np.ptp(pose[tail], axis=0).max() < 0.005
    tj, q = series(bag, robot.TOPICS.joint_states, lambda m: m.position)
    assert np.ptp(q[tj > last + 2.5], axis=0).max() < 0.005
    _, cmd = series(bag, robot.TOPICS.cmd_vel, lambda m: (m.linear.x, m.linear.y, m.angular.z))
    assert np.all(cmd[-20:] == 0.0)


@pytest.mark.parametrize("behaviour", ["visit_abc", "visit_cba"])
def test_visit_turns_to_face_its_goal_before_it_drives(bags: dict[str, Any], behaviour: str) -> None:
    """Translation is commanded only when the base faces its stand-off goal (within `turn_first`, plus the
    turn's own progress over one tick), so the camera sees the station it drives to."""
    _, cmd = series(bags[behaviour], robot.TOPICS.cmd_vel, lambda m: (m.linear.x, m.linear.y, m.angular.z))
    linear, angular = np.hypot(cmd[:, 0], cmd[:, 1]), np.abs(cmd[:, 2])
    turning = linear == 0.0
    assert turning.any() and (~turning).any()
    first_drive = int(np.argmax(linear > 0))
    assert first_drive > 0 and angular[:first_drive].max() > 0.5  # visit_* starts facing away: it turns first
    turn_limit = 3.0 * demo(behaviour).turn_first + 1e-6  # wz = 3 x heading error while driving
    assert angular[linear > 0].max() <= turn_limit


def test_episodes_vary_and_replay_identically(tmp_path: Path) -> None:
    from vand_ros.simulation.cli_demos import write_episode

    a, b = demo("visit_abc"), D.make("visit_abc", D.episode_rng(3, 1, "visit_abc"))
    assert a.start_base != b.start_base and a.speed != b.speed
    for name in ("x", "y"):
        write_episode("patrol", 3, 0, tmp_path / name, storage="sqlite3", duration=2.0)
    x, y = read_bag(tmp_path / "x"), read_bag(tmp_path / "y")
    assert (tmp_path / "x" / "metadata.yaml").exists()
    qx = [m.position for _, m in x[robot.TOPICS.joint_states]]
    qy = [m.position for _, m in y[robot.TOPICS.joint_states]]
    np.testing.assert_array_equal(qx, qy)


def test_perturbed_demonstrations_record_clean_commands_while_the_robot_is_disturbed(tmp_path: Path) -> None:
    """`--perturb dart+push`: same bag format and task, disturbed motion, the clean commands as labels."""
    from vand_ros.simulation import perturb as P

    for name, perturb in (("clean", "none"), ("pert", "dart+push"), ("again", "dart+push")):
        args = [
            "demos",
            "--behaviour",
            "wipe",
            "--episodes",
            "1",
            "--seed",
            "3",
            "--out",
            str(tmp_path / name),
        ]
        assert cli.main([*args, "--perturb", perturb]) == 0
    clean, pert, again = (read_bag(tmp_path / n / "wipe_000") for n in ("clean", "pert", "again"))
    assert pert["_types"] == clean["_types"]
    for topic in NOMINAL_RATES:
        assert len(pert[topic]) == len(clean[topic]), topic
    # Deterministic from the seed.
    qp = np.array([m.position for _, m in pert[robot.TOPICS.joint_states]])
    np.testing.assert_array_equal(qp, [m.position for _, m in again[robot.TOPICS.joint_states]])
    # The wipe's arm command depends on time only, so the recorded labels equal the clean episode's ...
    cmd = {
        n: np.array([m.data for _, m in b[robot.TOPICS.arm_command]]) for n, b in (("c", clean), ("p", pert))
    }
    np.testing.assert_allclose(cmd["p"], cmd["c"], atol=1e-12)
    # ... while the executed motion is disturbed: the joints leave the commanded path.
    qc = np.array([m.position for _, m in clean[robot.TOPICS.joint_states]])
    assert np.abs(qp - qc).max() > 0.15
    assert np.sqrt(np.mean((qp - qc) ** 2)) > 0.02
    # The pushes moved the base, and the wipe base stays where they left it: its command is always zero
    # (the start pose is not observable, so a policy could not learn to drive back to it).
    d = demo("wipe")
    pushes = P.Disturber(P.Perturbation.preset("dart+push"), d.duration, P.rng(3, 0, "wipe")).pushes
    assert len(pushes) == 2 and all(2.5 <= p.t <= d.duration - 3.0 for p in pushes)
    _, pose = series(pert, robot.TOPICS.odom, lambda m: (m.pose.pose.position.x, m.pose.pose.position.y))
    assert np.ptp(pose, axis=0).max() > 0.04
    _, twist = series(pert, robot.TOPICS.cmd_vel, lambda m: (m.linear.x, m.linear.y, m.angular.z))
    assert np.all(np.array(twist) == 0.0)
    # The end effector never went into the table (pushes that would lower it are scaled down). Checked
    # while the base is where it started, in front of the table (a pushed base may leave the ee in the air).
    tq, _ = series(pert, robot.TOPICS.joint_states, lambda m: m.position)
    over_table = (tq > tq[0] + 2.5) & (tq < tq[0] + pushes[0].t)
    ee_z = np.array([K.forward(q)[2] for q in qp[over_table]])
    assert ee_z.min() > M.TABLE_HEIGHT + M.EE_RADIUS - 0.03


def test_delayed_demonstrations_execute_each_command_late_and_record_it_at_its_tick(tmp_path: Path) -> None:
    """`--max-delay`: the episode's drawn latency shifts the executed motion, not the recorded labels."""
    from vand_ros.simulation import perturb as P

    base = ["demos", "--behaviour", "wipe", "--episodes", "1", "--seed", "3", "--duration", "6"]
    assert cli.main([*base, "--out", str(tmp_path / "clean")]) == 0
    assert cli.main([*base, "--max-delay", "0.04", "--out", str(tmp_path / "late")]) == 0
    clean, late = (read_bag(tmp_path / n / "wipe_000") for n in ("clean", "late"))
    delay = P.Disturber(P.Perturbation(max_delay=0.04), 6.0, P.rng(3, 0, "wipe")).delay
    assert delay == pytest.approx(0.03)  # drawn from {0, 0.01, ..., 0.04} for this seed and episode
    # The wipe's commands depend on time only: the labels are the clean episode's, at the same stamps.
    for topic in (robot.TOPICS.arm_command, robot.TOPICS.cmd_vel):
        assert [t for t, _ in late[topic]] == [t for t, _ in clean[topic]]
    np.testing.assert_array_equal(
        [m.data for _, m in late[robot.TOPICS.arm_command]],
        [m.data for _, m in clean[robot.TOPICS.arm_command]],
    )
    # The joints (100 Hz) follow them `delay` later: the clean motion shifted by 3 samples fits best.
    qc, ql = (np.array([m.position for _, m in b[robot.TOPICS.joint_states]]) for b in (clean, late))
    assert np.abs(ql - qc).max() > 0.01
    errors = [float(np.abs(ql[50 + s :] - qc[50 : len(qc) - s]).max()) for s in range(6)]
    assert int(np.argmin(errors)) == 3 and errors[3] < 1e-3 < errors[0], errors


def test_perturbation_presets_and_validation() -> None:
    from vand_ros.errors import VandError
    from vand_ros.simulation.perturb import Perturbation

    assert not Perturbation.preset("none").active
    dart = Perturbation.preset("dart", dart_scale=2.0)
    assert dart.dart_arm == pytest.approx(0.1) and dart.pushes == 0
    assert dart.dart_base == pytest.approx((0.1, 0.1, 0.2))
    arm_only = Perturbation.preset("dart+push", dart_scale=0.3, dart_base_scale=1.0)
    assert arm_only.dart_arm == pytest.approx(0.015)
    assert arm_only.dart_base == pytest.approx((0.05, 0.05, 0.1))
    assert Perturbation.preset("push", pushes=3).pushes == 3 and Perturbation.preset("push").dart_arm == 0
    with pytest.raises(VandError):
        Perturbation.preset("shake")
    with pytest.raises(VandError):
        Perturbation(dart_arm=-1.0)
    assert Perturbation.preset("none", max_delay=0.02).active
    with pytest.raises(VandError, match="one control period"):
        Perturbation(max_delay=0.05)


def test_switch_demonstrations_switch_instruction_and_demonstrator_mid_episode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--switch`: the bag starts as the behaviour's switch_from behaviour, switches at a whole second in
    SWITCH_TIMES, and the dataset builder cuts it into two episodes, the second the behaviour started
    mid-course, which the demonstrator completes (scored from the switch, as the `switch` condition is)."""
    from vand_ros.data.builder import extract_bag
    from vand_ros.data.config import DataConfig
    from vand_ros.errors import VandError
    from vand_ros.evaluation.closed_loop import trajectory_from_bag
    from vand_ros.evaluation.evaluate import reference_from_bags
    from vand_ros.evaluation.metrics import SuccessConfig, evaluate_trajectory

    args = ["demos", "--behaviour", "all", "--episodes", "1", "--seed", "3", "--out", str(tmp_path / "sw")]
    assert cli.main([*args, "--switch"]) == 0
    written = sorted(p.name for p in (tmp_path / "sw").iterdir())
    assert written == ["patrol_000", "visit_abc_000", "visit_cba_000"]  # wipe has no switch_from
    first, switch = D.make_switch("patrol", 3, 0)
    assert first.behaviour == "visit_abc" and switch.then.behaviour == "patrol"
    assert switch.at == int(switch.at) and D.SWITCH_TIMES[0] <= switch.at <= D.SWITCH_TIMES[1]
    assert first.start_base == D.make("visit_abc", D.episode_rng(3, 0, "visit_abc")).start_base

    bag = read_bag(tmp_path / "sw" / "patrol_000")
    words = [(t / 1e9, m.data) for t, m in bag[robot.TOPICS.instruction]]
    assert {w for t, w in words if t < switch.at} == {"visit_abc"}
    assert {w for t, w in words if t >= switch.at} == {"patrol"}
    assert min(t for t, w in words if w == "patrol") == pytest.approx(switch.at)  # sent at the switch
    assert words[-1][0] == pytest.approx(switch.at + switch.then.duration - 1, abs=1.0)  # then a full episode

    episodes = extract_bag(tmp_path / "sw" / "patrol_000", DataConfig()).episodes
    assert [e.behaviour for e in episodes] == ["visit_abc", "patrol"]
    after = episodes[1]
    assert len(after) / robot.RATES.control == pytest.approx(switch.then.duration, abs=0.5)

    traj = trajectory_from_bag(tmp_path / "sw" / "patrol_000")
    traj.meta.update(behaviour="patrol", measure_from=switch.at)
    clean = reference_from_bags([_clean_patrol(tmp_path)])["patrol"]  # judged from the switch on
    metrics = evaluate_trajectory(traj, clean, SuccessConfig())
    assert metrics.success, (metrics.failures, metrics.values)
    assert cli.main(["demos", "--behaviour", "wipe", "--switch", "--out", str(tmp_path / "w")]) == 1
    assert "no switch_from" in capsys.readouterr().err
    with pytest.raises(VandError, match="switch_from"):
        D.make_switch("wipe", 3, 0)


def test_switch_demonstrations_cover_switches_after_the_first_behaviour_finished() -> None:
    """The `switch` condition switches 30 s into a 150 s run, when the first visit has finished and the
    robot stands at its last station; the demonstrations must show that start as well as mid-course ones
    (with only 3-15 s switches every visit seed failed it: docs/learnability.md, round 16)."""
    for behaviour in ("visit_abc", "visit_cba", "patrol"):
        draws = [D.make_switch(behaviour, 0, ep) for ep in range(96, 128)]
        after = sum(switch.at > first.duration for first, switch in draws)
        during = sum(switch.at < first.duration / 2 for first, switch in draws)
        assert after >= 4 and during >= 8, (behaviour, after, during)


def _clean_patrol(tmp_path: Path) -> Path:
    out = tmp_path / "clean"
    args = ["demos", "--behaviour", "patrol", "--episodes", "2", "--seed", "3", "--out", str(out)]
    assert cli.main(args) == 0
    return out
