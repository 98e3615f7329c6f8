"""The copycat diagnostic: does the policy predict where the demonstrator was going, or copy where it is?

With 20 Hz joint targets the commanded target is the measured joint plus about one tick of motion, so
"copy the measured joint" is already a good predictor and a network can learn little more than that
(copycat / causal confusion in behaviour cloning: de Haan et al. 2019, Wen et al. 2020). Then the motion
dies out in closed loop. Per behaviour and arm joint, on held-out episodes (teacher-forced: the policy sees
the demonstrated observations and sends the commands its execution graph would send):

    policy_mse    mean (command - demonstrated target)^2                          [rad^2]
    copy_mse      mean (measured joint - demonstrated target)^2: "copy the measured joint"
    previous_mse  mean (previous demonstrated target - target)^2: "repeat the last command"
    gain          least-squares slope of (command - measured) on (target - measured): 1 = the policy
                  reproduces the demonstrated offset from the measured joint, 0 = it copies the joint

A policy that learned the motion has policy_mse well below copy_mse and a gain near 1. A policy in the
"previous" representation is teacher forced with the demonstrated previous targets, which already carry
most of the offset; its gain says how well it continues the demonstrated motion, not whether it can
start it. The diagnostic is printed at the end of `vand-ros train`, written to summary.json, TensorBoard
and copycat.png, and carried on the model card (training.copycat), computed with the execution the model
was trained with; `vand-ros copycat MODEL.onnx --dataset DIR` (vand_ros.evaluation.copycat) computes it
on an exported graph, with the execution it ships with. The statistics are in learning.copycat (numpy).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vand_ros.data.dataset import Episode
from vand_ros.learning.actions import decode, filter_joints, previous_targets
from vand_ros.learning.copycat import copycat_stats
from vand_ros.learning.policy import DrawMaker, Policy


def teacher_forced_commands(
    policy: Policy, episode: Episode, mode: str = "deterministic", seed: int = 0
) -> np.ndarray:
    """Absolute commands (T, A) the execution graph sends on the demonstrated observations.

    Runs the sequence forward once, then applies the graph's decoding and `policy.command` (ensembling and
    the deadband, as `policy.step` does) tick by tick: equal to stepping `policy.step` (a test), and far
    faster."""
    device = policy.head.weight.device
    drawer = DrawMaker(policy.cfg, policy.obs_dim, mode, seed)
    drawer.reset(1)
    policy.eval()
    with torch.no_grad():
        obs = torch.from_numpy(episode.obs).to(device)  # (T, D)
        obs = filter_joints(obs[None], policy.action, policy.joints)[0][0]  # as the graph sees them
        previous = None
        if policy.action.feeds_previous:  # teacher forced: the demonstrated previous targets
            previous = previous_targets(
                obs[None], torch.from_numpy(episode.act).to(device)[None], policy.joints
            )
        window = drawer.window(1, len(episode), device)
        out = policy(obs[None], policy.init_state(1), window, hard=True, previous=previous)
        chunks = decode(
            policy.denormalise_act(out.mean[0]),
            obs,
            policy.action,
            policy.joints,
            None if previous is None else previous[0],
        )  # (T, K, A)
        if policy.action.ensembles:  # tick by tick: the ensemble carries its sums
            sums: torch.Tensor | None = policy.init_exec_state(1, device)[policy.exec_slots()["sums"]]
            steps = []
            for t in range(len(episode)):
                command, sums = policy.command(chunks[t : t + 1], sums)  # (1, A)
                steps.append(command[0])
            commands = torch.stack(steps)  # (T, A)
        else:  # every tick at once
            commands, _ = policy.command(chunks, None)  # (T, A)
        return commands.cpu().numpy().astype(np.float64)  # (T, A)


def copycat(
    policy: Policy, episodes: list[Episode], joint_names: list[str], mode: str = "deterministic"
) -> dict[str, Any]:
    """{behaviour or "all": {joint: {policy_mse, copy_mse, previous_mse, gain}}} over `episodes`."""
    return copycat_stats(
        episodes, [teacher_forced_commands(policy, ep, mode) for ep in episodes], joint_names
    )
