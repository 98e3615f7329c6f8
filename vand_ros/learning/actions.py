"""Training targets in the policy's action representation (vand_ros.runtime.action), and their statistics.

The dataset stores what was commanded, raw: act (T, A) = [joint targets [rad], base command]. The policy
is trained on, per tick t and chunk offset j in 0..K-1,

    target[t, j] = act[t + j] - [q_t, 0]     (relative; q_t = the measured joints, obs[t, joints])
    target[t, j] = act[t + j] - [p_t, 0]     (previous; p_t = the previous joint target act[t - 1, joints],
                                              and p_0 = q_0: a reset graph has no previous target yet)
    target[t, j] = act[t + j]                (absolute)

and target[t, j] counts in the loss only where tick t + j exists in the episode (`valid`). Building the
targets for the whole padded batch before it is cut into BPTT windows lets a window's last ticks see the
commands after the window.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import Tensor

from vand_ros.data.dataset import STD_FLOOR, Episode, NormStats
from vand_ros.runtime.action import ActionSpec
from vand_ros.runtime.layout import Layout

# Floor of the std of relative joint targets [rad]. They are about one tick of motion (0.01-0.05 rad at
# 20 Hz), so the observations' floor (STD_FLOOR, 0.05) would squash them; this one only guards against a
# joint that never moves in the demonstrations.
RELATIVE_STD_FLOOR = 0.005


def chunk_targets(
    obs: Tensor, act: Tensor, valid: Tensor, spec: ActionSpec, joints: slice, previous: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """obs (B, T, D), act (B, T, A) raw, valid (B, T) -> targets (B, T, K, A) raw, valid (B, T, K).
    `previous` (B, T, J): the previous targets to take "previous" targets from (default: the demonstrated
    ones, `previous_targets`; training passes perturbed ones with cfg.previous_noise)."""
    T = act.shape[1]
    K = spec.chunk
    index = (
        torch.arange(T, device=act.device)[:, None] + torch.arange(K, device=act.device)[None, :]
    )  # (T, K)
    inside = index < T
    index = index.clamp(max=T - 1)
    target = act[:, index]  # (B, T, K, A)
    target_valid = valid[:, index] * inside.to(valid.dtype)  # (B, T, K)
    if spec.representation != "absolute":
        target = target - _reference(obs, act, spec, joints, previous)[:, :, None, :]
    return target, target_valid


def filter_joints(
    obs: Tensor, spec: ActionSpec, joints: slice, held: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The graph's low-pass filter on the measured joints (joint_input "filtered"), over a sequence.

    obs (B, T, D) raw; held (B, J + 1): the filter's state, the filtered joints then 1 once set (None or
    zeros = reset: the first tick's measured joints start it). Returns obs with its joint slots filtered,
    f_t = a f_{t-1} + (1 - a) q_t with a = spec.joint_filter, and the state after the last tick. Other
    joint inputs return obs unchanged. Training runs it over whole episodes from their first tick, the
    graph one tick at a time: the same arithmetic, so they agree to float precision."""
    B, T, _ = obs.shape
    J = joints.stop - joints.start
    if held is None:
        held = obs.new_zeros(B, J + 1)
    if not spec.filters_joints:
        return obs, held
    a = spec.joint_filter
    value, is_set = held[:, :-1], held[:, -1:]  # (B, J), (B, 1)
    rows = []
    for t in range(T):
        q = obs[:, t, joints]  # (B, J)
        value = is_set * (a * value + (1.0 - a) * q) + (1.0 - is_set) * q
        is_set = torch.ones_like(is_set)
        rows.append(value)
    filtered = torch.stack(rows, dim=1)  # (B, T, J)
    out = torch.cat([obs[..., : joints.start], filtered, obs[..., joints.stop :]], dim=-1)
    return out, torch.cat([value, is_set], dim=-1)


def filtered_episodes(episodes: list[Episode], spec: ActionSpec, joints: slice) -> list[Episode]:
    """`episodes` as the network sees them: joint slots through the graph's filter (if the spec has one)."""
    if not spec.filters_joints:
        return episodes
    out = []
    for ep in episodes:
        obs = filter_joints(torch.from_numpy(ep.obs[None]), spec, joints)[0][0].numpy()
        out.append(dataclasses.replace(ep, obs=obs.astype(ep.obs.dtype)))
    return out


