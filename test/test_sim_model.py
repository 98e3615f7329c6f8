"""The simulated robot without ROS: URDF vs robot.py, kinematics vs MuJoCo, stepping API, camera features."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from vand_ros import robot
from vand_ros.simulation import features as F
from vand_ros.simulation import kinematics as K
from vand_ros.simulation import model as M
from vand_ros.simulation.physics import STEPS_PER_S, Sim


@pytest.fixture(scope="module")
def sim() -> Sim:
    return Sim()


def test_urdf_joints_and_limits_match_robot_py() -> None:
    root = ET.parse(M.URDF_PATH).getroot()
    joints = {j.get("name"): j for j in root.findall("joint") if j.get("type") == "revolute"}
    assert list(joints) == list(robot.ARM_JOINT_NAMES)
    for spec in robot.ARM_JOINTS:
        limit = joints[spec.name].find("limit")
        assert limit is not None
        assert float(limit.get("lower", "nan")) == spec.lower
        assert float(limit.get("upper", "nan")) == spec.upper
        assert float(limit.get("velocity", "nan")) == spec.max_velocity
    control = root.find("ros2_control")
    assert control is not None
    controlled = [j.get("name") for j in control.findall("joint")]
    assert controlled == list(robot.ARM_JOINT_NAMES)
    for j in control.findall("joint"):
        assert [c.get("name") for c in j.findall("command_interface")] == ["position"]


def test_model_has_robot_scene_and_actuators(sim: Sim) -> None:
    m = sim.model
    assert m.nu == 3 + len(robot.ARM_JOINTS)
    assert sim.ids.camera >= 0 and sim.ids.ee_site >= 0
    assert set(sim.ids.entity_bodies) | set(sim.ids.entity_sites) == set(robot.FEATURE_ENTITIES)
    # Movable objects are free bodies; the station marks do not collide.
    assert m.njnt == 3 + len(robot.ARM_JOINTS) + 2
    assert m.geom("station_a_mark").contype == 0


def test_closed_form_kinematics_match_mujoco(sim: Sim) -> None:
    rng = np.random.default_rng(1)
    for _ in range(10):
        q = np.array(
            [rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(-1.5, 1.5), rng.uniform(-1, 1), 0, 0]
        )
        sim.reset(arm=q)
        np.testing.assert_allclose(sim.ee_position(), K.forward(q), atol=1e-9)
    target = np.array([0.75, -0.2, M.EE_RADIUS])
    np.testing.assert_allclose(K.forward(K.inverse(target)), target, atol=1e-9)


def test_arm_holds_its_target_and_rejects_bad_commands(sim: Sim) -> None:
    sim.reset()
    q = np.array([0.4, 0.2, 0.9, 0.5, 0.3, -0.2])
    sim.set_arm_targets(q)
    sim.step(STEPS_PER_S)
    np.testing.assert_allclose(sim.joint_positions(), q, atol=2e-3)
    for bad in ([np.nan, 0, 0, 0, 0, 0], [0.1] * 5, [0.1] * 7, [np.inf] * 6):
        with pytest.raises(ValueError):
            sim.set_arm_targets(bad)
    with pytest.raises(ValueError):
        sim.set_base_twist(np.nan, 0.0, 0.0)
    np.testing.assert_allclose(sim.arm_targets(), q)
    sim.step(STEPS_PER_S // 2)
    np.testing.assert_allclose(sim.joint_positions(), q, atol=2e-3)


def test_base_twist_is_in_base_frame_and_times_out(sim: Sim) -> None:
    sim.reset(base_pose=(0.0, 0.0, math.pi / 2))
    sim.set_base_twist(0.4, 0.0, 0.0)
    sim.step(STEPS_PER_S // 4)  # 0.25 s < cmd_timeout 0.5 s
    odom = sim.odom()
    assert odom.vx == pytest.approx(0.4, abs=0.02)
    assert abs(odom.vy) < 0.01
    assert odom.y > 0.05 and abs(odom.x) < 0.01  # facing +y, so forward is world +y
    sim.step(STEPS_PER_S)  # past the timeout: the base stops by itself
    stopped = sim.odom()
    assert abs(stopped.vx) < 0.01  # what is left is the hold taking back the stop's overshoot (< 1 mm)
    sim.step(STEPS_PER_S // 2)
    assert sim.odom().y == pytest.approx(stopped.y, abs=1e-3)


def test_a_parked_base_holds_its_pose_under_a_steady_load_but_keeps_where_a_push_left_it(sim: Sim) -> None:
    # A velocity servo alone gives way to a steady force F at v = F / kv; the hold must keep the pose.
    seconds, force, torque = 5.0, 20.0, 2.0  # [s], [N] along world x, [N m] about z
    unheld_shift = force / M.BASE_KV[0] * seconds  # [m] 0.025: what the servo alone would allow
    unheld_turn = torque / M.BASE_KV[2] * seconds  # [rad] 0.017
    sim.reset(base_pose=(0.5, -0.3, 0.4))
    sim.set_base_twist(0.0, 0.0, 0.0)
    base = sim.model.body("base_link").id
    sim.data.xfrc_applied[base] = (force, 0.0, 0.0, 0.0, 0.0, torque)
    try:
        sim.step(round(seconds * STEPS_PER_S))
        held = sim.odom()
    finally:
        sim.data.xfrc_applied[base] = 0.0
    assert abs(held.x - 0.5) < unheld_shift / 5 and abs(held.y + 0.3) < unheld_shift / 5
    assert abs(held.yaw - 0.4) < unheld_turn / 4
    # A push moves the parked base; the hold keeps the new pose instead of driving back (a wheel slip).
    sim.displace_base(0.1, 0.0, 0.1)
    sim.step(2 * STEPS_PER_S)
    pushed = sim.odom()
    assert pushed.x == pytest.approx(held.x + 0.1, abs=2e-3)
    assert pushed.yaw == pytest.approx(held.yaw + 0.1, abs=2e-3)
    # Commanded motion is not held back.
    sim.set_base_twist(0.0, 0.0, 0.5)
    sim.step(STEPS_PER_S // 4)
    assert sim.odom().wz == pytest.approx(0.5, abs=0.02)


def test_features_layout_and_visibility(sim: Sim) -> None:
    dims = F.layout_dims()
    assert dims == [("entity:" + ",".join(robot.FEATURE_ENTITIES), 6), ("field:x,y,z,visible", 4)]
    # Facing the table from 1 m in front: table visible straight ahead, z = depth along the optical axis.
    sim.reset(base_pose=(M.TABLE_CENTER[0] - 1.5, M.TABLE_CENTER[1], 0.0))
    feats = sim.features().reshape(len(robot.FEATURE_ENTITIES), 4)
    table = feats[robot.FEATURE_ENTITIES.index("table")]
    assert table[3] == 1.0 and 0.9 < table[2] < 1.3 and abs(table[0]) < 0.02
    assert table[1] < 0  # above the camera: optical y points down
    # Turned away: nothing of the table, all zeros with visible = 0.
    sim.reset(base_pose=(M.TABLE_CENTER[0] - 1.5, M.TABLE_CENTER[1], math.pi))
    feats = sim.features().reshape(len(robot.FEATURE_ENTITIES), 4)
    assert np.all(feats[robot.FEATURE_ENTITIES.index("table")] == 0)
    # Pure projection check: out of range and outside the field of view are hidden.
    cam_mat = np.column_stack([[0, -1, 0], [0, 0, 1], [-1, 0, 0]]).astype(float)
    pts = np.array([[2.0, 0, 0], [20.0, 0, 0], [1.0, 5.0, 0], [-1.0, 0, 0]])
    out = F.camera_features(np.zeros(3), cam_mat, pts).reshape(4, 4)
    np.testing.assert_allclose(out[0], [0, 0, 2.0, 1], atol=1e-6)
    assert np.all(out[1:] == 0)
