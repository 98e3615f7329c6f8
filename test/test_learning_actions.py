"""The action representation (runtime.action, learning.actions) and the copycat diagnostic, as pure maths."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vand_ros.data.dataset import Episode, NormStats
from vand_ros.errors import VandError
from vand_ros.learning.actions import (
    apply_deadband,
    chunk_targets,
    decode,
    ensemble_step,
    ensemble_weights,
    filter_joints,
    filtered_episodes,
    offset_scale,
    policy_stats,
    previous_offset_std,
    previous_targets,
)
from vand_ros.learning.checkpoint import Checkpoint
from vand_ros.learning.config import TrainConfig
from vand_ros.learning.diagnostics import copycat, teacher_forced_commands
from vand_ros.learning.policy import DrawMaker, Draws, Policy
from vand_ros.runtime.action import ActionSpec
from vand_ros.runtime.layout import Layout

pytestmark = pytest.mark.usefixtures("torch_one_thread")

LAYOUT = Layout(("j0", "j1"), ("vx",), ("f",), ("a", "b"))  # obs: j0 j1 vx f a b; act: j0 j1 vx
JOINTS = slice(0, 2)


def test_chunk_targets_are_future_commands_relative_to_this_ticks_measurement() -> None:
    T = 6
    act = torch.arange(T * 3, dtype=torch.float32).view(1, T, 3)  # act[t] = (3t, 3t + 1, 3t + 2)
    obs = torch.zeros(1, T, 6)
    obs[0, :, :2] = torch.tensor([[10.0 * t, -10.0 * t] for t in range(T)])
    valid = torch.tensor([[1, 1, 1, 1, 1, 0]], dtype=torch.float32)  # the last tick is padding
    target, tvalid = chunk_targets(obs, act, valid, ActionSpec("relative", chunk=3), JOINTS)
    assert target.shape == (1, T, 3, 3) and tvalid.shape == (1, T, 3)
    for t in range(T):
        for j in range(3):
            k = min(t + j, T - 1)
            want = act[0, k] - torch.tensor([10.0 * t, -10.0 * t, 0.0])  # base command stays absolute
            torch.testing.assert_close(target[0, t, j], want)
            assert tvalid[0, t, j] == (1.0 if t + j < 5 else 0.0)
    absolute, _ = chunk_targets(obs, act, valid, ActionSpec("absolute", chunk=1), JOINTS)
    torch.testing.assert_close(absolute[:, :, 0], act)


def test_decoding_inverts_the_relative_targets() -> None:
    obs = torch.randn(4, 6)
    chunk = torch.randn(4, 3, 3)
    absolute = decode(chunk, obs, ActionSpec("relative", chunk=3), JOINTS)
    torch.testing.assert_close(absolute[..., :2] - obs[:, None, :2], chunk[..., :2])
    torch.testing.assert_close(absolute[..., 2], chunk[..., 2])
    assert decode(chunk, obs, ActionSpec(), JOINTS) is chunk


def test_the_deadband_zeroes_small_base_commands_only() -> None:
    small = torch.tensor([[0.3, -0.2, 0.004], [0.3, -0.2, -0.5]])  # (2, 3): j0 j1 vx
    spec = ActionSpec(base_deadband=0.01, base_deadband_angular=0.5)
    assert spec.deadband(("vx", "vy", "wz")) == [0.01, 0.01, 0.5]
    out = apply_deadband(small, spec, JOINTS, torch.tensor(spec.deadband(("vx",))))
    torch.testing.assert_close(out, torch.tensor([[0.3, -0.2, 0.0], [0.3, -0.2, -0.5]]))
    assert apply_deadband(small, ActionSpec(), JOINTS, torch.tensor([0.01])) is small


def test_previous_targets_are_taken_from_the_last_command_and_the_first_measurement() -> None:
    T = 5
    act = torch.arange(T * 3, dtype=torch.float32).view(1, T, 3)  # act[t] = (3t, 3t + 1, 3t + 2)
    obs = torch.zeros(1, T, 6)
    obs[0, :, :2] = torch.tensor([[10.0 * t, -10.0 * t] for t in range(T)])
    previous = previous_targets(obs, act, JOINTS)  # (1, T, 2)
    torch.testing.assert_close(previous[0, 0], obs[0, 0, :2])  # a reset graph: the measured joints
    torch.testing.assert_close(previous[0, 1:], act[0, :-1, :2])
    valid = torch.ones(1, T)
    target, _ = chunk_targets(obs, act, valid, ActionSpec("previous", chunk=2), JOINTS)
    for t in range(T):
        for j in range(2):
            k = min(t + j, T - 1)
            want = act[0, k] - torch.cat([previous[0, t], torch.zeros(1)])  # base command stays absolute
            torch.testing.assert_close(target[0, t, j], want)
    chunk = torch.randn(T, 2, 3)
    absolute = decode(chunk, obs[0], ActionSpec("previous", chunk=2), JOINTS, previous=previous[0])
    torch.testing.assert_close(absolute[..., :2] - previous[0, :, None], chunk[..., :2])
    torch.testing.assert_close(absolute[..., 2], chunk[..., 2])
    with pytest.raises(ValueError, match="previous joint targets"):
        decode(chunk, obs[0], ActionSpec("previous", chunk=2), JOINTS)
    ep = Episode(obs[0].numpy(), act[0].numpy(), "a", "x")
    lead = (previous - obs[..., :2])[0].numpy()
    np.testing.assert_allclose(previous_offset_std([ep], JOINTS), lead.std(0), rtol=1e-6)


def test_anchored_previous_targets_are_taken_from_a_blend_with_the_measured_joints() -> None:
    """previous_weight w: targets relative to w x previous + (1 - w) x measured, decoded back onto it, so a
    measurement error moves the command by 1 - w of it (all of it with relative targets, none at w = 1)."""
    T, w = 5, 0.8
    act = torch.randn(1, T, 3)
    obs = torch.randn(1, T, 6)
    previous = previous_targets(obs, act, JOINTS)
    spec = ActionSpec("previous", previous_weight=w)
    target, _ = chunk_targets(obs, act, torch.ones(1, T), spec, JOINTS)
    blend = w * previous + (1 - w) * obs[..., :2]
    torch.testing.assert_close(target[0, :, 0, :2], act[0, :, :2] - blend[0])
    torch.testing.assert_close(target[0, :, 0, 2], act[0, :, 2])
    chunk = torch.randn(T, 1, 3)
    out = decode(chunk, obs[0], spec, JOINTS, previous=previous[0])
    torch.testing.assert_close(out[:, 0, :2], chunk[:, 0, :2] + blend[0])
    bumped = obs[0].clone()
    bumped[:, 0] += 0.01  # a measurement error of 0.01 rad on j0
    moved = decode(chunk, bumped, spec, JOINTS, previous=previous[0]) - out
    torch.testing.assert_close(moved[:, 0, 0], torch.full((T,), (1 - w) * 0.01), atol=1e-6, rtol=1e-5)
    assert ActionSpec.from_dict(spec.to_dict()) == spec
    for bad in ({"previous_weight": 0.0}, {"previous_weight": 1.2}):
        with pytest.raises(VandError, match="previous_weight"):
            ActionSpec("previous", **bad)
    with pytest.raises(VandError, match="unless representation 'previous'"):
        ActionSpec("relative", previous_weight=0.8)


@pytest.mark.parametrize(("execution", "weight"), [("first", 1.0), ("ensemble", 1.0), ("first", 0.7)])
def test_stepping_a_previous_policy_feeds_back_its_own_commands(execution: str, weight: float) -> None:
    """The graph's `previous` state is the last command it sent (the measured joints after a reset), so
    stepping equals the sequence forward given those commands as the previous targets (also anchored to
    the measured joints, previous_weight < 1)."""
    ep = _episode()
    policy = _small_policy("previous", 3, execution, ep, previous_weight=weight)
    cfg = policy.cfg
    stepped, states, window = _step_through(policy, ep)
    for action, state in zip(stepped, states, strict=True):
        torch.testing.assert_close(state[-1][0], torch.cat([action[:2], torch.ones(1)]))
    obs = torch.from_numpy(ep.obs)[None]
    own = previous_targets(obs, stepped[None], JOINTS)  # (1, T, 2)
    with torch.no_grad():
        out = policy(obs, policy.init_state(1), window, hard=True, previous=own)
    chunks = decode(policy.denormalise_act(out.mean[0]), obs[0], cfg.action_spec, JOINTS, own[0])
    if execution == "first":
        torch.testing.assert_close(stepped, chunks[:, 0], atol=1e-5, rtol=1e-5)
    if weight < 1:
        with torch.no_grad():
            plain = decode(
                policy.denormalise_act(out.mean[0]), obs[0], ActionSpec("previous", 3), JOINTS, own[0]
            )
        assert float((plain - chunks)[..., :2].abs().max()) > 1e-3  # the blend is in the graph
    moved = stepped[:, :2] - own[0]
    assert float(moved.abs().max()) > 0  # the network's output moves the targets on


def _small_policy(
    representation: str,
    chunk: int,
    execution: str,
    ep: Episode,
    joint_input: str = "measured",
    joint_filter: float = 0.0,
    previous_weight: float = 1.0,
) -> Policy:
    """An untrained VAND policy (H = 8) with the statistics of `ep`, in eval mode."""
    cfg = TrainConfig(
        regulariser="vand", hidden_size=8, encoder_size=8, action_representation=representation,
        action_chunk=chunk, chunk_execution=execution, ensemble_decay=0.2, joint_input=joint_input,
        joint_filter=joint_filter, previous_weight=previous_weight,
    )  # fmt: skip
    torch.manual_seed(0)
    stats = policy_stats(NormStats.from_episodes([ep]), [ep], cfg.action_spec, LAYOUT)
    policy = Policy(cfg, LAYOUT.obs_dim, LAYOUT.act_dim, stats, joints=2, base_axes=("vx",)).eval()
    if cfg.action_spec.feeds_previous:
        policy.previous_std.copy_(torch.from_numpy(previous_offset_std([ep], JOINTS)))
    return policy


def _step_through(policy: Policy, ep: Episode) -> tuple[torch.Tensor, list[tuple[torch.Tensor, ...]], Draws]:
    """`policy.step` tick by tick over `ep` with deterministic draws: the commands (T, A), the state after
    each tick, and the draw window (for the sequence forward to compare with)."""
    draws = DrawMaker(policy.cfg, LAYOUT.obs_dim, "deterministic", 0)
    draws.reset(1)
    window = draws.window(1, len(ep))
    state, actions, states = policy.init_exec_state(1), [], []
    with torch.no_grad():
        for t in range(len(ep)):
            action, state = policy.step(
                torch.from_numpy(ep.obs[t : t + 1]), state, Draws(window.eps[:, t], window.u[:, t])
            )
            actions.append(action[0])
            states.append(state)
    return torch.stack(actions), states, window


@pytest.mark.parametrize("representation", ["absolute", "previous"])
def test_a_command_input_policy_reads_the_measured_joints_only_at_reset(representation: str) -> None:
    """joint_input "command": after the first tick the network sees the graph's own last command in the
    joint slots, so encoder noise or a late reading cannot move the next command."""
    ep = _episode()
    policy = _small_policy(representation, 1, "first", ep, joint_input="command")
    stepped, states, _ = _step_through(policy, ep)
    noisy = ep.obs.copy()
    noisy[1:, :2] += np.random.default_rng(3).normal(0, 0.5, noisy[1:, :2].shape)
    again, _, _ = _step_through(policy, Episode(noisy, ep.act, ep.behaviour, ep.source))
    torch.testing.assert_close(again, stepped)
    for action, state in zip(stepped, states, strict=True):  # the state holds the command it sent
        torch.testing.assert_close(state[-1][0], torch.cat([action[:2], torch.ones(1)]))
    moved = ep.obs.copy()
    moved[0, :2] += 0.5  # where the arm is at reset is where the commands start from
    first, _, _ = _step_through(policy, Episode(moved, ep.act, ep.behaviour, ep.source))
    assert float((first[0, :2] - stepped[0, :2]).abs().max()) > 1e-4


@pytest.mark.parametrize("representation", ["absolute", "previous"])
def test_a_rollout_with_full_feedback_is_the_execution_graph_and_without_is_teacher_forcing(
    representation: str,
) -> None:
    """Policy.rollout (training with feedback): at alpha 1 it sees exactly the commands `step` sends in
    closed loop, at alpha 0 the demonstrated previous targets, and in between their blend."""
    ep = _episode()
    policy = _small_policy(representation, 1, "first", ep, joint_input="command")
    stepped, _, window = _step_through(policy, ep)
    obs, act = torch.from_numpy(ep.obs)[None], torch.from_numpy(ep.act)[None]
    teacher = previous_targets(obs, act, JOINTS)  # (1, T, 2)
    with torch.no_grad():
        out, seen, last = policy.rollout(obs, policy.init_state(1), window, teacher, None, 1.0, hard=True)
        torch.testing.assert_close(seen[0, 1:], stepped[:-1, :2], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(last[0], stepped[-1, :2], atol=1e-6, rtol=1e-6)
        forced, seen0, _ = policy.rollout(obs, policy.init_state(1), window, teacher, None, 0.0, hard=True)
        torch.testing.assert_close(seen0, teacher)
        whole = policy(obs, policy.init_state(1), window, hard=True, previous=teacher)
        torch.testing.assert_close(forced.mean, whole.mean, atol=1e-6, rtol=1e-6)
        half, seen_half, _ = policy.rollout(obs, policy.init_state(1), window, teacher, None, 0.5, hard=True)
    own = half.mean  # its own commands at alpha 0.5, decoded, are what it sees half of at the next tick
    commands = decode(policy.denormalise_act(own[0]), obs[0], policy.action, JOINTS, seen_half[0])
    torch.testing.assert_close(seen_half[0, 1:], 0.5 * commands[:-1, 0, :2] + 0.5 * teacher[0, 1:])
    assert float((out.mean - forced.mean).abs().max()) > 1e-4  # feedback changes what it predicts
    with torch.no_grad():  # forced=k: the first k ticks see the demonstration alone, then its own commands
        late, seen_late, _ = policy.rollout(obs, policy.init_state(1), window, teacher, None, 1.0, True, 3)
    torch.testing.assert_close(seen_late[0, :3], teacher[0, :3])
    torch.testing.assert_close(late.mean[:, :3], forced.mean[:, :3], atol=1e-6, rtol=1e-6)
    commands = decode(policy.denormalise_act(late.mean[0]), obs[0], policy.action, JOINTS, seen_late[0])
    torch.testing.assert_close(seen_late[0, 3:], commands[2:-1, 0, :2])


def test_relative_targets_with_a_blended_joint_input_are_taken_from_the_blend() -> None:
    """command_weight w: the joint slots hold w x previous command + (1 - w) x measured, and relative
    targets are offsets from that blend, so only 1 - w of a measurement's error reaches the command."""
    spec = ActionSpec("relative", joint_input="command", command_weight=0.75)
    T = 5
    act = torch.arange(T * 3, dtype=torch.float32).view(1, T, 3)
    obs = torch.zeros(1, T, 6)
    obs[0, :, :2] = torch.tensor([[10.0 * t, -10.0 * t] for t in range(T)])
    previous = previous_targets(obs, act, JOINTS)
    blend = 0.75 * previous + 0.25 * obs[..., :2]  # (1, T, 2)
    target, _ = chunk_targets(obs, act, torch.ones(1, T), spec, JOINTS)
    torch.testing.assert_close(target[0, :, 0, :2], act[0, :, :2] - blend[0])
    torch.testing.assert_close(target[0, :, 0, 2], act[0, :, 2])
    chunk = torch.randn(T, 1, 3)
    out = decode(chunk, obs[0], spec, JOINTS, previous=previous[0])
    torch.testing.assert_close(out[:, 0, :2], blend[0] + chunk[:, 0, :2])
    shifted = obs[0].clone()
    shifted[:, :2] += 1.0  # a measurement error of 1 rad moves the decoded command by 1 - w
    moved = decode(chunk, shifted, spec, JOINTS, previous=previous[0])
    torch.testing.assert_close(moved[:, 0, :2] - out[:, 0, :2], torch.full((T, 2), 0.25))
    with pytest.raises(VandError, match="command_weight 1"):
        ActionSpec("relative", joint_input="command")