def seen_obs(obs: Tensor, previous: Tensor | None, spec: ActionSpec, joints: slice) -> Tensor:
    """The raw observation (..., D) as the network sees it: with joint_input "command", its joint slots hold
    command_weight x the previous targets (..., J) + (1 - command_weight) x the measured joints; relative
    targets are taken from, and decoded onto, those same slots."""
    if spec.joint_input != "command":
        return obs
    if previous is None:
        raise ValueError("a policy with the command as joint input needs the previous joint targets")
    w = spec.command_weight
    seen = previous if w == 1.0 else w * previous + (1.0 - w) * obs[..., joints]
    return torch.cat([obs[..., : joints.start], seen, obs[..., joints.stop :]], dim=-1)


def absolute_chunk_targets(act: Tensor, valid: Tensor, spec: ActionSpec) -> tuple[Tensor, Tensor]:
    """act (B, T, A) raw, valid (B, T) -> absolute targets (B, T, K, A) raw and their valid (B, T, K)."""
    return chunk_targets(act, act, valid, ActionSpec(chunk=spec.chunk), slice(0, 0))


def targets_seen_from(
    absolute: Tensor, obs: Tensor, previous: Tensor, spec: ActionSpec, joints: slice
) -> Tensor:
    """Absolute targets (B, T, K, A) raw -> in `spec`'s representation, taken from the previous targets the
    network saw (B, T, J) (training with feedback: they are partly its own) and the observations (B, T, D)."""
    if spec.representation == "absolute":
        return absolute
    offset = absolute.new_zeros(absolute.shape[:2] + absolute.shape[-1:])  # (B, T, A)
    if spec.representation == "previous":
        offset[..., joints] = previous_reference(obs, previous, spec, joints)
    else:  # relative to the joint slots it saw
        offset[..., joints] = seen_obs(obs, previous, spec, joints)[..., joints]
    return absolute - offset[:, :, None, :]


def previous_targets(obs: Tensor, act: Tensor, joints: slice) -> Tensor:
    """The previous tick's joint targets p_t (B, T, J) that the "previous" representation is taken from:
    act[t - 1, joints], and the measured joints at t = 0 (what a reset graph uses)."""
    return torch.cat([obs[:, :1, joints], act[:, :-1, joints]], dim=1)


def previous_input(previous: Tensor, obs: Tensor, joints: slice, scale: Tensor) -> Tensor:
    """What the network sees of the previous target: (previous - measured) / scale, (..., J)."""
    return (previous - obs[..., joints]) / scale


def _reference(
    obs: Tensor, act: Tensor, spec: ActionSpec, joints: slice, previous: Tensor | None = None
) -> Tensor:
    """What targets are taken relative to, (B, T, A): the measured joints or the previous targets in the
    joint slots, 0 for the base."""
    if spec.representation == "relative":
        if spec.joint_input == "command":
            obs = seen_obs(
                obs, previous_targets(obs, act, joints) if previous is None else previous, spec, joints
            )
        return _measured(obs, act.shape[-1], joints)
    offset = act.new_zeros(act.shape)
    previous = previous_targets(obs, act, joints) if previous is None else previous
    offset[..., joints] = previous_reference(obs, previous, spec, joints)
    return offset


def previous_reference(obs: Tensor, previous: Tensor, spec: ActionSpec, joints: slice) -> Tensor:
    """What "previous" targets are taken from, (..., J): previous_weight x the previous targets (..., J) +
    (1 - previous_weight) x the joint slots of obs (..., D); the previous targets alone at weight 1."""
    w = spec.previous_weight
    return previous if w == 1.0 else w * previous + (1.0 - w) * obs[..., joints]


def _measured(obs: Tensor, act_dim: int, joints: slice) -> Tensor:
    """What relative targets are taken from: the measured joints in the joint slots, 0 for the base.
    obs (..., D) -> (..., A)."""
    offset = obs.new_zeros((*obs.shape[:-1], act_dim))
    offset[..., joints] = obs[..., joints]
    return offset


def episode_targets(episode: Episode, spec: ActionSpec, joints: slice) -> tuple[np.ndarray, np.ndarray]:
    """One episode's targets (T, K, A) raw and valid (T, K), as `chunk_targets` builds them."""
    obs = torch.from_numpy(episode.obs[None])
    act = torch.from_numpy(episode.act[None])
    valid = torch.ones(1, len(episode))
    target, target_valid = chunk_targets(obs, act, valid, spec, joints)
    return target[0].numpy(), target_valid[0].numpy()


