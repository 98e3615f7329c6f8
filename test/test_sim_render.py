"""Offscreen rendering of a demonstration to a GIF (MUJOCO_GL=egl, set before mujoco loads: a new process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = "import mujoco; m = mujoco.MjModel.from_xml_string('<mujoco/>'); mujoco.Renderer(m, 8, 8).render()"


def _egl_works() -> tuple[bool, str]:
    env = dict(os.environ, MUJOCO_GL="egl")
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, env=env)
    return r.returncode == 0, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""


def test_render_demo_to_gif(tmp_path: Path) -> None:
    ok, why = _egl_works()
    if not ok:
        pytest.skip(
            f"MUJOCO_GL=egl unavailable here ({why}); on Debian: apt-get install libegl1 libgl1-mesa-dri"
        )
    from PIL import Image

    out = tmp_path / "wipe.gif"
    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}  # the CLI must choose egl itself
    cmd = [sys.executable, "-m", "vand_ros.cli", "sim", "--demonstrator", "wipe", "--render", str(out),
           "--duration", "3", "--fps", "4"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    gif = Image.open(out)
    assert gif.n_frames == 12 and gif.size == (320, 240)
    frames = []
    for i in (0, gif.n_frames - 1):
        gif.seek(i)
        frames.append(np.asarray(gif.convert("RGB"), dtype=np.float64))
    assert frames[0].std() > 10  # a scene, not a blank image
    assert np.abs(frames[0] - frames[1]).mean() > 0.1  # the arm moved: a static scene renders identically