def test_training_with_feedback_needs_the_previous_targets_in_the_graph() -> None:
    with pytest.raises(VandError, match="feedback"):
        TrainConfig(action_representation="relative", feedback=0.5)
    with pytest.raises(VandError, match="joint_input 'command' with representation 'relative'"):
        TrainConfig(action_representation="relative", joint_input="command")
    with pytest.raises(VandError, match="feedback_after"):
        TrainConfig(action_representation="absolute", joint_input="command", seq_len=64, feedback_after=64)
    with pytest.raises(VandError, match="command_weight 0"):
        ActionSpec("absolute", joint_input="command", command_weight=0.0)
    with pytest.raises(VandError, match="joint_input 'camera'"):
        ActionSpec(joint_input="camera")
    cfg = TrainConfig(action_representation="absolute", joint_input="command", feedback=1.0)
    assert cfg.action_spec.feeds_previous and not cfg.action_spec.sees_lead
    assert ActionSpec.from_dict(cfg.action_spec.to_dict()) == cfg.action_spec
    assert ActionSpec.from_dict({"representation": "previous"}).joint_input == "measured"  # older cards


@pytest.mark.parametrize("decay", [0.5, -0.5])
def test_temporal_ensembling_is_the_weighted_mean_of_every_prediction_for_this_tick(decay: float) -> None:
    """decay > 0 weighs the newest prediction most, decay < 0 (ACT's default direction) the oldest; the
    weights are scaled so that the largest is 1."""
    spec = ActionSpec("absolute", chunk=3, execution="ensemble", ensemble_decay=decay)
    w = ensemble_weights(spec)
    want_w = np.exp(-decay * np.arange(3))
    torch.testing.assert_close(w, torch.tensor(want_w / want_w.max(), dtype=torch.float32))
    chunks = torch.randn(8, 1, 3, 2)  # a chunk per tick
    sums = torch.zeros(1, 3, 3)
    for t in range(8):
        action, sums = ensemble_step(sums, chunks[t], w)
        ages = range(min(3, t + 1))  # the prediction for tick t made `age` ticks ago
        want = sum(w[a] * chunks[t - a, 0, a] for a in ages) / sum(w[a] for a in ages)
        torch.testing.assert_close(action[0], want)