def previous_offset_std(episodes: list[Episode], joints: slice) -> np.ndarray:
    """(J,) std of previous target - measured over `episodes`, floored: the scale of the "previous" input."""
    rows = []
    for ep in episodes:
        obs = torch.from_numpy(ep.obs[None])
        act = torch.from_numpy(ep.act[None])
        rows.append((previous_targets(obs, act, joints) - obs[..., joints])[0].numpy())
    values = np.concatenate(rows).astype(np.float64)
    scale: np.ndarray = np.maximum(values.std(0), RELATIVE_STD_FLOOR).astype(np.float32)
    return scale


def policy_stats(
    dataset_stats: NormStats, episodes: list[Episode], spec: ActionSpec, layout: Layout
) -> NormStats:
    """The normalisation of the policy: the dataset's for observations, the targets' own for actions.

    Absolute targets keep the dataset's action statistics (exactly what earlier versions trained with);
    relative and previous targets get the mean and std of target - reference over every valid (tick,
    offset), with RELATIVE_STD_FLOOR on the joints and the dataset's floor on the base command.
    """
    if spec.representation == "absolute":
        return dataset_stats
    joints = layout.act_slices["joints"]
    rows = []
    for ep in episodes:
        target, target_valid = episode_targets(ep, spec, joints)
        rows.append(target[target_valid > 0])  # (N, A)
    values = np.concatenate(rows).astype(np.float64)
    return NormStats(
        obs_mean=dataset_stats.obs_mean,
        obs_std=dataset_stats.obs_std,
        act_mean=values.mean(0).astype(np.float32),
        act_std=np.maximum(values.std(0), target_std_floor(spec, layout)).astype(np.float32),
    )


def target_std_floor(spec: ActionSpec, layout: Layout) -> np.ndarray:
    """(A,) the floor of the targets' std: the dataset's (STD_FLOOR), RELATIVE_STD_FLOOR on the joints of
    relative and previous targets."""
    floor = np.full(layout.act_dim, STD_FLOOR)
    if spec.representation != "absolute":
        floor[layout.act_slices["joints"]] = RELATIVE_STD_FLOOR
    return floor


def offset_scale(stats: NormStats, episodes: list[Episode], spec: ActionSpec, layout: Layout) -> np.ndarray:
    """(K, A) the std of each chunk offset's targets over `episodes` (floored: `target_std_floor`) over
    the shared `stats.act_std`: with it every offset's normalised targets have unit spread
    (TrainConfig.chunk_normalisation "per_offset")."""
    joints = layout.act_slices["joints"]
    total = np.zeros((spec.chunk, layout.act_dim))
    squares = np.zeros((spec.chunk, layout.act_dim))
    count = np.zeros((spec.chunk, 1))
    for ep in episodes:
        target, target_valid = episode_targets(ep, spec, joints)  # (T, K, A), (T, K)
        weight = target_valid[..., None].astype(np.float64)
        total += (target * weight).sum(0)
        squares += (target.astype(np.float64) ** 2 * weight).sum(0)
        count += weight.sum(0)
    mean = total / np.maximum(count, 1)
    std = np.sqrt(np.maximum(squares / np.maximum(count, 1) - mean**2, 0.0))
    scale: np.ndarray = (np.maximum(std, target_std_floor(spec, layout)) / stats.act_std).astype(np.float32)
    return scale


def decode(
    chunk: Tensor,
    obs: Tensor,
    spec: ActionSpec,
    joints: slice,
    previous: Tensor | None = None,
) -> Tensor:
    """Raw chunk (B, K, A) in the representation + raw obs (B, D) -> absolute commands (B, K, A), joints
    made absolute (the joints are the first entries of act). `previous` (B, J): the previous joint
    targets, for the "previous" representation and the command as joint input (`seen_obs`). The base
    deadband is not applied here but to the command sent (`apply_deadband`), after any ensembling."""
    if spec.representation == "relative":
        chunk = chunk + _measured(seen_obs(obs, previous, spec, joints), chunk.shape[-1], joints)[:, None, :]
    elif spec.representation == "previous":
        if previous is None:
            raise ValueError("the previous representation decodes with the previous joint targets")
        offset = chunk.new_zeros(chunk.shape[0], chunk.shape[-1])
        offset[:, joints] = previous_reference(obs, previous, spec, joints)
        chunk = chunk + offset[:, None, :]
    return chunk


