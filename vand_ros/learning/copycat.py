"""The copycat diagnostic's statistics, numpy only: learning.diagnostics computes them for a torch policy
(teacher forced), vand_ros.evaluation.copycat for an exported ONNX graph, without torch. What each number
means: learning.diagnostics."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from vand_ros.data.dataset import Episode


def copycat_stats(
    episodes: Sequence[Episode], commands: Sequence[np.ndarray], joint_names: Sequence[str]
) -> dict[str, Any]:
    """{key: {joint: {policy_mse, copy_mse, previous_mse, gain}}}: the absolute commands (T, A) sent on
    each episode's observations against its demonstrated targets and measured joints, from the second tick
    on (so that every tick has a previous target). Keys: each behaviour, "all", and "<behaviour>/<kind>"
    for each episode kind (Episode.kind; "unknown" where the bag did not say) of a behaviour whose
    episodes are of more than one kind: a recovery demonstration's offset holds the noise on its executed
    commands, which no policy can predict, so the pooled gain mixes two different questions."""
    n = len(joint_names)
    rows: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = defaultdict(list)
    kinds: dict[str, set[str]] = defaultdict(set)
    for ep in episodes:
        kinds[ep.behaviour].add(ep.kind or "unknown")
    for ep, sent in zip(episodes, commands, strict=True):
        command = np.asarray(sent, dtype=np.float64)[1:, :n]  # (T-1, J)
        target = ep.act[1:, :n].astype(np.float64)
        measured = ep.obs[1:, :n].astype(np.float64)
        previous = ep.act[:-1, :n].astype(np.float64)
        keys = [ep.behaviour, "all"]
        if len(kinds[ep.behaviour]) > 1:
            keys.append(f"{ep.behaviour}/{ep.kind or 'unknown'}")
        for key in keys:
            rows[key].append((command, target, measured, previous))
    out: dict[str, Any] = {}
    for key, parts in sorted(rows.items()):
        command, target, measured, previous = (np.concatenate(p) for p in zip(*parts, strict=True))
        offset, predicted = target - measured, command - measured  # (N, J)
        denominator = np.maximum((offset**2).sum(0), 1e-12)
        out[key] = {
            name: {
                "policy_mse": float(((command - target) ** 2)[:, j].mean()),
                "copy_mse": float((offset**2)[:, j].mean()),
                "previous_mse": float(((previous - target) ** 2)[:, j].mean()),
                "gain": float((offset * predicted)[:, j].sum() / denominator[j]),
            }
            for j, name in enumerate(joint_names)
        }
    return out


def table(diag: dict[str, Any]) -> str:
    """A short text table: one line per (behaviour, joint)."""
    lines = [
        f"{'behaviour':<10} {'joint':<18} {'policy':>9} {'copy':>9} {'previous':>9} {'gain':>6}  [MSE rad^2]"
    ]
    for key, joints in diag.items():
        for name, v in joints.items():
            lines.append(
                f"{key:<10} {name:<18} {v['policy_mse']:9.2e} {v['copy_mse']:9.2e} "
                f"{v['previous_mse']:9.2e} {v['gain']:6.2f}"
            )
    return "\n".join(lines)
