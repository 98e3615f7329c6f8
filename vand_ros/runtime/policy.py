"""The stateful ONNX policy on the robot: load, check the model card, own the recurrent state, step.

numpy + onnxruntime only. One `PolicyRuntime` per controller:

    policy = PolicyRuntime("policy.onnx", mode=None, seed=0)   # mode None = the card's validated mode
    policy.check_matches(joint_names=..., control_rate=...)     # refuse a model for another robot
    policy.reset()                                              # zero state, redraw per-episode draws
    action = policy.step(obs)                                   # (D,) raw -> (A,) raw, state carried

The session is tuned for latency on a small CPU: one intra-op and one inter-op thread, sequential
execution, no spinning threads (a spinning pool would steal the core the control loop runs on), all
graph optimisations. The draws (`eps`, `u`, ...) come from `DrawSampler`, seeded, exactly as the card's
execution mode says, so the learned noise stays on in the modes that keep it on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from vand_ros.errors import VandError
from vand_ros.runtime.card import DrawSampler, ModelCard

Float32Array = npt.NDArray[np.float32]


def latency_session_options(threads: int = 1) -> ort.SessionOptions:
    """Session options for one small model stepped at a fixed rate next to a control loop."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


class PolicyRuntime:
    """An exported vand_ros policy, its recurrent state and its execution-noise sampler."""

    def __init__(self, path: str | Path, mode: str | None = None, seed: int = 0, threads: int = 1) -> None:
        path = Path(path)
        if not path.is_file():
            raise VandError(
                f"model file {path} does not exist; export one with `vand-ros export RUN_DIR --out FILE`"
            )
        try:
            self.session = ort.InferenceSession(
                str(path), latency_session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises several private exception types
            raise VandError(f"{path} is not a loadable ONNX model ({err}); re-export it") from None
        self.path = path
        self.card = ModelCard.from_metadata(self.session.get_modelmeta().custom_metadata_map)
        self.card.check_io(
            [(i.name, list(i.shape)) for i in self.session.get_inputs()],
            [o.name for o in self.session.get_outputs()],
        )
        self.sampler = DrawSampler(self.card, mode, seed)
        self.mode = self.sampler.mode
        self.layout = self.card.layout
        self._state_pairs = self.card.state
        self._output_names = ["action", *(o for _, o in self._state_pairs)]
        self._obs = np.zeros((1, self.layout.obs_dim), dtype=np.float32)  # (1, D) preallocated
        self.state: dict[str, Float32Array] = {}
        self.steps_since_reset = 0
        self.reset()

    # -- identity ---------------------------------------------------------------------------------------
    @property
    def identity(self) -> str:
        """Short identity for logs and /diagnostics: file, regulariser, cell, mode."""
        c = self.card
        return f"{self.path.name} ({c.regulariser} {c.cell}{c.hidden_size}x{c.num_layers}, mode {self.mode})"

    def check_matches(
        self,
        joint_names: Sequence[str] | None = None,
        control_rate: float | None = None,
        vocabulary_words: Sequence[str] = (),
        feature_size: int | None = None,
        base_axes: Sequence[str] | None = None,
    ) -> None:
        """Refuse a model whose card does not match the robot's configuration, saying what differs."""
        layout = self.layout
        problems = []
        if joint_names is not None and tuple(joint_names) != layout.joint_names:
            problems.append(
                f"joint names: configured {list(joint_names)}, model trained on {list(layout.joint_names)}"
            )
        if control_rate is not None and not math.isclose(control_rate, self.card.control_rate, rel_tol=1e-6):
            problems.append(
                f"control rate: configured {control_rate} Hz, model trained at {self.card.control_rate} Hz"
            )
        unknown = [w for w in vocabulary_words if w and w not in layout.vocabulary]
        if unknown:
            problems.append(
                f"instruction(s) {unknown} not in the model's vocabulary {list(layout.vocabulary)}"
            )
        if feature_size is not None and feature_size != len(layout.feature_names):
            problems.append(
                f"camera features: configured {feature_size}, model expects {len(layout.feature_names)}"
            )
        if base_axes is not None and tuple(base_axes) != layout.base_axes:
            problems.append(
                f"base command axes: the controller sends {list(base_axes)}, the model commands "
                f"{list(layout.base_axes)}"
            )
        if problems:
            raise VandError(f"model {self.path} does not match the configuration: " + "; ".join(problems))

    # -- stepping ---------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Zero the recurrent state and redraw the per-episode draws (start of an episode)."""
        self.state = self.card.initial_state()
        self.sampler.reset()
        self.steps_since_reset = 0

    def step(self, obs: npt.NDArray[Any]) -> Float32Array:
        """One control step: raw observation (D,) -> raw action (A,); the recurrent state is carried."""
        self._obs[0] = obs
        feeds: dict[str, Any] = {"obs": self._obs, **self.sampler(), **self.state}
        outputs = self.session.run(self._output_names, feeds)
        for (state_in, _), value in zip(self._state_pairs, outputs[1:], strict=True):
            self.state[state_in] = value
        self.steps_since_reset += 1
        action: Float32Array = outputs[0][0]
        return action
