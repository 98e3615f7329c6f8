"""The observation/action assembler (vand_ros.runtime.assembler): resampling, max age, validation."""

from __future__ import annotations

import numpy as np
import pytest

from vand_ros import robot
from vand_ros.data import bag_writer as bw
from vand_ros.errors import VandError
from vand_ros.runtime.assembler import (
    ActionAssembler,
    AssemblerConfig,
    ObservationAssembler,
    feature_dims,
)
from vand_ros.runtime.layout import default_layout

MS = 1_000_000
LAYOUT = default_layout()
J = list(robot.ARM_JOINT_NAMES)
NF = len(LAYOUT.feature_names)
DIMS = list(feature_dims(LAYOUT.feature_names) or ())


def _full(asm: ObservationAssembler, t: int, joints: np.ndarray | None = None) -> None:
    """Feed one good sample of every stream at time t."""
    q = np.arange(len(J), dtype=np.float64) if joints is None else joints
    assert asm.update_joints(t, J, q) is None
    assert asm.update_base(t, [0.1, 0.2, 0.0, 0.0, 0.0, 0.3]) is None
    assert asm.update_features(t, np.ones(NF, dtype=np.float32), DIMS) is None
    assert asm.update_instruction(t, "patrol") is None


def test_layout_order_and_values() -> None:
    asm = ObservationAssembler(AssemblerConfig(LAYOUT))
    _full(asm, 100 * MS)
    obs = asm.assemble(100 * MS)
    assert obs.valid and obs.vector is not None and obs.vector.dtype == np.float32
    sl = LAYOUT.obs_slices
    np.testing.assert_array_equal(obs.vector[sl["joints"]], np.arange(len(J)))
    np.testing.assert_allclose(obs.vector[sl["base"]], [0.1, 0.2, 0.3])  # vx, vy, wz
    onehot = obs.vector[sl["instruction"]]
    assert onehot.tolist() == [1.0 if w == "patrol" else 0.0 for w in LAYOUT.vocabulary]
    assert obs.instruction == "patrol"


def test_joints_matched_by_name_in_any_order_extras_ignored() -> None:
    asm = ObservationAssembler(AssemblerConfig(LAYOUT))
    _full(asm, 0)
    names = ["gripper", *reversed(J), "camera_tilt"]
    pos = [9.0, *reversed(range(len(J))), float("nan")]  # NaN on an extra joint does not matter
    assert asm.update_joints(10 * MS, names, pos) is None
    obs = asm.assemble(10 * MS)
    assert obs.vector is not None
    np.testing.assert_array_equal(obs.vector[: len(J)], np.arange(len(J)))


@pytest.mark.parametrize(
    ("names", "pos", "kind", "needle"),
    [
        (J[:-1], list(range(5)), "joint-names", "arm_wrist_yaw"),  # a configured joint missing
        ([n.upper() for n in J], list(range(6)), "joint-names", "missing"),  # unknown names only
        (J, list(range(5)), "size", "6 names but 5 positions"),
        (J, [0, 1, float("nan"), 3, 4, float("inf")], "non-finite", "arm_elbow"),
        ([*J, J[0]], list(range(7)), "joint-names", "more than once"),
    ],
)
def test_bad_joint_states_are_rejected_with_a_reason(
    names: list[str], pos: list[float], kind: str, needle: str
) -> None:
    asm = ObservationAssembler(AssemblerConfig(LAYOUT))
    _full(asm, 0)
    rej = asm.update_joints(5 * MS, names, pos)
    assert rej is not None and rej.kind == kind and needle in rej.reason and rej.topic == "/joint_states"
    obs = asm.assemble(5 * MS)  # the older good sample is not used while the stream's last message was bad
    assert not obs.valid and any("rejected" in r for r in obs.reasons)
    assert asm.update_joints(6 * MS, J, np.zeros(6)) is None  # recovers on the next good message
    assert asm.assemble(6 * MS).valid


def test_latest_sample_at_or_before_the_tick() -> None:
    asm = ObservationAssembler(AssemblerConfig(LAYOUT))
    _full(asm, 0)
    asm.update_joints(50 * MS, J, np.full(6, 5.0))  # exactly at the tick: used
    asm.update_joints(60 * MS, J, np.full(6, 6.0))  # stamped after the tick: not used for it
    obs = asm.assemble(50 * MS)
    assert obs.vector is not None and obs.vector[0] == 5.0
    obs = asm.assemble(60 * MS)
    assert obs.vector is not None and obs.vector[0] == 6.0


