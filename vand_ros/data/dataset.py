"""The training dataset: episodes of (observation, action) at the control rate, a split, and normalisation.

Pure numpy. The dataset builder (bags -> Dataset) lives beside this module; training reads a Dataset from
disk (`Dataset.load`) and never sees a bag. On disk a dataset is one directory:

    dataset.json   layout, control rate, split, normalisation statistics, summary, episode index
    dataset.npz    obs_<i> (T_i, D) and act_<i> (T_i, A), float32, raw units
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vand_ros.errors import VandError
from vand_ros.runtime.layout import Layout

DATASET_FORMAT = 1
# Floor of every normalisation std, in the streams' own units ([rad], [m], [m/s], [rad/s]). A stream that
# barely moves in the demonstrations (a wrist joint that settles to 0, a feature that is rarely visible)
# must not be amplified into a huge input when it moves a little at run time: with a floor of 1e-3 a
# start pose 0.15 rad off a settled wrist reached the network as -7 standard deviations and the policy
# failed in closed loop from its first tick. 0.05 is small next to the motions that matter (strokes of
# 0.15-0.3 m, joint swings of 0.3-1 rad).
STD_FLOOR = 0.05


@dataclass
class Episode:
    """One contiguous stretch of valid ticks from one bag."""

    obs: np.ndarray  # (T, D) float32, raw units
    act: np.ndarray  # (T, A) float32, raw units
    behaviour: str
    source: str  # where it came from, e.g. "bags/wipe_003#0" (bag and segment index)
    kind: str = ""  # how it was made (its bag's data.recording.KIND_KEY: clean, recovery, ...); "" unknown

    def __post_init__(self) -> None:
        if self.obs.ndim != 2 or self.act.ndim != 2 or len(self.obs) != len(self.act):
            raise VandError(
                f"episode {self.source}: obs {self.obs.shape} and act {self.act.shape} must be (T, D), (T, A)"
            )

    def __len__(self) -> int:
        return len(self.obs)


@dataclass
class NormStats:
    """Per-dimension mean and std of observations and actions (training split only)."""

    obs_mean: np.ndarray  # (D,)
    obs_std: np.ndarray  # (D,), >= floor
    act_mean: np.ndarray  # (A,)
    act_std: np.ndarray  # (A,), >= floor

    @classmethod
    def from_episodes(cls, episodes: list[Episode], floor: float = STD_FLOOR) -> NormStats:
        if not episodes:
            raise VandError("cannot compute normalisation statistics from no episodes")
        obs = np.concatenate([e.obs for e in episodes]).astype(np.float64)  # (N, D)
        act = np.concatenate([e.act for e in episodes]).astype(np.float64)  # (N, A)
        return cls(
            obs_mean=obs.mean(0).astype(np.float32),
            obs_std=np.maximum(obs.std(0), floor).astype(np.float32),
            act_mean=act.mean(0).astype(np.float32),
            act_std=np.maximum(act.std(0), floor).astype(np.float32),
        )

    def to_dict(self) -> dict[str, list[float]]:
        return {
            k: [float(x) for x in getattr(self, k)] for k in ("obs_mean", "obs_std", "act_mean", "act_std")
        }

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> NormStats:
        return cls(
            **{k: np.asarray(d[k], dtype=np.float32) for k in ("obs_mean", "obs_std", "act_mean", "act_std")}
        )


def check_widths(layout: Layout, episodes: list[Episode]) -> None:
    """Refuse episodes whose observation or action width is not the layout's, naming the first."""
    for ep in episodes:
        if ep.obs.shape[1] != layout.obs_dim or ep.act.shape[1] != layout.act_dim:
            raise VandError(
                f"episode {ep.source}: obs/act widths {ep.obs.shape[1]}/{ep.act.shape[1]} do not match "
                f"the layout's {layout.obs_dim}/{layout.act_dim}"
            )


@dataclass
class Dataset:
    """Episodes split by episode into train and validation, with statistics from the training split."""

    layout: Layout
    control_rate: float  # [Hz]
    train: list[Episode]
    val: list[Episode]
    stats: NormStats
    summary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_episodes(
        cls,
        layout: Layout,
        control_rate: float,
        episodes: list[Episode],
        val_fraction: float = 0.2,
        seed: int = 0,
        summary: dict[str, Any] | None = None,
    ) -> Dataset:
        """Split by episode (stratified by behaviour, at least one training episode per behaviour)."""
        rng = np.random.default_rng(seed)
        train: list[Episode] = []
        val: list[Episode] = []
        for behaviour in sorted({e.behaviour for e in episodes}):
            group = [e for e in episodes if e.behaviour == behaviour]
            order = rng.permutation(len(group))
            n_val = round(val_fraction * len(group)) if len(group) > 1 else 0
            val += [group[i] for i in order[:n_val]]
            train += [group[i] for i in order[n_val:]]
        check_widths(layout, episodes)
        return cls(layout, control_rate, train, val, NormStats.from_episodes(train), dict(summary or {}))

    @property
    def episodes(self) -> list[Episode]:
        return self.train + self.val

    # -- disk -------------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        index = []
        for i, ep in enumerate(self.episodes):
            arrays[f"obs_{i}"] = ep.obs.astype(np.float32)
            arrays[f"act_{i}"] = ep.act.astype(np.float32)
            index.append(
                {
                    "behaviour": ep.behaviour,
                    "source": ep.source,
                    "kind": ep.kind,
                    "split": "train" if i < len(self.train) else "val",
                }
            )
        np.savez(directory / "dataset.npz", **arrays)  # type: ignore[arg-type]
        meta = {
            "format": DATASET_FORMAT,
            "layout": self.layout.to_dict(),
            "control_rate": self.control_rate,
            "stats": self.stats.to_dict(),
            "summary": self.summary,
            "episodes": index,
        }
        (directory / "dataset.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Dataset:
        directory = Path(directory)
        meta_path, npz_path = directory / "dataset.json", directory / "dataset.npz"
        if not meta_path.is_file() or not npz_path.is_file():
            raise VandError(
                f"{directory} is not a dataset (expected dataset.json and dataset.npz); "
                "build one with `vand-ros dataset BAGS... --out DIR`"
            )
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != DATASET_FORMAT:
            raise VandError(
                f"{meta_path}: dataset format {meta.get('format')!r}, expected {DATASET_FORMAT}; rebuild it"
            )
        train: list[Episode] = []
        val: list[Episode] = []
        with np.load(npz_path) as arrays:
            for i, info in enumerate(meta["episodes"]):
                ep = Episode(
                    arrays[f"obs_{i}"], arrays[f"act_{i}"], info["behaviour"], info["source"],
                    info.get("kind", ""),  # datasets built before episodes had kinds: unknown
                )  # fmt: skip
                (train if info["split"] == "train" else val).append(ep)
        layout = Layout.from_dict(meta["layout"])
        check_widths(layout, [*train, *val])
        return cls(
            layout=layout,
            control_rate=float(meta["control_rate"]),
            train=train,
            val=val,
            stats=NormStats.from_dict(meta["stats"]),
            summary=meta.get("summary", {}),
        )
