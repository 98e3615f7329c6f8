"""ONNX/torch parity of an exported policy over a fed-back rollout (for the export and training tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from vand_ros.learning.checkpoint import Checkpoint
from vand_ros.learning.policy import Draws
from vand_ros.runtime.card import DrawSampler, ModelCard

STEPS, RESET_AT = 1000, 500
THRESHOLD_GAP = 1e-3  # keep u this far from rho / p (STACK.md: a hard threshold flips within ~1e-7)


def _away_from_thresholds(u: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    close = (u >= 0) & (np.abs(u - thresholds) < THRESHOLD_GAP)
    return np.where(close, u + 2 * THRESHOLD_GAP, u).astype(np.float32)


def onnx_rollout_error(ckpt: Checkpoint, path: Path, mode: str) -> float:
    """Max |torch - ORT| / (1 + |torch|) over actions and states of a fed-back rollout with the same draws
    and a reset (relative to the size: a relative policy's fed-back joints random-walk far from 0)."""
    policy = ckpt.build_policy().eval()
    cfg = policy.cfg
    card = ModelCard.from_metadata(ort.InferenceSession(str(path)).get_modelmeta().custom_metadata_map)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    card.check_io([(i.name, i.shape) for i in session.get_inputs()], [o.name for o in session.get_outputs()])
    sampler = DrawSampler(card, mode, seed=7)
    with torch.no_grad():
        rho = policy.rho().numpy()  # (L, H)
    thresholds = np.full((1, cfg.num_layers, cfg.u_size), cfg.gal_p_h if cfg.regulariser == "gal" else 0.0)
    if cfg.is_vand:
        thresholds = rho[None]
    D, A, J = ckpt.layout.obs_dim, ckpt.layout.act_dim, len(ckpt.layout.joint_names)
    rng = np.random.default_rng(0)
    state_ort = card.initial_state()
    state_torch = policy.init_exec_state(1)
    action = np.zeros((1, A), np.float32)
    worst = 0.0
    for t in range(STEPS):
        if t == RESET_AT:  # the node's ~/reset: zeros, new per-episode draws
            state_ort, state_torch = card.initial_state(), policy.init_exec_state(1)
            sampler.reset()
        # fed back: the observation's joints follow the previous action, plus a little noise
        obs = rng.normal(size=(1, D)).astype(np.float32)
        obs[:, :J] = action[:, :J] + 0.01 * obs[:, :J]
        draws = sampler()
        if "u" in draws:
            draws["u"] = _away_from_thresholds(draws["u"], thresholds)
        if "u_x" in draws:
            draws["u_x"] = _away_from_thresholds(draws["u_x"], np.full_like(draws["u_x"], cfg.gal_p_x))
        result = session.run(None, {"obs": obs, **state_ort, **draws})
        with torch.no_grad():
            tdraws = Draws(*(torch.from_numpy(draws[k]) if k in draws else None for k in ("eps", "u", "u_x")))
            act_t, state_torch = policy.step(torch.from_numpy(obs), state_torch, tdraws)
        for got, want in zip(result, (act_t, *state_torch), strict=True):
            worst = max(worst, float((np.abs(got - want.numpy()) / (1 + np.abs(want.numpy()))).max()))
        action = result[0]
        state_ort = {name: result[1 + k] for k, (name, _) in enumerate(card.state)}
        assert np.isfinite(action).all()
    return worst