def test_the_hann_window_weighs_the_newest_and_oldest_predictions_least() -> None:
    w = ensemble_weights(ActionSpec("relative", chunk=5, execution="ensemble", ensemble_window="hann"))
    want = np.sin(np.pi * np.arange(1, 6) / 6) ** 2  # ages 0..4
    torch.testing.assert_close(w, torch.tensor(want, dtype=torch.float32))
    assert float(w.min()) > 0 and int(w.argmax()) == 2  # the first tick has a weight to divide by
    chunks, sums = torch.randn(6, 1, 5, 2), torch.zeros(1, 5, 3)
    for t in range(6):
        action, sums = ensemble_step(sums, chunks[t], w)
    ages = range(5)  # at tick 5 every age is present: the weighted mean, newest weighted as the oldest
    want_5 = sum(w[a] * chunks[5 - a, 0, a] for a in ages) / w.sum()
    torch.testing.assert_close(action[0], want_5)


def test_an_ensemble_horizon_mixes_only_the_newest_predictions_as_a_shorter_chunk_would() -> None:
    spec = ActionSpec("relative", chunk=5, execution="ensemble", ensemble_decay=0.2, ensemble_horizon=3)
    w = ensemble_weights(spec)
    short = ensemble_weights(ActionSpec("relative", chunk=3, execution="ensemble", ensemble_decay=0.2))
    torch.testing.assert_close(w, torch.cat([short, torch.zeros(2)]))
    hann = ensemble_weights(dataclasses.replace(spec, ensemble_decay=0.0, ensemble_window="hann"))
    short_hann = ensemble_weights(
        ActionSpec("relative", chunk=3, execution="ensemble", ensemble_window="hann")
    )
    torch.testing.assert_close(hann, torch.cat([short_hann, torch.zeros(2)]))
    # Over a run, chunks of 5 ensembled over 3 send what their first 3 entries would as chunks of 3.
    chunks = torch.randn(9, 1, 5, 2)
    sums, sums_short = torch.zeros(1, 5, 3), torch.zeros(1, 3, 3)
    for t in range(9):
        action, sums = ensemble_step(sums, chunks[t], w)
        want, sums_short = ensemble_step(sums_short, chunks[t, :, :3], short)
        torch.testing.assert_close(action, want)
    assert ActionSpec.from_dict(spec.to_dict()) == spec
    assert ActionSpec.from_dict({"representation": "relative"}).ensemble_horizon == 0  # old cards: all K
    with pytest.raises(VandError, match=r"ensemble_horizon 6 \(expected an integer in 0..chunk"):
        dataclasses.replace(spec, ensemble_horizon=6)
    with pytest.raises(VandError, match=r"ensemble_horizon 3 \(expected 0 unless execution 'ensemble'"):
        dataclasses.replace(spec, execution="first")


