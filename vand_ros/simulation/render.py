"""Offscreen rendering of a demonstration to an animated GIF (Pillow) or MP4 (ffmpeg, where installed).

MuJoCo picks its GL backend when first imported, so MUJOCO_GL must be set before `import mujoco`:
`ensure_offscreen_gl()` sets it to egl unless the user chose (egl works with the software Mesa that
ships in the mujoco wheel's dependencies on Debian; osmesa needs `apt-get install libosmesa6`).
Call it before anything imports mujoco (the CLI does), or export MUJOCO_GL=egl yourself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from vand_ros.errors import VandError


def ensure_offscreen_gl() -> None:
    """Choose MUJOCO_GL=egl unless already set; refuse if mujoco was imported with another backend."""
    if "MUJOCO_GL" not in os.environ:
        if "mujoco" in sys.modules:
            raise VandError(
                "mujoco was imported before MUJOCO_GL was set, so offscreen rendering cannot work; "
                "export MUJOCO_GL=egl (or osmesa) before starting Python"
            )
        os.environ["MUJOCO_GL"] = "egl"


class _NullSink:
    def __getattr__(self, name: str) -> object:
        return lambda *args: None


class VideoRecorder:
    """Captures frames of a running Sim at `fps` (from sim time `start` [s] on) and writes a GIF or MP4.

    Call `capture(sim)` after every physics step; it renders only when a frame is due.
    """

    def __init__(
        self, sim: Any, out: Path, fps: int = 15, width: int = 320, height: int = 240,
        camera: str = "overview", start: float = 0.0,
    ) -> None:  # fmt: skip
        ensure_offscreen_gl()
        import mujoco

        from vand_ros.simulation.physics import STEPS_PER_S

        self.out = Path(out)
        if self.out.suffix.lower() not in (".gif", ".mp4"):
            raise VandError(f"{self.out}: expected a .gif or .mp4 file name")
        try:
            self.renderer = mujoco.Renderer(sim.model, height, width)
        except Exception as err:  # the GL backend's own error types differ per backend
            raise VandError(
                f"offscreen rendering with MUJOCO_GL={os.environ.get('MUJOCO_GL')} failed ({err}); on "
                "Debian install libegl1 and libgl1-mesa-dri (egl) or libosmesa6 (MUJOCO_GL=osmesa)"
            ) from err
        self.scene_option = mujoco.MjvOption()
        self.camera, self.fps, self.size = camera, fps, (width, height)
        self.frame_steps = STEPS_PER_S // fps
        self.next_frame = round(start * STEPS_PER_S)
        self.frames: list[np.ndarray] = []

    def capture(self, sim: Any) -> None:
        if sim.steps >= self.next_frame:
            self.renderer.update_scene(sim.data, camera=self.camera, scene_option=self.scene_option)
            self.frames.append(self.renderer.render().copy())  # (H, W, 3) uint8
            self.next_frame += self.frame_steps

    def save(self) -> int:
        """Write the video; returns the number of frames."""
        self.renderer.close()
        if not self.frames:
            raise VandError(f"{self.out}: no frames captured (the run ended before the video's start)")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.out.suffix.lower() == ".gif":
            from PIL import Image

            images = [Image.fromarray(f) for f in self.frames]
            images[0].save(
                self.out, save_all=True, append_images=images[1:], duration=round(1000 / self.fps), loop=0
            )
        else:
            ffmpeg = shutil.which("ffmpeg")
            if ffmpeg is None:
                raise VandError("MP4 needs the ffmpeg program (apt-get install ffmpeg); or write a .gif")
            width, height = self.size
            cmd = [
                ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
                "-s", f"{width}x{height}", "-r", str(self.fps), "-i", "-", "-pix_fmt", "yuv420p",
                str(self.out),
            ]  # fmt: skip
            subprocess.run(cmd, input=b"".join(f.tobytes() for f in self.frames), check=True)
        return len(self.frames)


def render_demo(
    behaviour: str, out: Path, seed: int = 0, episode: int = 0, duration: float = 0.0, fps: int = 15,
    width: int = 320, height: int = 240, camera: str = "overview",
) -> int:  # fmt: skip
    """Run one scripted demonstration without ROS and write it as a video; returns the number of frames."""
    ensure_offscreen_gl()
    from vand_ros.simulation import demonstrators as D
    from vand_ros.simulation.physics import STEPS_PER_S, Sim
    from vand_ros.simulation.runner import Runner

    if Path(out).suffix.lower() not in (".gif", ".mp4"):
        raise VandError(f"{out}: expected a .gif or .mp4 file name")
    demo = D.make(behaviour, D.episode_rng(seed, episode, behaviour))
    sim = Sim()
    runner = Runner(sim, _NullSink(), demo)  # type: ignore[arg-type]
    runner.start()
    video = VideoRecorder(sim, out, fps, width, height, camera)
    end = round((duration or demo.duration) * STEPS_PER_S)
    while sim.steps < end:
        video.capture(sim)
        runner.emit()
        runner.advance()
    return video.save()