def apply_deadband(action: Tensor, spec: ActionSpec, joints: slice, deadband: Tensor) -> Tensor:
    """The command sent (..., A) with base entries whose magnitude is below `deadband` (A - J,) zeroed
    (`spec.deadband(base_axes)` gives the thresholds). Applied to the command itself, after temporal
    ensembling: a deadband on each chunk entry before the weighted mean let the mean of a few entries
    above it and many zeros through as a small residue, and the parked base turned (docs/learnability.md,
    round 17: 0.2 rad of yaw over a 150 s wipe)."""
    if not spec.has_deadband:
        return action
    base = action[..., joints.stop :]  # (..., A - J)
    base = torch.where(base.abs() < deadband, torch.zeros_like(base), base)
    return torch.cat([action[..., : joints.stop], base], dim=-1)


def ensemble_weights(spec: ActionSpec, device: torch.device | str | None = None) -> Tensor:
    """(K,) weight of a prediction made for `offset` ticks ahead, by its age at use (= offset):
    exp(-decay * age) scaled so that the largest is 1 (a negative decay weighs older predictions more), or
    sin^2(pi (age + 1) / (H + 1)) for the "hann" window, for ages below the ensemble horizon H (K unless
    set), and 0 from H on. The newest prediction's weight is always > 0 (ActionSpec bounds the decay)."""
    horizon = spec.ensemble_horizon or spec.chunk
    age = torch.arange(spec.chunk, dtype=torch.float32, device=device)
    if spec.ensemble_window == "hann":
        weights = torch.sin(math.pi * (age + 1) / (horizon + 1)) ** 2
    else:  # the log-weights' largest over the horizon is subtracted: no overflow for a negative decay
        weights = torch.exp(-spec.ensemble_decay * age + min(0.0, spec.ensemble_decay) * (horizon - 1))
    return torch.where(age < horizon, weights, torch.zeros_like(weights))


def ensemble_step(sums: Tensor, chunk: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Temporal ensembling, one tick. sums (B, K, A + 1): weighted sums of the commands for this tick and
    the next K - 1, and their weight in the last column; chunk (B, K, A) absolute; weights (K,).
    Returns the command for this tick (B, A) and the sums shifted one tick on (B, K, A + 1)."""
    weighted = torch.cat(
        [chunk * weights[None, :, None], weights[None, :, None].expand(chunk.shape[0], -1, 1)], -1
    )
    total = sums + weighted  # (B, K, A + 1)
    action = total[:, 0, :-1] / total[:, 0, -1:]  # (B, A); weight >= weights[0] > 0
    shifted = torch.cat([total[:, 1:], torch.zeros_like(total[:, :1])], dim=1)  # (B, K, A + 1)
    return action, shifted


CHANGEPOINT_DILATION = 2  # [ticks] each side of a changepoint that is weighted with it (100 ms at 20 Hz)


def command_changes(act: Tensor, valid: Tensor, act_std: Tensor) -> Tensor:
    """Per tick (B, T): the mean absolute change of the demonstrated command from the previous tick, in
    units of each dimension's std (0 at the first tick and on padding)."""
    d = ((act[:, 1:] - act[:, :-1]).abs() / act_std).mean(-1) * valid[:, 1:] * valid[:, :-1]  # (B, T-1)
    return torch.cat([torch.zeros_like(d[:, :1]), d], dim=1)


def changepoint_threshold(episodes: list[Episode], act_std: np.ndarray, quantile: float) -> float:
    """The `quantile` of the normalised command changes over `episodes` (what counts as a changepoint)."""
    changes = [np.abs(np.diff(e.act, axis=0)) / act_std for e in episodes if len(e) > 1]
    if not changes:
        return math.inf
    return float(np.quantile(np.concatenate(changes).mean(-1), quantile))


def changepoint_weights(changes: Tensor, threshold: float, weight: float) -> Tensor:
    """(B, T) loss weights: `weight` at ticks within CHANGEPOINT_DILATION of a change above `threshold`,
    else 1."""
    hits = (changes > threshold).float().unsqueeze(1)  # (B, 1, T)
    span = 2 * CHANGEPOINT_DILATION + 1
    near = torch.nn.functional.max_pool1d(hits, span, stride=1, padding=CHANGEPOINT_DILATION).squeeze(1)
    return 1.0 + (weight - 1.0) * near