def test_joints_are_moved_forward_to_the_tick_by_their_velocities() -> None:
    """Joint states arrive at a different age each tick (0-10 ms at 100 Hz); the assembler moves the latest
    one to the tick with the message's velocities, up to `joint_alignment`, so that jitter never reaches a
    policy that decodes its targets onto the measured joints."""
    asm = ObservationAssembler(AssemblerConfig(LAYOUT, joint_alignment=0.02))
    _full(asm, 0)
    q, v = np.arange(6.0), np.linspace(-1.0, 1.0, 6)
    names = ["gripper", *reversed(J)]  # velocities are matched by name, as the positions are
    assert asm.update_joints(40 * MS, names, [9.0, *q[::-1]], [float("nan"), *v[::-1]]) is None
    joints = LAYOUT.obs_slices["joints"]

    def seen(tick: int) -> np.ndarray:
        vector = asm.assemble(tick).vector
        assert vector is not None
        return vector[joints].astype(np.float64)

    np.testing.assert_allclose(seen(40 * MS), q, atol=1e-6)  # stamped at the tick: as it is
    np.testing.assert_allclose(seen(47 * MS), q + 0.007 * v, atol=1e-6)
    np.testing.assert_allclose(seen(90 * MS), q + 0.02 * v, atol=1e-6)  # 50 ms old: at most 20 ms forward

    off = ObservationAssembler(AssemblerConfig(LAYOUT, joint_alignment=None))
    _full(off, 0)
    off.update_joints(40 * MS, J, q, v)
    assert off.assemble(47 * MS).vector is not None
    np.testing.assert_allclose(off.assemble(47 * MS).vector[joints], q)  # type: ignore[index]


@pytest.mark.parametrize("velocities", [[], [0.5, float("nan"), 0, 0, 0, 0]])
def test_joints_without_usable_velocities_are_used_unaligned(velocities: list[float]) -> None:
    asm = ObservationAssembler(AssemblerConfig(LAYOUT))
    _full(asm, 0)
    assert asm.update_joints(40 * MS, J, np.full(6, 2.0), velocities) is None
    vector = asm.assemble(47 * MS).vector
    assert vector is not None
    np.testing.assert_array_equal(vector[LAYOUT.obs_slices["joints"]], np.full(6, 2.0))


def test_joint_velocities_of_the_wrong_size_are_rejected_and_rclpy_messages_carry_them() -> None:
    asm = ObservationAssembler(AssemblerConfig(LAYOUT))
    _full(asm, 0)
    rej = asm.update_joints(40 * MS, J, np.zeros(6), np.zeros(4))
    assert rej is not None and rej.kind == "size" and "6 names but 4 velocities" in rej.reason
    assert not asm.assemble(47 * MS).valid  # the stream stays invalid until its next good message
    msg = bw.joint_state(45 * MS, J, np.zeros(6), np.ones(6))  # a whole message, as the node gets it
    assert asm.on_joint_state(msg, 46 * MS) is None
    vector = asm.assemble(50 * MS).vector
    assert vector is not None
    np.testing.assert_allclose(vector[LAYOUT.obs_slices["joints"]], np.full(6, 0.005), atol=1e-6)


def test_max_age_makes_the_tick_invalid_never_zero_filled() -> None:
    asm = ObservationAssembler(
        AssemblerConfig(LAYOUT, max_age_joints=1.0, max_age_base=0.2, max_age_features=1.0)
    )
    _full(asm, 0)
    assert asm.assemble(200 * MS).valid  # 0.2 s old: still within
    obs = asm.assemble(201 * MS)
    assert obs.vector is None
    assert obs.reasons == ("/odom: latest sample is 0.201 s old (max 0.200 s)",)
    assert asm.assemble(250 * MS).causes == obs.causes == ("/odom: latest sample is # s old (max # s)",)
    assert (
        ObservationAssembler(AssemblerConfig(LAYOUT)).assemble(0).reasons[0]
        == "/joint_states: no message yet"
    )


WALL = 1_795_936_874 * 1000 * MS  # [ns] a wall-clock stamp of 2026
SIM = 12 * 1000 * MS  # [ns] 12 s of sim time


def test_sim_time_against_wall_time_is_named_with_what_to_set() -> None:
    """Stamps and clock decades apart are two clocks, not a slow sensor: one cause, said with the fix."""
    node_on_wall = ObservationAssembler(AssemblerConfig(LAYOUT))
    _full(node_on_wall, SIM)
    obs = node_on_wall.assemble(WALL)
    assert obs.vector is None and len(obs.causes) == 3  # joints, base, features (the instruction holds)
    assert all("use_sim_time:=true" in r and "simulation time" in r for r in obs.reasons)
    assert node_on_wall.assemble(WALL + 50 * MS).causes == obs.causes  # numbers blanked: logged once
    node_on_sim = ObservationAssembler(AssemblerConfig(LAYOUT))
    _full(node_on_sim, WALL)
    reasons = node_on_sim.assemble(SIM).reasons
    assert reasons and all("use_sim_time:=false" in r for r in reasons)
    slow = ObservationAssembler(AssemblerConfig(LAYOUT))
    _full(slow, SIM)
    assert "use_sim_time" not in " ".join(
        slow.assemble(SIM + 3600 * 1000 * MS).reasons
    )  # an hour: a dead sensor


