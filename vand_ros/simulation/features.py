"""Camera features computed from the scene: each entity's position in the camera frame and whether it is seen.

Stands in for an upstream visual encoder. Frame: the ROS optical convention (REP 103): x right, y down,
z forward [m]. An entity is visible when it lies in front of the camera within CAMERA_RANGE and inside
the field of view (fovy CAMERA_FOVY, aspect CAMERA_ASPECT); occlusion is not modelled. A hidden entity
reads x = y = z = 0, visible = 0, so a consumer never sees stale coordinates.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from vand_ros import robot
from vand_ros.simulation import model as M

# MuJoCo camera frame (x right, y up, -z forward) -> optical frame (x right, y down, z forward).
_MJ_TO_OPTICAL = np.diag([1.0, -1.0, -1.0])


def layout_dims() -> list[tuple[str, int]]:
    """The Float32MultiArray layout of /camera/features: (label, size), outermost first."""
    return [
        ("entity:" + ",".join(robot.FEATURE_ENTITIES), len(robot.FEATURE_ENTITIES)),
        ("field:" + ",".join(robot.FEATURE_FIELDS), len(robot.FEATURE_FIELDS)),
    ]


def entity_positions(data: mujoco.MjData, ids: M.ModelIds) -> np.ndarray:
    """World positions of robot.FEATURE_ENTITIES, (E, 3) [m]."""
    out = np.empty((len(robot.FEATURE_ENTITIES), 3))
    for i, name in enumerate(robot.FEATURE_ENTITIES):
        if name in ids.entity_bodies:
            out[i] = data.xpos[ids.entity_bodies[name]]
        else:
            out[i] = data.site_xpos[ids.entity_sites[name]]
    return out


def camera_features(cam_pos: np.ndarray, cam_mat: np.ndarray, world_points: np.ndarray) -> np.ndarray:
    """Features (E * 4,) float32 from a camera pose (cam_pos (3,), cam_mat (3, 3) MuJoCo camera-to-world)."""
    rel = (world_points - cam_pos) @ cam_mat  # (E, 3) in the MuJoCo camera frame
    opt = rel @ _MJ_TO_OPTICAL  # (E, 3) optical frame
    half_v = math.radians(M.CAMERA_FOVY) / 2
    half_h = math.atan(math.tan(half_v) * M.CAMERA_ASPECT)
    z = opt[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        visible = (
            (z > M.CAMERA_RANGE[0])
            & (np.linalg.norm(opt, axis=1) < M.CAMERA_RANGE[1])
            & (np.abs(opt[:, 0]) <= z * math.tan(half_h))
            & (np.abs(opt[:, 1]) <= z * math.tan(half_v))
        )
    out = np.zeros((len(world_points), 4), dtype=np.float32)  # (E, 4)
    out[visible, :3] = opt[visible]
    out[visible, 3] = 1.0
    return out.reshape(-1)  # (E * 4,)


def features(data: mujoco.MjData, ids: M.ModelIds) -> np.ndarray:
    """/camera/features data for the current state, (E * 4,) float32."""
    return camera_features(
        data.cam_xpos[ids.camera], data.cam_xmat[ids.camera].reshape(3, 3), entity_positions(data, ids)
    )
