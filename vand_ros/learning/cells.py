"""The regularised recurrent layer: a hand-written GRU/LSTM cell with VAND or a baseline on its state.

All randomness comes in as explicit draws, so training, ONNX export and the node run the same maths:

    eps  (B, T, H)  standard normal: VAND noise sigma * eps, NRNN additive noise sigma_add * eps
    u    (B, T, U)  uniform in [0, 1): VAND keep masks, NRNN multiplicative factors, Gal masks.
                    A negative u selects the mask's mean (VAND m = 1 - rho; Gal scaling 1; NRNN factor 1).

VAND (formulation vand_ros/1, ../shared/VAND.md), per step:

    mu_q = f(x_t, h_{t-1});  mu_p = tanh(W_p x_t + b_p);  sigma = softplus(s);  rho = rho_max sigmoid(r)
    h_t  = m_t * mu_q + (1 - m_t) * mu_p + sigma * eps_t
    m_t  = sigmoid((log(1 - rho) - log rho + log u - log(1 - u)) / temperature)   (training, relaxed)
    m_t  = 1[u >= rho]  (u >= 0),  1 - rho  (u < 0)                                 (execution, hard)
    R_t  = mean_units(-log sigma + sigma^2 / 2) + mean_units((1 - rho) * stopgrad((mu_q - mu_p)^2) / 2)

For an LSTM the regulariser acts on h; the cell state c is the plain LSTM update, carried unchanged.
Everything that depends only on the inputs or the draws (input projections, prior, masks, noise) is computed
for the whole window at once, so the sequential loop holds only the recurrent matmul and the gate maths:
this is what keeps VAND's training step close to the plain cell's.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vand_ros.learning.config import TrainConfig

U_CLAMP = 1e-6  # the relaxed mask takes log(u) and log(1 - u)


def vand_mask_relaxed(u: Tensor, rho: Tensor, temperature: float) -> Tensor:
    """Binary-concrete keep mask (training): differentiable in rho. u (..., H), rho (H,) -> (..., H)."""
    u = u.clamp(U_CLAMP, 1.0 - U_CLAMP)
    logits = torch.log1p(-rho) - torch.log(rho) + torch.log(u) - torch.log1p(-u)
    return torch.sigmoid(logits / temperature)


def vand_mask_hard(u: Tensor, rho: Tensor) -> Tensor:
    """Execution keep mask 1[u >= rho]; the mean 1 - rho where u < 0. u (..., H), rho (H,) -> (..., H)."""
    keep = (u >= rho).to(u.dtype)
    return torch.where(u < 0, (1.0 - rho).expand_as(u), keep)


def gal_mask(u: Tensor, p: float) -> Tensor:
    """Inverted-dropout mask 1[u >= p] / (1 - p); its mean 1 where u < 0. Same in training and execution."""
    keep = (u >= p).to(u.dtype) * (1.0 / (1.0 - p))
    return torch.where(u < 0, torch.ones_like(u), keep)


def nrnn_factor(u: Tensor, mult: float) -> Tensor:
    """Multiplicative NRNN noise U[1 - mult, 1] from u in [0, 1); 1 where u < 0."""
    return torch.where(u < 0, torch.ones_like(u), 1.0 - mult * u)


class RegularisedLayer(nn.Module):
    """One recurrent layer: base cell f (GRU or LSTM, hand-written) plus the configured regulariser."""

    prior: nn.Linear  # VAND family only
    s: nn.Parameter  # (H,) sigma = softplus(s)
    r: nn.Parameter  # (H,) rho = rho_max * sigmoid(r)

    def __init__(self, cfg: TrainConfig, input_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        H, G = cfg.hidden_size, cfg.gates
        self.hidden_size = H
        self.w_ih = nn.Linear(input_size, G * H)
        self.w_hh = nn.Linear(H, G * H)
        bound = 1.0 / math.sqrt(H)  # torch's nn.GRU / nn.LSTM initialisation
        for p in (*self.w_ih.parameters(), *self.w_hh.parameters()):
            nn.init.uniform_(p, -bound, bound)
        if cfg.is_vand:
            self.prior = nn.Linear(input_size, H)  # g(x): the input-only prior mean
            s0 = math.log(math.expm1(cfg.sigma_init))  # softplus(s0) = sigma_init
            r0 = math.log(cfg.rho_init / (cfg.rho_max - cfg.rho_init))  # rho_max * sigmoid(r0) = rho_init
            self.s = nn.Parameter(torch.full((H,), s0), requires_grad=cfg.learns_scales)
            self.r = nn.Parameter(torch.full((H,), r0), requires_grad=cfg.learns_scales)

    # -- learned scales ---------------------------------------------------------------------------------
    def sigma(self) -> Tensor:
        """Noise scale per unit (H,); zeros where the regulariser has no VAND noise."""
        if self.cfg.is_vand and self.cfg.uses_noise:
            return F.softplus(self.s)
        return self.w_hh.weight.new_zeros(self.hidden_size)

    def rho(self) -> Tensor:
        """History-dropout ratio per unit (H,); zeros where the regulariser has no VAND dropout."""
        if self.cfg.is_vand and self.cfg.uses_dropout:
            return self.cfg.rho_max * torch.sigmoid(self.r)
        return self.w_hh.weight.new_zeros(self.hidden_size)

    # -- the base cell ----------------------------------------------------------------------------------
    def _cell(self, gi: Tensor, gh: Tensor, h: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """f(x, h): gi, gh (B, G*H) input and recurrent projections -> (h', c')."""
        if self.cfg.cell == "gru":
            i_r, i_z, i_n = gi.chunk(3, dim=-1)  # (B, H) each
            h_r, h_z, h_n = gh.chunk(3, dim=-1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            return torch.addcmul(n, z, h - n), None  # (1 - z) * n + z * h
        assert c is not None
        i, f, g, o = (gi + gh).chunk(4, dim=-1)  # (B, H) each
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c_new), c_new

    def _recurrent(self, h: Tensor, mask: Tensor | None) -> Tensor:
        """W_hh h (B, G*H), with Gal masks on h (tied (B, H) or untied per gate (B, G*H))."""
        if mask is None:
            return F.linear(h, self.w_hh.weight, self.w_hh.bias)
        if mask.shape[-1] == self.hidden_size:
            return F.linear(h * mask, self.w_hh.weight, self.w_hh.bias)
        G, H = self.cfg.gates, self.hidden_size
        hm = h.unsqueeze(1) * mask.view(-1, G, H)  # (B, G, H)
        w = self.w_hh.weight.view(G, H, H)  # (G, H_out, H_in)
        return torch.einsum("bgj,gij->bgi", hm, w).reshape(-1, G * H) + self.w_hh.bias  # (B, G*H)

    # -- a window ---------------------------------------------------------------------------------------
    def forward(
        self, x: Tensor, state: tuple[Tensor, ...], eps: Tensor, u: Tensor, hard: bool
    ) -> tuple[Tensor, tuple[Tensor, ...], Tensor]:
        """Run T steps.

        x (B, T, I); state (h,) or (h, c), each (B, H); eps (B, T, H); u (B, T, U).
        hard: execution masks (True) or the relaxed training mask (False; VAND only).
        Returns outputs h_t (B, T, H), the final state, and the regulariser R_t per step (B, T).
        """
        cfg = self.cfg
        B, T, _ = x.shape
        h = state[0]
        c = state[1] if cfg.cell == "lstm" else None
        gi_all = self.w_ih(x)  # (B, T, G*H)
        reg = x.new_zeros(B, T)
        rec_mask: Tensor | None = None
        if cfg.regulariser == "gal":
            rec_mask = gal_mask(u, cfg.gal_p_h)  # (B, T, U)
        elif cfg.regulariser == "nrnn":
            factor = nrnn_factor(u, cfg.nrnn_mult)  # (B, T, H)
            add = cfg.nrnn_sigma_add * eps  # (B, T, H)
        elif cfg.is_vand:
            mu_p_all = torch.tanh(self.prior(x))  # (B, T, H)
            sigma, rho = self.sigma(), self.rho()  # (H,)
            if cfg.uses_dropout:
                m_all = vand_mask_hard(u, rho) if hard else vand_mask_relaxed(u, rho, cfg.temperature)
            else:
                m_all = torch.ones_like(mu_p_all)
            noise_all = sigma * eps if cfg.uses_noise else torch.zeros_like(mu_p_all)  # (B, T, H)
            if cfg.uses_noise:
                reg = reg + torch.mean(-torch.log(sigma) + 0.5 * sigma**2)
        # Per-step views via unbind: its backward is one stack, where indexing [:, t] would allocate a full
        # zero gradient per step.
        gi_steps = gi_all.unbind(1)  # T x (B, G*H)
        mask_steps = rec_mask.unbind(1) if rec_mask is not None else None
        if cfg.regulariser == "nrnn":
            factor_steps, add_steps = factor.unbind(1), add.unbind(1)
        elif cfg.is_vand:
            # h = m * mu_q + [(1 - m) * mu_p + sigma * eps]: the bracket depends on no state
            rest_steps = (
                ((1.0 - m_all) * mu_p_all + noise_all).unbind(1) if cfg.uses_dropout else noise_all.unbind(1)
            )
            m_steps = m_all.unbind(1)
        outs: list[Tensor] = []
        mu_qs: list[Tensor] = []
        for t in range(T):
            gh = self._recurrent(h, None if mask_steps is None else mask_steps[t])  # (B, G*H)
            mu_q, c = self._cell(gi_steps[t], gh, h, c)  # (B, H)
            if cfg.regulariser == "nrnn":
                h = torch.addcmul(h + add_steps[t], factor_steps[t], mu_q - h)
            elif cfg.is_vand:
                if cfg.uses_dropout:
                    h = torch.addcmul(rest_steps[t], m_steps[t], mu_q)
                    mu_qs.append(mu_q)
                else:
                    h = mu_q + rest_steps[t]
            else:
                h = mu_q
            outs.append(h)
        if mu_qs:
            gap = (torch.stack(mu_qs, dim=1) - mu_p_all).detach() ** 2  # (B, T, H)
            reg = reg + torch.mean((1.0 - rho) * gap * 0.5, dim=-1)  # (B, T)
        new_state = (h,) if c is None else (h, c)
        return torch.stack(outs, dim=1), new_state, reg  # (B, T, H)
