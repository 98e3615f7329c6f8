"""Synthetic demonstrations for tests and benchmarks (numpy): periodic and sequential behaviours.

Both follow the dataset's conventions: obs_t holds the current joint positions (and base velocity,
features, instruction one-hot), act_t the next joint targets (and base command).

    periodic    each behaviour of the vocabulary is a sine per joint at its own frequency; the base
                command is a slow sine too
    sequential  each behaviour visits waypoints in its own order (smooth moves), then holds still
"""

from __future__ import annotations

import numpy as np

from vand_ros.data.dataset import Dataset, Episode
from vand_ros.runtime.layout import Layout


def small_layout() -> Layout:
    return Layout(("j0", "j1"), ("vx",), ("target.x",), ("slow", "fast"))


def _fill_obs(layout: Layout, q: np.ndarray, base: np.ndarray, behaviour: str) -> np.ndarray:
    """q (T+1, J) joint positions, base (T+1, Bx) -> obs (T, D) at ticks 0..T-1."""
    T = len(q) - 1
    obs = np.zeros((T, layout.obs_dim), np.float32)
    sl = layout.obs_slices
    obs[:, sl["joints"]] = q[:-1]
    obs[:, sl["base"]] = base[:-1]
    if layout.feature_names:
        obs[:, sl["features"]] = 0.1 * np.cos(np.arange(T) / 17.0)[:, None]  # a slowly varying feature
    obs[:, sl["instruction"].start + layout.vocabulary.index(behaviour)] = 1.0
    return obs


def _fill_act(layout: Layout, q: np.ndarray, base: np.ndarray) -> np.ndarray:
    act = np.zeros((len(q) - 1, layout.act_dim), np.float32)
    act[:, layout.act_slices["joints"]] = q[1:]
    act[:, layout.act_slices["base"]] = base[1:]
    return act


def periodic_episodes(
    layout: Layout, n: int = 8, steps: int = 200, rate: float = 20.0, seed: int = 0
) -> list[Episode]:
    """n episodes per behaviour of sines; behaviour k has period (2 + k) s [rad]."""
    rng = np.random.default_rng(seed)
    J, Bx = len(layout.joint_names), len(layout.base_axes)
    out = []
    for k, behaviour in enumerate(layout.vocabulary):
        omega = 2 * np.pi / (2.0 + k)  # [rad/s]
        for i in range(n):
            t = (np.arange(steps + 1) + rng.integers(0, 100)) / rate  # [s], random phase
            amp = 0.5 + 0.05 * rng.standard_normal(J)
            q = amp * np.sin(omega * t[:, None] + np.linspace(0, np.pi / 2, J)) + 0.01 * rng.standard_normal(
                (steps + 1, J)
            )
            base = 0.2 * np.sin(0.5 * omega * t[:, None] + np.arange(Bx)) if Bx else np.zeros((steps + 1, 0))
            out.append(
                Episode(
                    _fill_obs(layout, q, base, behaviour),
                    _fill_act(layout, q, base),
                    behaviour,
                    f"sine/{k}#{i}",
                )
            )
    return out


def sequential_episodes(
    layout: Layout, n: int = 8, steps: int = 200, rate: float = 20.0, seed: int = 0
) -> list[Episode]:
    """n episodes per behaviour: visit 3 waypoints in the behaviour's order, then hold still."""
    rng = np.random.default_rng(seed)
    J, Bx = len(layout.joint_names), len(layout.base_axes)
    stations = np.linspace(-0.8, 0.8, 3)[:, None] * np.linspace(1.0, -1.0, J)[None]  # (3, J) [rad]
    out = []
    for k, behaviour in enumerate(layout.vocabulary):
        order = [0, 1, 2] if k % 2 == 0 else [2, 1, 0]
        for i in range(n):
            seg = steps // 5 + rng.integers(-3, 4, size=3)  # ticks per move
            q = np.zeros((steps + 1, J))
            pos, t = np.zeros(J), 0
            for s, n_t in zip(order, seg, strict=True):
                ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n_t))[:, None]  # smooth 0 -> 1
                q[t : t + n_t] = pos + ramp * (stations[s] - pos)
                pos, t = stations[s], t + n_t
            q[t:] = pos
            q += 0.005 * rng.standard_normal(q.shape)
            base = np.zeros((steps + 1, Bx))
            out.append(
                Episode(
                    _fill_obs(layout, q, base, behaviour),
                    _fill_act(layout, q, base),
                    behaviour,
                    f"seq/{k}#{i}",
                )
            )
    return out


def synthetic_dataset(
    kind: str = "periodic",
    layout: Layout | None = None,
    n: int = 8,
    steps: int = 200,
    rate: float = 20.0,
    seed: int = 0,
) -> Dataset:
    """A Dataset of `kind` ("periodic" or "sequential") demonstrations, split 80/20 by episode."""
    layout = layout or small_layout()
    make = periodic_episodes if kind == "periodic" else sequential_episodes
    episodes = make(layout, n, steps, rate, seed)
    summary = {"source": f"synthetic {kind}", "episodes": len(episodes), "steps_per_episode": steps}
    return Dataset.from_episodes(layout, rate, episodes, seed=seed, summary=summary)
