"""Simulation layer (mujoco, rclpy): the simulated mobile manipulator, scripted demonstrators, recording.

MuJoCo picks its GL backend when first imported; headless EGL is the one that works everywhere we run
(robots, CI, workstations without a display), so it is the default unless MUJOCO_GL is already set.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
