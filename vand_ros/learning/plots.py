"""Plots written into a run directory (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MAX_ACTION_PANELS = 9


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def losses(history: list[dict[str, Any]], path: Path) -> None:
    """Training NLL, training loss (NLL + beta R) and validation NLL per epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [h["train_nll"] for h in history], label="train NLL")
    ax.plot(epochs, [h["train_loss"] for h in history], label="train loss (NLL + beta R)", alpha=0.6)
    ax.plot(epochs, [h["val_loss"] for h in history], label="val NLL (deterministic)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("per action dimension [nats]")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def sigma_rho(history: list[dict[str, Any]], path: Path) -> None:
    """Learned noise scale sigma and dropout ratio rho per epoch: mean with the min-max band over units."""
    plt = _pyplot()
    epochs = np.array([h["epoch"] for h in history])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key in zip(axes, ("sigma", "rho"), strict=True):
        mean = np.array([h[f"{key}_mean"] for h in history])
        ax.fill_between(
            epochs,
            [h[f"{key}_min"] for h in history],
            [h[f"{key}_max"] for h in history],
            alpha=0.3,
            label="min-max over units",
        )
        ax.plot(epochs, mean, label="mean")
        ax.plot(epochs, [h[f"{key}_frac_gt_0_5"] for h in history], "--", label="fraction > 0.5")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def open_loop(
    demo: np.ndarray, pred: np.ndarray, names: Sequence[str], rate: float, title: str, path: Path
) -> None:
    """Open-loop prediction (T, A) against the demonstrated actions (T, A), one panel per dimension."""
    plt = _pyplot()
    A = min(demo.shape[1], MAX_ACTION_PANELS)
    cols = min(A, 3)
    rows = int(np.ceil(A / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.5 * rows), squeeze=False)
    t = np.arange(len(demo)) / rate  # [s]
    for k in range(rows * cols):
        ax = axes[k // cols][k % cols]
        if k >= A:
            ax.axis("off")
            continue
        ax.plot(t, demo[:, k], label="demonstration")
        ax.plot(t, pred[:, k], "--", label="policy (open loop)")
        ax.set_title(names[k], fontsize=9)
        ax.set_xlabel("t [s]")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def copycat(diag: dict[str, Any], path: Path) -> None:
    """The copycat diagnostic (learning.diagnostics): per behaviour and joint, the policy's command error
    next to "copy the measured joint" and "repeat the last command", and the gain."""
    plt = _pyplot()
    groups = [k for k in diag if k != "all" and "/" not in k] or list(diag)  # behaviours, not kinds
    joints = list(next(iter(diag.values())))
    fig, axes = plt.subplots(2, len(groups), figsize=(3.2 * len(groups), 6), squeeze=False)
    x = np.arange(len(joints))
    for col, key in enumerate(groups):
        ax_mse, ax_gain = axes[0, col], axes[1, col]
        for i, (field, label) in enumerate(
            (("policy_mse", "policy"), ("copy_mse", "copy measured"), ("previous_mse", "previous target"))
        ):
            ax_mse.bar(x + (i - 1) * 0.27, [diag[key][j][field] for j in joints], 0.27, label=label)
        ax_mse.set_yscale("log")
        ax_mse.set_title(key)
        ax_gain.bar(x, [diag[key][j]["gain"] for j in joints])
        ax_gain.axhline(1.0, color="k", lw=0.8)
        for ax in (ax_mse, ax_gain):
            ax.set_xticks(x, [j.removeprefix("arm_") for j in joints], rotation=60, fontsize=7)
            ax.grid(alpha=0.3, axis="y")
    axes[0, 0].set_ylabel("MSE [rad^2]")
    axes[1, 0].set_ylabel("gain (1 = reproduces the offset)")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