def test_a_bad_action_spec_is_refused_with_the_field_named() -> None:
    with pytest.raises(VandError, match="representation 'delta'"):
        TrainConfig(action_representation="delta")
    with pytest.raises(VandError, match="chunk 0"):
        TrainConfig(action_chunk=0)
    with pytest.raises(VandError, match="unknown fields"):
        ActionSpec.from_dict({"representation": "absolute", "horizon": 3})
    with pytest.raises(VandError, match="ensemble_window 'gauss'"):
        TrainConfig(ensemble_window="gauss")
    with pytest.raises(VandError, match=r"ensemble_decay -1.0 \(expected .* at least -13.8 / 19"):
        ActionSpec("relative", 20, "ensemble", -1.0)  # the newest weight would be exp(-19) of the oldest
    assert ensemble_weights(ActionSpec("relative", 20, "ensemble", -0.7))[0] > 0
    with pytest.raises(VandError, match=r"ensemble_decay 0.1 \(expected 0 with ensemble_window 'hann'"):
        ActionSpec("relative", 4, "ensemble", 0.1, ensemble_window="hann")
    assert ActionSpec.from_dict({"representation": "relative"}).ensemble_window == "exponential"  # old cards
    assert ActionSpec.from_dict(ActionSpec("relative", 4, "ensemble", 0.2).to_dict()) == ActionSpec(
        "relative", 4, "ensemble", 0.2
    )