def test_instruction_holds_without_max_age_and_must_be_in_vocabulary() -> None:
    asm = ObservationAssembler(AssemblerConfig(LAYOUT))
    _full(asm, 0)
    for s in range(1, 30):
        t = s * 1000 * MS
        asm.update_joints(t, J, np.zeros(6))
        asm.update_base(t, np.zeros(6))
        asm.update_features(t, np.zeros(NF), DIMS)
    assert asm.assemble(29_000 * MS).instruction == "patrol"
    rej = asm.update_instruction(29_000 * MS, "dance")
    assert rej is not None and rej.kind == "vocabulary" and "dance" in rej.reason


def test_features_size_layout_and_finite() -> None:
    asm = ObservationAssembler(AssemblerConfig(LAYOUT))
    r1 = asm.update_features(0, np.ones(NF - 1), ())
    assert r1 is not None and r1.kind == "size" and f"expected {NF}" in r1.reason
    r2 = asm.update_features(1, np.ones(NF), [("entity:a,b", 2), ("field:x,y,z,visible", 4)])
    assert r2 is not None and r2.kind == "feature-layout"
    bad = np.ones(NF)
    bad[3] = np.nan
    r3 = asm.update_features(2, bad, DIMS)
    assert r3 is not None and r3.kind == "non-finite" and "station_a.visible" in r3.reason
    assert asm.update_features(3, np.ones(NF), ()) is None  # no dims: size alone is checked


def test_time_going_backwards_is_rejected() -> None:
    asm = ObservationAssembler(AssemblerConfig(LAYOUT))
    assert asm.update_joints(100 * MS, J, np.zeros(6)) is None
    rej = asm.update_joints(90 * MS, J, np.zeros(6))
    assert rej is not None and rej.kind == "time-backwards" and "10.000 ms before" in rej.reason


def test_clock_jump_back_resets_the_samples() -> None:
    asm = ObservationAssembler(AssemblerConfig(LAYOUT))
    _full(asm, 10_000 * MS)
    assert asm.assemble(10_000 * MS).valid
    assert not asm.assemble(50 * MS).valid  # the clock went back (simulation reset)
    assert asm.clock_jumps == 1
    _full(asm, 60 * MS)  # samples of the new timeline are accepted again
    assert asm.assemble(60 * MS).valid


def test_messages_duck_typed_header_stamp_or_receive_time() -> None:
    asm = ObservationAssembler(AssemblerConfig(LAYOUT))
    assert asm.on_joint_state(bw.joint_state(0, J, np.ones(6)), 7 * MS) is None  # zero stamp: receive time
    assert asm.joints.stamps[-1] == 7 * MS
    assert asm.on_joint_state(bw.joint_state(8 * MS, J, np.ones(6)), 30 * MS) is None  # header stamp
    assert asm.joints.stamps[-1] == 8 * MS
    odom = bw.odometry(8 * MS, (1.0, 2.0), 0.5, (0.1, 0.2, 0.0), (0.0, 0.0, 0.3))
    assert asm.on_odometry(odom, 9 * MS) is None
    assert asm.on_features(bw.float32_array(np.zeros(NF), DIMS), 9 * MS) is None
    assert asm.on_instruction(bw.string("wipe"), 9 * MS) is None
    obs = asm.assemble(10 * MS)
    assert obs.vector is not None
    np.testing.assert_allclose(obs.vector[LAYOUT.obs_slices["base"]], [0.1, 0.2, 0.3], rtol=1e-6)
    assert "/joint_states age [s]" in asm.diagnostics(10 * MS)


def test_action_of_a_tick_is_the_command_sent_at_it() -> None:
    act = ActionAssembler(AssemblerConfig(LAYOUT), control_rate=20.0)  # 50 ms ticks
    for k in range(4):
        t = k * 50 * MS
        assert act.update_arm(t, np.full(6, float(k))) is None
        assert act.update_cmd(t, [k, 0, 0, 0, 0, 0]) is None
    a = act.assemble(50 * MS)
    assert a.vector is not None and a.vector[0] == 1.0 and a.vector[6] == 1.0  # not the one at the next tick
    late = ActionAssembler(AssemblerConfig(LAYOUT), control_rate=20.0)
    late.update_arm(58 * MS, np.full(6, 2.0))  # sent 8 ms after the tick (compute latency)
    late.update_cmd(58 * MS, np.zeros(6))
    a = late.assemble(50 * MS)
    assert a.vector is not None and a.vector[0] == 2.0
    assert not late.assemble(0).valid  # nothing sent before the next tick of tick 0
    rej = late.update_arm(60 * MS, np.zeros(5))
    assert rej is not None and "5 joint targets, expected 6" in rej.reason


def test_config_validation() -> None:
    with pytest.raises(VandError, match="max_age_joints"):
        AssemblerConfig(LAYOUT, max_age_joints=-1.0)
    with pytest.raises(VandError, match="base axis"):
        AssemblerConfig(
            type(LAYOUT)(LAYOUT.joint_names, ("forward",), LAYOUT.feature_names, LAYOUT.vocabulary)
        )
