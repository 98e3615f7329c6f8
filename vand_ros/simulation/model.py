"""Build the MuJoCo model of the mobile manipulator and its scene from the URDF, with `mujoco.MjSpec`.

The URDF (assets/vand_mm.urdf) describes the robot once, for RViz / Gazebo + ros2_control and for this
simulation. Here MjSpec adds what URDF cannot say: the planar base joints (x, y, yaw) with velocity
actuators acting in the base frame, PD position actuators on the arm joints, gravity compensation of
the arm (as a real arm controller does), the on-board camera, and the scene: a floor, a table to wipe,
stations A, B and C marked on the floor, and two movable objects (a sponge on the table and a box).

World frame: x forward from the robot's usual start, z up. All lengths [m], angles [rad].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from vand_ros import robot

URDF_PATH = Path(__file__).resolve().parent / "assets" / "vand_mm.urdf"

TIMESTEP = 1.0 / 600.0  # [s]: 600 Hz is a common multiple of every rate in robot.RATES (100, 50, 20, 15 Hz)
BASE_JOINTS = ("base_x", "base_y", "base_yaw")
CAMERA = "front_camera"  # on the base, looking forward (MuJoCo camera frame: -z forward, y up)
CAMERA_POS = (0.32, 0.0, 0.32)  # [m] in base_link
CAMERA_PITCH_DOWN = 0.2  # [rad]
CAMERA_FOVY = 60.0  # [deg]
CAMERA_ASPECT = 4.0 / 3.0  # width / height of the image the features pretend to come from
CAMERA_RANGE = (0.05, 6.0)  # [m] depth range within which an entity is visible
EE_SITE = "ee"

# Arm kinematics as the URDF gives them (a test checks these against MuJoCo's forward kinematics).
ARM_MOUNT = (0.2, 0.0, 0.25)  # [m] shoulder pan joint in base_link
SHOULDER_HEIGHT = 0.12  # [m] lift axis above the pan joint
UPPER_ARM = 0.40  # [m] lift -> elbow
FOREARM = 0.38  # [m] elbow -> wrist pitch
HAND = 0.17  # [m] wrist pitch -> end-effector centre (roll and yaw at 0)
EE_RADIUS = 0.03  # [m] the end-effector sphere

# Scene [m]: table centre (x, y), top size (x, y) and height; stations on the floor; objects.
TABLE_CENTER = (2.05, 0.0)
TABLE_SIZE = (0.6, 1.2)
TABLE_HEIGHT = 0.45
STATIONS: dict[str, tuple[float, float]] = {
    "station_a": (0.3, 1.6),
    "station_b": (-1.3, 0.9),
    "station_c": (-0.9, -0.9),
}
STATION_RADIUS = 0.15
STATION_COLOURS = {
    "station_a": (0.9, 0.2, 0.2, 1),
    "station_b": (0.2, 0.8, 0.2, 1),
    "station_c": (0.2, 0.3, 0.9, 1),
}
SPONGE_POS = (1.95, 0.35, TABLE_HEIGHT + 0.02)
BOX_POS = (1.3, -1.9, 0.1)

# Collision bits: scene geoms collide with base and arm; the arm does not collide with the base.
_SCENE, _BASE, _ARM = (1, 3), (1, 1), (2, 0)  # (contype, conaffinity)

# Actuator gains. The base tracks its velocity like a wheeled base's velocity controller would.
BASE_KV = (4000.0, 4000.0, 600.0)  # [N s/m, N s/m, N m s/rad]
ARM_KP = (400.0, 400.0, 250.0, 80.0, 30.0, 30.0)  # [N m/rad]
ARM_ARMATURE = 0.05


@dataclass(frozen=True)
class ModelIds:
    """Indices into MjModel/MjData that the stepping code needs, looked up once."""

    base_qpos: np.ndarray  # (3,) qpos addresses of x, y, yaw
    base_dof: np.ndarray  # (3,) dof addresses of x, y, yaw
    arm_qpos: np.ndarray  # (6,)
    arm_dof: np.ndarray  # (6,)
    base_act: np.ndarray  # (3,) vx, vy, wz velocity actuators (base frame)
    arm_act: np.ndarray  # (6,) position actuators
    camera: int
    ee_site: int
    entity_bodies: dict[str, int]  # movable entities -> body id
    entity_sites: dict[str, int]  # fixed entities -> site id


def build_spec(urdf: Path = URDF_PATH) -> mujoco.MjSpec:
    """The full MjSpec: robot from the URDF plus base joints, actuators, camera and scene."""
    spec = mujoco.MjSpec.from_file(str(urdf))
    spec.modelname = "vand_mm_scene"
    spec.compiler.discardvisual = False  # the URDF's visuals were already skipped; keep the station marks
    spec.option.timestep = TIMESTEP
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.visual.quality.offsamples = 0
    spec.visual.global_.offwidth = 640
    spec.visual.global_.offheight = 480
    spec.visual.headlight.ambient = [0.45, 0.45, 0.45]
    spec.visual.headlight.diffuse = [0.5, 0.5, 0.5]

    base = spec.body("base_link")
    base.add_joint(name="base_x", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[1, 0, 0], damping=1.0)
    base.add_joint(name="base_y", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[0, 1, 0], damping=1.0)
    base.add_joint(name="base_yaw", type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 0, 1], damping=1.0)
    base.add_site(name="base_site", pos=[0, 0, 0.15], size=[0.02, 0, 0])
    base.add_camera(
        name=CAMERA,
        pos=list(CAMERA_POS),
        # MuJoCo cameras look along -z: rotate so -z points along +x, y up, then pitch down.
        xyaxes=[0, -1, 0, np.sin(CAMERA_PITCH_DOWN), 0, np.cos(CAMERA_PITCH_DOWN)],
        fovy=CAMERA_FOVY,
    )

    for geom in spec.geoms:
        geom.contype, geom.conaffinity = _BASE if geom.parent.name == "base_link" else _ARM
        geom.rgba = [0.25, 0.3, 0.35, 1] if geom.parent.name == "base_link" else [0.85, 0.55, 0.15, 1]
    for name in ("arm_link1", "arm_link2", "arm_link3", "arm_link4", "arm_link5", "tool_link"):
        spec.body(name).gravcomp = 1.0
    spec.body("tool_link").add_site(name=EE_SITE, pos=[0, 0, 0.05], size=[0.01, 0, 0])

    for axis, (name, kv) in enumerate(zip(("base_vx", "base_vy", "base_wz"), BASE_KV, strict=True)):
        act = spec.add_actuator(name=name, trntype=mujoco.mjtTrn.mjTRN_SITE, target="base_site")
        gear = [0.0] * 6
        gear[axis if axis < 2 else 5] = 1.0
        act.gear = gear
        act.set_to_velocity(kv=kv)
        limit = robot.BASE_MAX_VELOCITY[axis]
        act.ctrlrange = [-limit, limit]
        act.ctrllimited = True
    for joint, kp in zip(robot.ARM_JOINTS, ARM_KP, strict=True):
        spec.joint(joint.name).armature = ARM_ARMATURE
        act = spec.add_actuator(
            name=f"{joint.name}_position", trntype=mujoco.mjtTrn.mjTRN_JOINT, target=joint.name
        )
        act.set_to_position(kp=kp, dampratio=1.0)
        act.ctrlrange = [joint.lower, joint.upper]
        act.ctrllimited = True

    _add_scene(spec)
    return spec


def _add_scene(spec: mujoco.MjSpec) -> None:
    world = spec.worldbody
    spec.add_texture(
        name="grid", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
        rgb1=[0.82, 0.82, 0.8], rgb2=[0.72, 0.72, 0.7], width=256, height=256,
    )  # fmt: skip
    spec.add_material(name="grid", texrepeat=[8, 8], textures=["", "grid"])
    world.add_light(pos=[0, 0, 4], dir=[0, 0, -1], castshadow=False, diffuse=[0.8, 0.8, 0.8])
    world.add_geom(
        name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[6, 6, 0.1], material="grid",
        contype=_SCENE[0], conaffinity=_SCENE[1],
    )  # fmt: skip
    world.add_camera(name="overview", pos=[0.4, -3.4, 3.2], xyaxes=[1, 0, 0, 0, 0.69, 0.72], fovy=60)

    tx, ty = TABLE_CENTER
    table = world.add_body(name="table", pos=[tx, ty, 0])
    table.add_geom(
        name="table_top", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[0, 0, TABLE_HEIGHT - 0.02],
        size=[TABLE_SIZE[0] / 2, TABLE_SIZE[1] / 2, 0.02], rgba=[0.6, 0.45, 0.3, 1],
        friction=[0.4, 0.005, 1e-4],
        contype=_SCENE[0], conaffinity=_SCENE[1],
    )  # fmt: skip
    for sx in (-1, 1):
        for sy in (-1, 1):
            table.add_geom(
                type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.025, 0.025, (TABLE_HEIGHT - 0.04) / 2],
                pos=[sx * (TABLE_SIZE[0] / 2 - 0.04), sy * (TABLE_SIZE[1] / 2 - 0.04),
                     (TABLE_HEIGHT - 0.04) / 2],
                rgba=[0.45, 0.33, 0.2, 1], contype=_SCENE[0], conaffinity=_SCENE[1],
            )  # fmt: skip
    table.add_site(name="table", pos=[0, 0, TABLE_HEIGHT], size=[0.01, 0, 0])

    for name, (x, y) in STATIONS.items():
        # A flat coloured disc: a mark on the floor, no collision.
        world.add_geom(
            name=f"{name}_mark", type=mujoco.mjtGeom.mjGEOM_CYLINDER, pos=[x, y, 0.004],
            size=[STATION_RADIUS, 0.004, 0], rgba=list(STATION_COLOURS[name]), contype=0, conaffinity=0,
        )  # fmt: skip
        world.add_site(name=name, pos=[x, y, 0.0], size=[0.01, 0, 0])

    sponge = world.add_body(name="sponge", pos=list(SPONGE_POS))
    sponge.add_freejoint(name="sponge_free")
    sponge.add_geom(
        type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.06, 0.04, 0.02], mass=0.05, rgba=[0.95, 0.85, 0.2, 1],
        contype=_SCENE[0], conaffinity=_SCENE[1],
    )  # fmt: skip
    box = world.add_body(name="box", pos=list(BOX_POS))
    box.add_freejoint(name="box_free")
    box.add_geom(
        type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.1, 0.1, 0.1], mass=1.0, rgba=[0.5, 0.3, 0.7, 1],
        contype=_SCENE[0], conaffinity=_SCENE[1],
    )  # fmt: skip


def build_model(urdf: Path = URDF_PATH) -> mujoco.MjModel:
    """Compile the scene; checks that every name robot.py promises exists in the model."""
    model = build_spec(urdf).compile()
    for name in (*robot.ARM_JOINT_NAMES, *BASE_JOINTS):
        if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name) < 0:
            raise RuntimeError(f"joint {name!r} of vand_ros/robot.py is missing from {urdf}")
    return model


def model_ids(model: mujoco.MjModel) -> ModelIds:
    def jid(name: str) -> int:
        return int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name))

    def aid(name: str) -> int:
        return int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, name))

    base = [jid(n) for n in BASE_JOINTS]
    arm = [jid(n) for n in robot.ARM_JOINT_NAMES]
    movable = {"sponge", "box"}
    return ModelIds(
        base_qpos=np.array([model.jnt_qposadr[j] for j in base]),
        base_dof=np.array([model.jnt_dofadr[j] for j in base]),
        arm_qpos=np.array([model.jnt_qposadr[j] for j in arm]),
        arm_dof=np.array([model.jnt_dofadr[j] for j in arm]),
        base_act=np.array([aid(n) for n in ("base_vx", "base_vy", "base_wz")]),
        arm_act=np.array([aid(f"{n}_position") for n in robot.ARM_JOINT_NAMES]),
        camera=int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, CAMERA)),
        ee_site=int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, EE_SITE)),
        entity_bodies={
            e: int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, e))
            for e in robot.FEATURE_ENTITIES
            if e in movable
        },
        entity_sites={
            e: int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, e))
            for e in robot.FEATURE_ENTITIES
            if e not in movable
        },
    )