def _episode(steps: int = 40, seed: int = 0) -> Episode:
    rng = np.random.default_rng(seed)
    T = steps
    q = np.cumsum(rng.normal(0, 0.05, (T + 1, 2)), axis=0).astype(np.float32)
    obs = np.concatenate([q[:-1], rng.normal(size=(T, 2)), np.tile([1.0, 0.0], (T, 1))], 1).astype(np.float32)
    act = np.concatenate([q[1:], rng.normal(size=(T, 1))], 1).astype(np.float32)  # target = next joint
    return Episode(obs, act, "a", f"synthetic#{seed}")


def test_relative_statistics_are_those_of_the_offsets() -> None:
    eps = [_episode(seed=s) for s in range(3)]
    base = NormStats.from_episodes(eps)
    assert policy_stats(base, eps, ActionSpec(), LAYOUT) is base
    rel = policy_stats(base, eps, ActionSpec("relative"), LAYOUT)
    offsets = np.concatenate([e.act[:, :2] - e.obs[:, :2] for e in eps])
    np.testing.assert_allclose(rel.act_mean[:2], offsets.mean(0), atol=1e-6)
    np.testing.assert_allclose(rel.act_std[:2], np.maximum(offsets.std(0), 0.005), rtol=1e-5)
    np.testing.assert_array_equal(rel.obs_mean, base.obs_mean)


