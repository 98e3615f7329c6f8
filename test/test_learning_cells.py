"""The regularised cells and the policy: VAND.md's maths, explicit draws, and step == forward."""

from __future__ import annotations

import math

import pytest
import torch

from vand_ros.errors import VandError
from vand_ros.learning.actions import apply_deadband, decode
from vand_ros.learning.cells import gal_mask, nrnn_factor, vand_mask_hard, vand_mask_relaxed
from vand_ros.learning.config import REGULARISERS, TrainConfig
from vand_ros.learning.policy import DrawMaker, Draws, Policy

pytestmark = pytest.mark.usefixtures("torch_one_thread")


D, A = 5, 3


def _policy(reg: str, cell: str, layers: int = 2, **kw: object) -> Policy:
    torch.manual_seed(0)
    cfg = TrainConfig(regulariser=reg, cell=cell, hidden_size=8, encoder_size=8, num_layers=layers, **kw)  # type: ignore[arg-type]
    return Policy(cfg, D, A, joints=2, base_axes=("vx",))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("reg", REGULARISERS)
def test_stepping_equals_the_sequence_forward(reg: str, cell: str) -> None:
    """float64: equal to 1e-12 (the same code on a window of one); float32: to GEMM rounding."""
    extra = {"gal_p_x": 0.2, "gal_untied": cell == "lstm"} if reg == "gal" else {}
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        policy = _policy(reg, cell, **extra).to(dtype)
        drawer = DrawMaker(policy.cfg, D, "train", seed=1)
        drawer.reset(2)
        d = drawer.window(2, 30)
        d = Draws(d.eps.to(dtype), d.u.to(dtype), None if d.u_x is None else d.u_x.to(dtype))
        obs = torch.randn(2, 30, D, dtype=dtype)
        with torch.no_grad():
            seq = policy(obs, policy.init_state(2), d, hard=True)
            state = policy.init_state(2)
            state = tuple(s.to(dtype) for s in state)
            actions = []
            for t in range(30):
                u_x = None if d.u_x is None else d.u_x[:, t]
                a, state = policy.step(obs[:, t], state, Draws(d.eps[:, t], d.u[:, t], u_x))
                actions.append(a)
        assert len(state) == (2 if cell == "lstm" else 1)
        torch.testing.assert_close(
            torch.stack(actions, 1),
            torch.stack(
                [
                    apply_deadband(
                        decode(
                            policy.denormalise_act(seq.mean[:, t]), obs[:, t], policy.action, policy.joints
                        )[:, 0],
                        policy.action,
                        policy.joints,
                        policy.deadband,
                    )
                    for t in range(30)
                ],
                1,
            ),
            rtol=0,
            atol=tol,
        )
        for s, s_seq in zip(state, seq.state, strict=True):
            torch.testing.assert_close(s, s_seq, rtol=0, atol=tol)


