"""Closed loop through the node's code path: the demonstrator passes, a constant policy fails,
conditions act."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vand_ros import robot
from vand_ros.evaluation import conditions as C
from vand_ros.evaluation.closed_loop import Trajectory, run_closed_loop
from vand_ros.evaluation.evaluate import run_one
from vand_ros.evaluation.metrics import BehaviourReference, reference_from_trajectories
from vand_ros.simulation import demonstrators as D
from vand_ros.simulation.behaviours import ARM_START_RANGE, BEHAVIOURS, spec

SEED = 0


def own_reference(behaviour: str) -> BehaviourReference:
    """The reference of the demonstrator episode the evaluation scenarios of SEED use."""
    demo = D.make(behaviour, D.episode_rng(C.EVAL_SEED_OFFSET + SEED, 0, behaviour))
    sc = C.Scenario("clean", behaviour, demo, demo.start_base, demo.start_arm, ((0.0, behaviour),))
    return reference_from_trajectories([run_closed_loop(sc, demo.duration)])[behaviour]


@pytest.fixture(scope="module")
def refs() -> dict[str, BehaviourReference]:
    return {b: own_reference(b) for b in ("wipe", "visit_abc")}


@pytest.mark.parametrize(
    ("behaviour", "condition"), [("wipe", "clean"), ("visit_abc", "clean"), ("visit_abc", "switch")]
)
def test_scripted_demonstrator_passes(
    refs: dict[str, BehaviourReference], behaviour: str, condition: str
) -> None:
    record, traj = run_one(None, behaviour, condition, refs[behaviour], seed=SEED, duration=45.0)
    assert record["success"], record
    # The first tick (t = 0) has no sensor message yet: stamped messages start after t = 0.
    assert traj.holding[0] and not traj.holding[1:].any() and record["mode"] == "script"


def test_constant_policy_fails(refs: dict[str, BehaviourReference], tiny_policy: Path) -> None:
    for behaviour in ("wipe", "visit_abc"):
        record, traj = run_one(tiny_policy, behaviour, "clean", refs[behaviour], "deterministic", SEED, 30.0)
        assert not record["success"], record
        # It ran (published every tick after the first, which had no sensor data yet), uselessly.
        assert np.isfinite(traj.cmd_joints[1:]).all()
    assert "dying-out" in run_one(tiny_policy, "wipe", "clean", refs["wipe"], None, SEED, 30.0)[0]["failures"]


def test_push_moves_the_base_and_is_deterministic() -> None:
    sc = C.scenario("push", "visit_abc", SEED, 20.0)
    assert [p.t for p in sc.pushes] == [6.0, 6.0, 12.0]
    base = C.scenario("clean", "visit_abc", SEED, 20.0)
    pushed = run_closed_loop(sc, 7.0)
    calm = run_closed_loop(base, 7.0)
    i = int(np.searchsorted(calm.t, 6.0))
    assert np.allclose(pushed.base[i - 1], calm.base[i - 1])
    jump = np.linalg.norm(pushed.base[i, :2] - calm.base[i, :2])
    assert jump == pytest.approx(2 * C.PUSH_BASE, abs=0.1) or jump > 0.1
    again = run_closed_loop(sc, 7.0)
    np.testing.assert_array_equal(again.base, pushed.base)


def test_push_never_lowers_the_end_effector_into_the_table() -> None:
    """The wipe end effector works just above the table top. A raw +-0.2 rad push of every joint put it
    inside the table in 2 of 3 validation scenarios (round 16), where it stayed stuck; the push condition
    halves such a displacement as the recovery demonstrations do, and still moves the arm."""
    from vand_ros.simulation import kinematics as K

    lowered = 0
    for seed in (1000, 1001, 1002):
        sc = C.scenario("push", "wipe", seed, 149.0)
        push = sc.pushes[0]
        traj = run_closed_loop(sc, push.t + 0.5)
        i = int(np.searchsorted(traj.t, push.t - 1e-9))
        before, after = traj.joints[i - 1], traj.joints[i]
        raw_z = float(K.forward(before + np.asarray(push.arm))[2])
        lowered += raw_z < traj.ee[i - 1, 2] - 0.05  # the raw push would have gone into the table
        assert traj.ee[i, 2] >= traj.ee[i - 1, 2] - 0.01, (seed, traj.ee[i - 1 : i + 1, 2])
        assert np.abs(after - before).max() > 0.01  # pushed, if less
    assert lowered >= 1  # the rule was exercised


def test_perturbed_start_is_outside_the_demonstrated_range() -> None:
    for behaviour in robot.BEHAVIOURS:
        for seed in range(5):
            demo = D.make(behaviour, D.episode_rng(seed, 0, behaviour))  # demonstrations draw inside
            ranges = spec(behaviour).start_base
            assert all(lo <= v <= hi for v, (lo, hi) in zip(demo.start_base, ranges, strict=True))
            sc = C.scenario("perturbed", behaviour, seed, 60.0)
            assert all(not lo <= v <= hi for v, (lo, hi) in zip(sc.start_base, ranges, strict=True))
            assert np.all(np.abs(sc.start_arm - D.HOME) > ARM_START_RANGE + 0.05)
            assert np.all(np.abs(demo.start_arm - D.HOME) <= ARM_START_RANGE)


def test_noise_drops_features_and_the_controller_holds(tmp_path: Path) -> None:
    sc = C.scenario("noise", "wipe", SEED, 25.0)
    traj = run_closed_loop(sc, 25.0)
    assert traj.meta["dropped_features"] > 0.05 * 25 * robot.RATES.features
    assert 0 < traj.holding.sum() < 10  # the 0.4 s burst at 20 s exceeds the 0.3 s max age
    saved = Trajectory.load(traj.save(tmp_path / "run.npz"))
    assert saved.meta["condition"] == "noise" and saved.t.shape == traj.t.shape


def test_switch_changes_the_instruction_mid_run() -> None:
    sc = C.scenario("switch", "visit_cba", SEED, 30.0)
    traj = run_closed_loop(sc, 30.0)
    words = [robot.BEHAVIOURS[i] for i in traj.instruction]
    assert words[0] == "visit_abc" and words[-1] == "visit_cba"
    assert (
        traj.meta["measure_from"]
        == sc.instructions[-1][0]
        == pytest.approx(max(C.SWITCH_MIN, C.SWITCH_FRACTION * 30.0))
    )
    with pytest.raises(Exception, match="not defined"):
        C.scenario("switch", "wipe", SEED, 30.0)


def test_the_behaviour_table_covers_the_instruction_vocabulary_in_order() -> None:
    assert tuple(BEHAVIOURS) == robot.BEHAVIOURS
    for b in BEHAVIOURS.values():
        assert (b.motion in ("stroke", "loop")) == b.periodic and bool(b.order) != b.periodic
        assert not b.switch_from or b.switch_from in BEHAVIOURS
        demo = D.make(b.name, D.episode_rng(0, 0, b.name))
        assert b.duration[0] <= demo.duration <= b.duration[1]


def test_a_command_delay_applies_each_command_later(refs: dict[str, BehaviourReference]) -> None:
    """Transport latency, modelled: the same commands reach the arm 20 ms after their tick."""
    sc = C.scenario("clean", "wipe", SEED, 6.0)
    now = run_closed_loop(sc, 6.0)
    late = run_closed_loop(sc, 6.0, command_delay=0.02)
    assert late.meta["command_delay"] == pytest.approx(0.02) and now.meta["command_delay"] == 0.0
    # The scripted wipe's targets are time-indexed, so the commands agree while the joints lag behind them.
    np.testing.assert_allclose(late.cmd_joints[1:], now.cmd_joints[1:], atol=1e-6)
    moving = np.abs(np.diff(now.joints[:, 0])) > 1e-3  # shoulder_pan moving between ticks
    ahead = np.abs(now.joints[1:, 0] - now.cmd_joints[:-1, 0])[moving]
    behind = np.abs(late.joints[1:, 0] - late.cmd_joints[:-1, 0])[moving]
    assert np.median(behind) > 1.2 * np.median(ahead)
    with pytest.raises(ValueError, match="command_delay"):
        run_closed_loop(sc, 1.0, command_delay=0.05)  # a whole control period
    # The `latency` condition is the clean start with the delay: the same start, the commands later.
    lat = C.scenario("latency", "wipe", SEED, 6.0)
    assert lat.command_delay == C.LATENCY > 0 and sc.command_delay == 0.0
    np.testing.assert_array_equal(lat.start_arm, sc.start_arm)
    assert lat.start_base == sc.start_base and not lat.pushes and not lat.noise
    assert run_closed_loop(lat, 2.0).meta["command_delay"] == pytest.approx(C.LATENCY)
    assert "latency" not in C.COMPARISON_CONDITIONS  # the comparison's five stay as they were