def test_per_offset_normalisation_gives_every_chunk_offset_unit_spread_and_is_saved(tmp_path: Path) -> None:
    """Shared statistics leave a relative chunk's next-tick targets a fraction of a unit (the offsets of a
    random walk grow with the offset); "per_offset" scales each offset to its own spread, and the scale
    travels with the checkpoint (a shared policy saves none, so older checkpoints still load)."""
    eps = [_episode(seed=s) for s in range(4)]
    cfg = TrainConfig(
        hidden_size=8, encoder_size=8, action_representation="relative", action_chunk=4,
        chunk_execution="ensemble", chunk_normalisation="per_offset",
    )  # fmt: skip
    stats = policy_stats(NormStats.from_episodes(eps), eps, cfg.action_spec, LAYOUT)
    shared = Policy(dataclasses.replace(cfg, chunk_normalisation="shared"), 6, 3, stats, 2, ("vx",))
    policy = Policy(cfg, 6, 3, stats, 2, ("vx",))
    policy.offset_scale.copy_(torch.from_numpy(offset_scale(stats, eps, cfg.action_spec, LAYOUT)))
    target, valid = chunk_targets(
        torch.from_numpy(np.stack([e.obs for e in eps])),
        torch.from_numpy(np.stack([e.act for e in eps])),
        torch.ones(4, 40),
        cfg.action_spec,
        JOINTS,
    )
    inside = valid[..., 0] * valid[..., -1] > 0  # ticks with every offset inside the episode
    spread = lambda p: p.normalise_act(target)[inside].std(0)[:, :2]  # noqa: E731  (K, J)
    assert float(spread(shared)[0].max()) < 0.7 * float(spread(shared)[-1].min())
    whole = valid[..., None].expand_as(target) > 0  # per offset over all its valid ticks, as offset_scale
    for k in range(4):
        got = policy.normalise_act(target)[:, :, k][whole[:, :, k]].reshape(-1, 3)[:, :2].std(0)
        torch.testing.assert_close(got, torch.ones(2), rtol=2e-2, atol=0)
    torch.testing.assert_close(policy.denormalise_act(policy.normalise_act(target)), target)
    Checkpoint.from_policy(policy, LAYOUT, 20.0, stats, {}).save(tmp_path / "c.pt")
    loaded = Checkpoint.load(tmp_path / "c.pt").build_policy()
    torch.testing.assert_close(loaded.offset_scale, policy.offset_scale)
    assert "offset_scale" not in shared.state_dict()