def test_masks_follow_vand_md() -> None:
    rho = torch.tensor([0.1, 0.3, 0.45])
    u = torch.tensor([[0.05, 0.5, 0.44], [0.2, 0.29, 0.46]])
    assert torch.equal(vand_mask_hard(u, rho), torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]))
    assert torch.equal(vand_mask_hard(-torch.ones(2, 3), rho), (1 - rho).expand(2, 3))  # mean mode
    relaxed = vand_mask_relaxed(u, rho, temperature=1e-3)  # a cold relaxation is the hard mask
    torch.testing.assert_close(relaxed, vand_mask_hard(u, rho), atol=1e-3, rtol=0)
    # E[m] = 1 - rho for the binary concrete at any temperature (logistic symmetry)
    big_u = torch.rand(200_000, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(vand_mask_relaxed(big_u, rho, 0.1).mean(0), 1 - rho, atol=5e-3, rtol=0)
    assert torch.equal(gal_mask(torch.tensor([0.1, 0.3, -1.0]), 0.25), torch.tensor([0.0, 1 / 0.75, 1.0]))
    f = nrnn_factor(torch.tensor([0.0, 0.999, -1.0]), 0.02)
    torch.testing.assert_close(f, torch.tensor([1.0, 1 - 0.02 * 0.999, 1.0]))


def test_vand_state_update_and_regulariser_are_the_formulas() -> None:
    """One step of layer 1 recomputed by hand from VAND.md."""
    policy = _policy("vand", "gru", layers=1)
    layer = policy.layers[0]
    with torch.no_grad():
        layer.s.copy_(torch.linspace(-3, 1, 8))
        layer.r.copy_(torch.linspace(-2, 2, 8))
    x = torch.randn(4, 1, 8)
    h0 = torch.randn(4, 8)
    eps, u = torch.randn(4, 1, 8), torch.rand(4, 1, 8)
    _, (h1,), reg = layer(x, (h0,), eps, u, hard=False)
    sigma = torch.nn.functional.softplus(layer.s)
    rho = 0.5 * torch.sigmoid(layer.r)
    gru = torch.nn.GRUCell(8, 8)
    gru.weight_ih.data, gru.bias_ih.data = layer.w_ih.weight.data, layer.w_ih.bias.data
    gru.weight_hh.data, gru.bias_hh.data = layer.w_hh.weight.data, layer.w_hh.bias.data
    mu_q = gru(x[:, 0], h0)
    mu_p = torch.tanh(layer.prior(x[:, 0]))
    m = torch.sigmoid(
        (torch.log(1 - rho) - torch.log(rho) + torch.log(u[:, 0]) - torch.log(1 - u[:, 0])) / 0.1
    )
    expected = m * mu_q + (1 - m) * mu_p + sigma * eps[:, 0]
    torch.testing.assert_close(h1, expected, atol=1e-6, rtol=0)
    r_sigma = torch.mean(-torch.log(sigma) + sigma**2 / 2)
    r_rho = torch.mean((1 - rho) * (mu_q - mu_p) ** 2 / 2, dim=-1)
    torch.testing.assert_close(reg[:, 0], r_sigma + r_rho, atol=1e-6, rtol=0)


def test_initial_scales_and_gradients() -> None:
    for reg, learned in (("vand", True), ("vand_fixed", False)):
        policy = _policy(reg, "gru")
        torch.testing.assert_close(policy.sigma(), torch.full((2, 8), 0.1))
        torch.testing.assert_close(policy.rho(), torch.full((2, 8), 0.1))
        drawer = DrawMaker(policy.cfg, D, "train", 0)
        drawer.reset(3)
        out = policy(torch.randn(3, 10, D), policy.init_state(3), drawer.window(3, 10))
        (policy.nll(out.mean, torch.randn(3, 10, 1, A)).mean() + out.reg.mean()).backward()
        layer = policy.layers[0]
        assert (layer.s.grad is not None and layer.r.grad is not None) == learned
        if learned:
            assert layer.s.grad.abs().sum() > 0 and layer.r.grad.abs().sum() > 0
    assert _policy("vand_noise", "gru").rho().abs().sum() == 0  # m = 1
    assert _policy("vand_dropout", "gru").sigma().abs().sum() == 0  # sigma = 0


def test_execution_modes_change_what_the_draws_do() -> None:
    policy = _policy("vand", "lstm")
    obs = torch.randn(1, 40, D)
    runs = {}
    for mode in ("stochastic", "noise", "deterministic"):
        drawer = DrawMaker(policy.cfg, D, mode, seed=3)
        drawer.reset(1)
        with torch.no_grad():
            runs[mode] = policy(obs, policy.init_state(1), drawer.window(1, 40), hard=True).mean
    drawer = DrawMaker(policy.cfg, D, "deterministic", seed=99)  # no randomness: the seed does not matter
    drawer.reset(1)
    with torch.no_grad():
        again = policy(obs, policy.init_state(1), drawer.window(1, 40), hard=True).mean
    assert torch.equal(again, runs["deterministic"])
    assert not torch.allclose(runs["noise"], runs["deterministic"])
    assert not torch.allclose(runs["stochastic"], runs["noise"])


def test_gal_masks_are_drawn_once_per_sequence() -> None:
    cfg = TrainConfig(regulariser="gal", hidden_size=8, encoder_size=8, gal_p_x=0.3, gal_untied=True)
    drawer = DrawMaker(cfg, D, "train", seed=0)
    drawer.reset(2)
    a, b = drawer.window(2, 5), drawer.window(2, 7)
    assert a.u.shape == (2, 5, 1, 24) and a.u_x is not None and a.u_x.shape == (2, 5, D)
    assert torch.equal(a.u[:, 0], a.u[:, 4]) and torch.equal(a.u[:, 0], b.u[:, 6])  # held over windows
    assert torch.equal(a.eps, torch.zeros_like(a.eps))
    drawer.reset(2)
    assert not torch.equal(drawer.window(2, 1).u[:, 0], a.u[:, 0])  # new episode, new masks


def test_config_validates_and_round_trips() -> None:
    cfg = TrainConfig(regulariser="nrnn", cell="lstm", beta=0.1, num_layers=2)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.default_mode == "deterministic" and "noise" in cfg.supported_modes
    assert TrainConfig().default_mode == "noise"
    for bad in (
        {"regulariser": "dropout"},
        {"cell": "rnn"},
        {"num_layers": 3},
        {"rho_init": 0.6},
        {"rho_max": 1.0},
        {"beta": -1.0},
        {"beta_warmup": 2.0},
        {"gal_p_h": 1.0},
        {"hidden_size": 0},
        {"execution_mode": "stochastic"},  # none supports deterministic only
        {"beta": math.nan},
    ):
        kw = {"regulariser": "none", **bad} if bad.keys() == {"execution_mode"} else bad
        with pytest.raises(VandError, match="config field"):
            TrainConfig(**kw)  # type: ignore[arg-type]
    with pytest.raises(VandError, match="unknown fields"):
        TrainConfig.from_dict({**cfg.to_dict(), "dropout": 0.1})
