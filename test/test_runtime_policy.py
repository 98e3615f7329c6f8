"""The robot-side policy runtime: loading, refusing bad or mismatched models, state and draws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from vand_ros import robot
from vand_ros.errors import VandError
from vand_ros.runtime.card import DrawSampler
from vand_ros.runtime.policy import PolicyRuntime


def test_step_is_the_graph_with_the_sampler_draws_and_the_state_fed_back(tiny_policy: Path) -> None:
    policy = PolicyRuntime(tiny_policy, mode="stochastic", seed=3)
    session = ort.InferenceSession(str(tiny_policy), providers=["CPUExecutionProvider"])
    sampler = DrawSampler(policy.card, "stochastic", seed=3)
    state = policy.card.initial_state()
    rng = np.random.default_rng(0)
    for _ in range(20):
        obs = rng.normal(size=policy.layout.obs_dim).astype(np.float32)
        expected = session.run(None, {"obs": obs[None], **state, **sampler()})
        state = {"state": expected[1]}
        np.testing.assert_array_equal(policy.step(obs), expected[0][0])
    assert policy.steps_since_reset == 20
    policy.reset()
    assert policy.steps_since_reset == 0
    assert all(np.all(v == 0) for v in policy.state.values())


def test_modes_differ_only_where_the_card_says(tiny_policy: Path) -> None:
    obs = np.zeros(PolicyRuntime(tiny_policy).layout.obs_dim, np.float32)
    det = [PolicyRuntime(tiny_policy, mode="deterministic", seed=s).step(obs) for s in (0, 1)]
    noisy = [PolicyRuntime(tiny_policy, mode="noise", seed=s).step(obs) for s in (0, 1)]
    np.testing.assert_array_equal(det[0], det[1])  # no draws: the seed does not matter
    assert not np.array_equal(noisy[0], noisy[1])  # the learned noise is on
    assert PolicyRuntime(tiny_policy).mode == "noise"  # the card's default for VAND keeps the noise on


def test_refuses_what_is_not_a_policy(tmp_path: Path, tiny_policy: Path) -> None:
    with pytest.raises(VandError, match="does not exist"):
        PolicyRuntime(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(VandError, match="not a loadable ONNX model"):
        PolicyRuntime(junk)
    with pytest.raises(VandError, match="not supported by this model"):
        PolicyRuntime(tiny_policy, mode="mc")


def test_check_matches_says_what_differs(tiny_policy: Path) -> None:
    policy = PolicyRuntime(tiny_policy)
    policy.check_matches(
        joint_names=robot.ARM_JOINT_NAMES,
        control_rate=20.0,
        vocabulary_words=["wipe"],
        base_axes=robot.BASE_AXES,
    )
    with pytest.raises(VandError) as err:
        policy.check_matches(
            joint_names=["j1"],
            control_rate=50.0,
            vocabulary_words=["dance"],
            feature_size=3,
            base_axes=["vx", "wz"],
        )
    text = str(err.value)
    for part in (
        "joint names",
        "control rate: configured 50.0 Hz",
        "'dance'",
        "camera features: configured 3",
        "base command axes: the controller sends ['vx', 'wz'], the model commands ['vx', 'vy', 'wz']",
    ):
        assert part in text