@pytest.mark.parametrize("execution", ["first", "ensemble"])
def test_teacher_forced_commands_equal_stepping_the_execution_graph(execution: str) -> None:
    ep = _episode()
    policy = _small_policy("relative", 4, execution, ep)
    fast = teacher_forced_commands(policy, ep)
    stepped, _, _ = _step_through(policy, ep)
    np.testing.assert_allclose(fast, stepped.numpy(), atol=1e-5)


class _Copier(Policy):
    """A policy whose command is exactly the measured joints (the copycat), for the diagnostic's test."""

    def forward(self, obs, state, draws, hard=False, previous=None):  # type: ignore[no-untyped-def]
        out = super().forward(obs, state, draws, hard, previous)
        zero = self.normalise_act(torch.zeros_like(out.mean))  # relative 0 = copy the measured joint
        return out._replace(mean=zero)


def test_copycat_diagnostic_scores_a_copier_at_gain_zero_and_copy_error() -> None:
    cfg = TrainConfig(regulariser="none", hidden_size=4, encoder_size=4, action_representation="relative")
    eps = [_episode(seed=s) for s in range(2)]
    stats = policy_stats(NormStats.from_episodes(eps), eps, cfg.action_spec, LAYOUT)
    diag = copycat(
        _Copier(cfg, LAYOUT.obs_dim, LAYOUT.act_dim, stats, joints=2, base_axes=("vx",)), eps, ["j0", "j1"]
    )
    assert set(diag) == {"a", "all"}
    for v in diag["all"].values():
        assert abs(v["gain"]) < 1e-5
        assert v["policy_mse"] == pytest.approx(v["copy_mse"], rel=1e-5)
        assert v["previous_mse"] > 0


def test_copycat_reports_each_episode_kind_of_a_behaviour_apart() -> None:
    """A policy that reproduces the clean episodes' offset and copies the joints on recovery episodes: the
    kind rows say so (gain 1 and 0), the behaviour's row pools them, and one kind alone adds no row."""
    from vand_ros.learning.copycat import copycat_stats

    clean = [dataclasses.replace(_episode(seed=s), kind="clean") for s in range(2)]
    recovery = [dataclasses.replace(_episode(seed=10 + s), kind="recovery") for s in range(2)]
    episodes = clean + recovery
    commands = [e.act for e in clean] + [e.obs[:, :3] for e in recovery]  # reproduce / copy the joints
    diag = copycat_stats(episodes, commands, ["j0", "j1"])
    assert set(diag) == {"a", "all", "a/clean", "a/recovery"}
    for joint in ("j0", "j1"):
        assert diag["a/clean"][joint]["gain"] == pytest.approx(1.0)
        assert diag["a/recovery"][joint]["gain"] == pytest.approx(0.0, abs=1e-9)
        assert 0.2 < diag["a"][joint]["gain"] < 0.8
        assert diag["a"][joint] == diag["all"][joint]
    assert diag["a/clean"] == copycat_stats(clean, commands[:2], ["j0", "j1"])["a"]

    alone = copycat_stats(recovery, commands[2:], ["j0", "j1"])
    assert set(alone) == {"a", "all"}
    untagged = [dataclasses.replace(recovery[0], kind=""), recovery[1]]
    assert set(copycat_stats(untagged, commands[2:], ["j0", "j1"])) == {"a", "all", "a/unknown", "a/recovery"}


def test_changepoint_weights_mark_the_largest_command_changes_and_their_neighbours() -> None:
    from vand_ros.learning.actions import (
        CHANGEPOINT_DILATION,
        changepoint_threshold,
        changepoint_weights,
        command_changes,
    )

    act = torch.zeros(1, 20, 2)
    act[0, 10:, 0] = 1.0  # one step change at tick 10 (a stop, a hand-off)
    valid = torch.ones(1, 20)
    valid_short = valid.clone()
    valid_short[0, 15:] = 0.0
    step = act[0].numpy().copy()
    changes = command_changes(act, valid, torch.tensor([1.0, 1.0]))
    assert changes[0, 0] == 0 and changes[0, 10] == pytest.approx(0.5) and float(changes.sum()) == 0.5
    act[0, 17:, 1] = 9.0  # a change inside the padding does not count
    assert float(command_changes(act, valid_short, torch.tensor([1.0, 1.0])).sum()) == 0.5

    w = changepoint_weights(changes, threshold=0.1, weight=5.0)[0]
    near = range(10 - CHANGEPOINT_DILATION, 10 + CHANGEPOINT_DILATION + 1)
    assert [float(w[t]) for t in range(20)] == [5.0 if t in near else 1.0 for t in range(20)]
    assert torch.equal(changepoint_weights(changes, threshold=math.inf, weight=5.0), torch.ones(1, 20))

    eps = [Episode(np.zeros((20, 3), np.float32), step, "wipe", "e#0")]
    thr = changepoint_threshold(eps, np.ones(2, np.float32), 0.95)
    assert 0 < thr < 0.5  # 19 changes, one of them large: the 95 % quantile lies below it


