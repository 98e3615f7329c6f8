"""Checkpoints that carry everything needed to rebuild the policy without the code that trained it.

One `torch.save` file of plain types and tensors (loadable with `weights_only=True`):

    format            CHECKPOINT_FORMAT
    config            TrainConfig.to_dict()
    layout            Layout.to_dict()
    control_rate      [Hz]
    stats             NormStats.to_dict() (float32 values written as exact Python floats)
    dataset_summary   the dataset's summary
    training          epochs, best_epoch, best_val_loss, val_source, ... (JSON-able)
    history           per-epoch losses and sigma/rho statistics
    state_dict        the policy's tensors (buffers included)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vand_ros.data.dataset import NormStats
from vand_ros.errors import VandError
from vand_ros.learning.config import TrainConfig
from vand_ros.learning.policy import Policy
from vand_ros.runtime.layout import Layout

CHECKPOINT_FORMAT = 1
EXECUTION_FIELDS = (
    "chunk_execution",
    "ensemble_decay",
    "ensemble_window",
    "ensemble_horizon",
    "base_deadband",
    "base_deadband_angular",
)  # TrainConfig fields free at export
CHECKPOINT_NAME = "checkpoint.pt"  # the best model (lowest validation loss) in a run directory


@dataclass
class Checkpoint:
    config: TrainConfig
    layout: Layout
    control_rate: float  # [Hz]
    stats: NormStats
    dataset_summary: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    training: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_policy(
        cls,
        policy: Policy,
        layout: Layout,
        control_rate: float,
        stats: NormStats,
        dataset_summary: dict[str, Any],
        training: dict[str, Any] | None = None,
        history: list[dict[str, Any]] | None = None,
    ) -> Checkpoint:
        state = {k: v.detach().cpu().clone() for k, v in policy.state_dict().items()}
        return cls(
            policy.cfg,
            layout,
            control_rate,
            stats,
            dict(dataset_summary),
            state,
            dict(training or {}),
            list(history or []),
        )

    def with_execution(self, **fields: Any) -> Checkpoint:
        """A copy whose config has other execution-side action fields (EXECUTION_FIELDS: how commands are
        picked from a chunk and the base deadband). They do not touch the trained weights, so a model can be
        exported with them without retraining; the card records the values used."""
        unknown = sorted(set(fields) - set(EXECUTION_FIELDS))
        if unknown:
            raise VandError(f"only {list(EXECUTION_FIELDS)} can change after training, not {unknown}")
        return dataclasses.replace(self, config=dataclasses.replace(self.config, **fields))

    def build_policy(self) -> Policy:
        policy = Policy(
            self.config,
            self.layout.obs_dim,
            self.layout.act_dim,
            self.stats,
            len(self.layout.joint_names),
            self.layout.base_axes,
        )
        policy.load_state_dict(self.state_dict)
        return policy

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "format": CHECKPOINT_FORMAT,
                "config": self.config.to_dict(),
                "layout": self.layout.to_dict(),
                "control_rate": float(self.control_rate),
                "stats": self.stats.to_dict(),
                "dataset_summary": self.dataset_summary,
                "training": self.training,
                "history": self.history,
                "state_dict": self.state_dict,
            },
            path,
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint:
        path = Path(path)
        if path.is_dir():
            path = path / CHECKPOINT_NAME
        if not path.is_file():
            raise VandError(
                f"no checkpoint at {path} (expected a file written by `vand-ros train`); "
                "pass a run directory or its checkpoint.pt"
            )
        d = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(d, dict) or d.get("format") != CHECKPOINT_FORMAT:
            found = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise VandError(
                f"{path}: checkpoint format {found!r}, expected {CHECKPOINT_FORMAT}; "
                "retrain with this version of vand_ros"
            )
        return cls(
            config=TrainConfig.from_dict(d["config"]),
            layout=Layout.from_dict(d["layout"]),
            control_rate=float(d["control_rate"]),
            stats=NormStats.from_dict(d["stats"]),
            dataset_summary=d["dataset_summary"],
            state_dict=d["state_dict"],
            training=d["training"],
            history=d["history"],
        )