def test_the_joint_filter_is_a_first_order_low_pass_started_by_the_first_measurement() -> None:
    """joint_input "filtered": f_0 = q_0, f_t = a f_(t-1) + (1 - a) q_t on the joint slots only; run over a
    sequence or a tick at a time from the carried state, the same numbers."""
    spec = ActionSpec("relative", joint_input="filtered", joint_filter=0.75)
    obs = torch.randn(2, 7, 6)
    out, held = filter_joints(obs, spec, JOINTS)
    want = obs[:, 0, :2].clone()
    torch.testing.assert_close(out[:, 0], obs[:, 0])
    for t in range(1, 7):
        want = 0.75 * want + 0.25 * obs[:, t, :2]
        torch.testing.assert_close(out[:, t, :2], want)
    torch.testing.assert_close(out[..., 2:], obs[..., 2:])  # base twist, features, instruction untouched
    torch.testing.assert_close(held, torch.cat([want, torch.ones(2, 1)], -1))
    first, carried = filter_joints(obs[:, :3], spec, JOINTS)
    rest, _ = filter_joints(obs[:, 3:], spec, JOINTS, carried)
    torch.testing.assert_close(torch.cat([first, rest], 1), out)
    unfiltered, _ = filter_joints(obs, ActionSpec("relative"), JOINTS)
    assert unfiltered is obs
    ep = Episode(obs[0].numpy(), torch.randn(7, 3).numpy(), "a", "x")
    np.testing.assert_allclose(filtered_episodes([ep], spec, JOINTS)[0].obs, out[0].numpy(), rtol=1e-6)
    with pytest.raises(VandError, match="joint_filter"):
        ActionSpec("relative", joint_input="filtered")  # a filter needs its weight
    with pytest.raises(VandError, match="joint_filter"):
        ActionSpec("relative", joint_filter=0.5)  # a weight needs the filter
    assert ActionSpec.from_dict(spec.to_dict()) == spec


def test_a_filtered_policy_steps_as_trained_and_decodes_onto_the_filtered_joints() -> None:
    """Stepping a "filtered" policy equals the sequence forward on the filtered episode (what training
    sees); the graph's last state pair holds the filter; and a one-tick measurement error of e moves what
    relative targets are decoded onto by (1 - a) e, where the measured input moves it by e."""
    ep = _episode()
    policy = _small_policy("relative", 1, "first", ep, joint_input="filtered", joint_filter=0.8)
    stepped, states, window = _step_through(policy, ep)
    seen = torch.from_numpy(filtered_episodes([ep], policy.action, JOINTS)[0].obs)  # (T, D)
    for t, state in enumerate(states):
        torch.testing.assert_close(state[-1][0], torch.cat([seen[t, :2], torch.ones(1)]))
    with torch.no_grad():
        out = policy(seen[None], policy.init_state(1), window, hard=True)
    chunks = decode(policy.denormalise_act(out.mean[0]), seen, policy.action, JOINTS)
    torch.testing.assert_close(stepped, chunks[:, 0], atol=1e-5, rtol=1e-5)
    bumped = ep.obs.copy()
    bumped[5, :2] += 0.1  # one noisy reading
    again, _, _ = _step_through(policy, Episode(bumped, ep.act, ep.behaviour, ep.source))
    torch.testing.assert_close(again[:5], stepped[:5])  # causal
    zero = torch.zeros(1, 1, 3)
    seen_bumped = filter_joints(torch.from_numpy(bumped)[None], policy.action, JOINTS)[0][0]
    moved = decode(zero, seen_bumped[5:6], policy.action, JOINTS) - decode(
        zero, seen[5:6], policy.action, JOINTS
    )
    torch.testing.assert_close(moved[0, 0, :2], torch.full((2,), 0.1 * (1 - 0.8)), atol=1e-6, rtol=1e-4)
    measured = ActionSpec("relative")
    whole = decode(zero, torch.from_numpy(bumped[5:6]), measured, JOINTS) - decode(
        zero, torch.from_numpy(ep.obs[5:6]), measured, JOINTS
    )
    torch.testing.assert_close(whole[0, 0, :2], torch.full((2,), 0.1), atol=1e-6, rtol=1e-4)
