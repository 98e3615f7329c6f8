"""The recurrent policy: normalise, encoder, regularised RNN (1-2 layers), Gaussian head, de-normalise.

State is explicit (robomimic/LeRobot style):

    state = policy.init_state(batch)                             # (h,) or (h, c), each (B, L, H), zeros
    out = policy(obs_seq, state, draws)                          # training: (B, T, D) raw observations
    exec_state = policy.init_exec_state(batch)                   # state + ensembling sums + previous target
    action, exec_state = policy.step(obs, exec_state, draws)     # control: (B, D) raw -> (B, A) absolute

`step` runs exactly the code of `forward` on a window of one step, so stepping T times equals the
sequence forward (a test). The head is a Gaussian with a learned log-std per chunk offset and action
dimension; the policy acts with the mean. It predicts K = cfg.action_chunk commands per tick in the
configured representation (vand_ros.runtime.action); `step` decodes them into absolute commands and picks
or ensembles this tick's, exactly as the ONNX graph does. Where the graph carries the previous joint
targets (`action.feeds_previous`), the network sees them: as previous target - measured joints (the
"previous" representation) or in place of the measured joints (joint_input "command"). In training they
are the demonstrated previous targets (`previous=`), or its own with feedback (`rollout`); in execution
its own last command, carried in the state. Normalisation statistics (of the observations, and of the
targets in their representation) are buffers, so they travel with the weights into the graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from vand_ros.data.dataset import NormStats
from vand_ros.learning.actions import (
    apply_deadband,
    decode,
    ensemble_step,
    ensemble_weights,
    filter_joints,
    previous_input,
    seen_obs,
)
from vand_ros.learning.cells import RegularisedLayer, gal_mask
from vand_ros.learning.config import TrainConfig
from vand_ros.runtime.card import DrawSpec, mode_feeds

State = tuple[Tensor, ...]  # (h,) for a GRU, (h, c) for an LSTM; each (B, L, H)


class Draws(NamedTuple):
    """Random inputs of a window (B, T, ...) or of one step (B, ...)."""

    eps: Tensor  # (B, T, L, H) or (B, L, H)
    u: Tensor  # (B, T, L, U) or (B, L, U)
    u_x: Tensor | None = None  # (B, T, D) or (B, D): Gal input masks, only where gal_p_x > 0

    def rows(self, index: slice) -> Draws:
        """The draws of part of the batch (a distributed rank's episodes)."""
        return Draws(self.eps[index], self.u[index], None if self.u_x is None else self.u_x[index])


class PolicyOutput(NamedTuple):
    mean: Tensor  # (B, T, K, A) normalised action mean, in the action representation
    state: State
    reg: Tensor  # (B, T) regulariser R_t (mean over layers); zeros for none/nrnn/gal
    hidden: Tensor  # (B, T, H) last layer's output


class Policy(nn.Module):
    ensemble_w: Tensor  # (K,) temporal-ensembling weight per chunk offset (not saved: derived from cfg)
    deadband: Tensor  # (A - J,) base command deadband per axis (not saved: derived from cfg and layout)
    obs_keep: Tensor  # (D,) 1 for each observation the model sees, 0 where cfg leaves it out (not saved)
    previous_std: Tensor  # (J,) scale of previous target - measured ("previous" representation only; saved)
    obs_mean: Tensor  # (D,) buffers: normalisation statistics of the training split
    obs_std: Tensor
    act_mean: Tensor  # (A,)
    act_std: Tensor
    offset_scale: Tensor  # (K, A) act_std's factor per chunk offset (1, not saved, unless per_offset)

    def __init__(
        self,
        cfg: TrainConfig,
        obs_dim: int,
        act_dim: int,
        stats: NormStats | None = None,
        joints: int = 0,
        base_axes: Sequence[str] = (),
    ) -> None:
        """`joints`: arm joints, the first entries of both obs and act; `base_axes`: the names of the base
        command entries after them (layout.base_axes). Relative actions, the base deadband and leaving the
        base twist out of the observation need them (the twist follows the joints in the observation)."""
        super().__init__()
        self.cfg = cfg
        self.action = cfg.action_spec
        needs_layout = (
            self.action.representation != "absolute"
            or self.action.has_deadband
            or cfg.base_twist_input == "none"
            or cfg.base_twist_noise > 0
        )
        if needs_layout and not (0 < joints <= min(obs_dim, act_dim) and len(base_axes) == act_dim - joints):
            raise ValueError(
                f"{self.action.label} actions (base twist input: {cfg.base_twist_input}) need the arm "
                "joints and base axes of the layout (got "
                f"joints={joints}, base_axes={list(base_axes)} for {act_dim} action entries)"
            )
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.joints = slice(0, joints)
        self.base_obs = slice(joints, joints + len(base_axes))  # the measured twist in the observation
        for name, dim in (
            ("obs_mean", obs_dim),
            ("obs_std", obs_dim),
            ("act_mean", act_dim),
            ("act_std", act_dim),
        ):
            value = torch.zeros(dim) if name.endswith("mean") else torch.ones(dim)
            if stats is not None:
                value = torch.as_tensor(getattr(stats, name), dtype=torch.float32).clone()
                if value.shape != (dim,):
                    raise ValueError(f"{name} has shape {tuple(value.shape)}, expected ({dim},)")
            self.register_buffer(name, value)
        # Set from the training data (actions.offset_scale) with cfg.chunk_normalisation "per_offset".
        per_offset = cfg.chunk_normalisation == "per_offset"  # saved only then: older checkpoints load
        self.register_buffer("offset_scale", torch.ones(self.action.chunk, act_dim), persistent=per_offset)
        if self.action.feeds_previous:  # set from the training data (actions.previous_offset_std)
            self.register_buffer("previous_std", torch.ones(joints))
        extra = joints if self.action.sees_lead else 0
        self.encoder = nn.Linear(obs_dim + extra, cfg.encoder_size)
        sizes = [cfg.encoder_size] + [cfg.hidden_size] * (cfg.num_layers - 1)
        self.layers = nn.ModuleList([RegularisedLayer(cfg, size) for size in sizes])
        K = self.action.chunk
        self.head = nn.Linear(cfg.hidden_size, K * act_dim)
        self.log_std = nn.Parameter(torch.zeros(K, act_dim))
        self.register_buffer("ensemble_w", ensemble_weights(self.action), persistent=False)  # (K,)
        deadband = torch.tensor(self.action.deadband(base_axes), dtype=torch.float32)  # (A - J,)
        self.register_buffer("deadband", deadband, persistent=False)
        obs_keep = torch.ones(obs_dim)
        if cfg.base_twist_input == "none":
            obs_keep[self.base_obs] = 0.0
        self.register_buffer("obs_keep", obs_keep, persistent=False)

    # -- state ------------------------------------------------------------------------------------------
    def init_state(self, batch: int = 1, device: torch.device | str | None = None) -> State:
        device = device if device is not None else self.head.weight.device
        shape = (batch, self.cfg.num_layers, self.cfg.hidden_size)
        n = 2 if self.cfg.cell == "lstm" else 1
        return tuple(torch.zeros(shape, device=device, dtype=self.head.weight.dtype) for _ in range(n))

    def init_exec_state(self, batch: int = 1, device: torch.device | str | None = None) -> State:
        """The state `step` carries: the recurrent state, then the ensembling sums (B, K, A + 1) if any,
        then the previous joint targets and their "set" flag (B, J + 1) if the representation has them,
        then the filtered joints and their flag (B, J + 1) if the joint input is filtered."""
        state = self.init_state(batch, device)
        if self.action.ensembles:
            state = (*state, state[0].new_zeros(batch, self.action.chunk, self.act_dim + 1))
        if self.action.feeds_previous:
            state = (*state, state[0].new_zeros(batch, self.joints.stop + 1))
        if self.action.filters_joints:
            state = (*state, state[0].new_zeros(batch, self.joints.stop + 1))
        return state

    def exec_slots(self) -> dict[str, int]:
        """Where each part after the recurrent state sits in `init_exec_state`'s tuple: "sums",
        "previous", "filter" (only those the spec has)."""
        present = (
            ("sums", self.action.ensembles),
            ("previous", self.action.feeds_previous),
            ("filter", self.action.filters_joints),
        )
        first = 2 if self.cfg.cell == "lstm" else 1
        return {name: first + k for k, name in enumerate(n for n, has in present if has)}

    # -- normalisation ----------------------------------------------------------------------------------
    def normalise_obs(self, obs: Tensor) -> Tensor:
        """Raw -> normalised observations, with the entries the config leaves out set to 0 (their mean)."""
        return (obs - self.obs_mean) / self.obs_std * self.obs_keep

    def normalise_act(self, act: Tensor) -> Tensor:
        """Raw chunk targets (..., K, A) in the representation -> normalised."""
        return (act - self.act_mean) / (self.act_std * self.offset_scale)

    def denormalise_act(self, act: Tensor) -> Tensor:
        """Normalised chunks (..., K, A) -> raw, in the representation."""
        return act * (self.act_std * self.offset_scale) + self.act_mean

    # -- the model --------------------------------------------------------------------------------------
    def forward(
        self, obs: Tensor, state: State, draws: Draws, hard: bool = False, previous: Tensor | None = None
    ) -> PolicyOutput:
        """obs (B, T, D) raw; draws (B, T, L, ...); hard: execution masks instead of relaxed ones;
        previous (B, T, J): the previous joint targets, where the graph carries them
        (actions.previous_targets makes them from a demonstration)."""
        if self.action.feeds_previous and previous is None:
            raise ValueError(f"this policy ({self.action.label}) sees its previous joint targets: previous=")
        raw = obs
        obs = seen_obs(obs, previous, self.action, self.joints)  # (B, T, D): the command in place, if so
        x = self.normalise_obs(obs)  # (B, T, D)
        if self.cfg.uses_input_mask:
            if draws.u_x is None:
                raise ValueError("this policy masks its inputs (gal_p_x > 0) and needs draws.u_x")
            x = x * gal_mask(draws.u_x, self.cfg.gal_p_x)
        if self.action.sees_lead:
            assert previous is not None
            x = torch.cat([x, previous_input(previous, raw, self.joints, self.previous_std)], dim=-1)
        x = torch.tanh(self.encoder(x))  # (B, T, E)
        new_state: list[tuple[Tensor, ...]] = []
        reg = x.new_zeros(x.shape[:2])  # (B, T)
        for i, layer in enumerate(self.layers):
            layer_state = tuple(s[:, i] for s in state)  # (B, H) each
            x, s_out, r = layer(x, layer_state, draws.eps[:, :, i], draws.u[:, :, i], hard)  # (B, T, H)
            new_state.append(s_out)
            reg = reg + r / len(self.layers)
        stacked = tuple(torch.stack([s[k] for s in new_state], dim=1) for k in range(len(state)))  # (B, L, H)
        B, T, _ = x.shape
        mean = self.head(x).view(B, T, self.action.chunk, self.act_dim)  # (B, T, K, A)
        return PolicyOutput(mean, stacked, reg, x)

    def step(self, obs: Tensor, state: State, draws: Draws) -> tuple[Tensor, State]:
        """One control step with execution masks: obs (B, D) raw -> absolute action (B, A) raw, next state.

        `state` is `init_exec_state`'s: the recurrent state, then the ensembling sums, the previous
        targets and the joint filter if the spec has them."""
        window = Draws(
            draws.eps.unsqueeze(1),
            draws.u.unsqueeze(1),
            None if draws.u_x is None else draws.u_x.unsqueeze(1),
        )
        n_rec = 2 if self.cfg.cell == "lstm" else 1
        slots = self.exec_slots()
        filtered = None
        if self.action.filters_joints:  # the joint slots from here on are the filtered joints
            seq, filtered = filter_joints(obs[:, None], self.action, self.joints, state[slots["filter"]])
            obs = seq[:, 0]  # (B, D)
        previous = None
        if self.action.feeds_previous:
            held = state[slots["previous"]]  # (B, J + 1): targets, then 1 once set; zeros at reset
            is_set = held[:, -1:]
            previous = is_set * held[:, :-1] + (1.0 - is_set) * obs[:, self.joints]  # (B, J)
        out = self.forward(
            obs.unsqueeze(1),
            state[:n_rec],
            window,
            hard=True,
            previous=None if previous is None else previous.unsqueeze(1),
        )
        chunk = decode(self.denormalise_act(out.mean[:, 0]), obs, self.action, self.joints, previous)
        new_state: State = out.state
        action, sums = self.command(chunk, state[slots["sums"]] if self.action.ensembles else None)
        if sums is not None:
            new_state = (*new_state, sums)
        if self.action.feeds_previous:
            new_state = (*new_state, torch.cat([action[:, self.joints], torch.ones_like(action[:, :1])], -1))
        if filtered is not None:
            new_state = (*new_state, filtered)
        return action, new_state

    def command(self, chunk: Tensor, sums: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """The command sent (B, A) for an absolute chunk (B, K, A): the chunk's first command, or with
        temporal ensembling the mean over `sums` (B, K, A + 1, returned shifted one tick on); then the base
        deadband, on the command itself (on each chunk entry it let the ensemble's mean through as a residue,
        docs/learnability.md round 17)."""
        if sums is None:
            action = chunk[:, 0]  # (B, A)
        else:
            action, sums = ensemble_step(sums, chunk, self.ensemble_w)
        return apply_deadband(action, self.action, self.joints, self.deadband), sums

    def rollout(
        self,
        obs: Tensor,
        state: State,
        draws: Draws,
        teacher: Tensor,
        carried: Tensor | None,
        alpha: float,
        hard: bool = False,
        forced: int = 0,
    ) -> tuple[PolicyOutput, Tensor, Tensor]:
        """A training window with feedback: the network sees, as its previous joint targets, `alpha` of its
        own previous command and 1 - alpha of the demonstrated one, tick by tick (the gradient flows through
        its own commands). obs (B, T, D) raw; teacher (B, T, J) the demonstrated previous targets
        (actions.previous_targets); carried (B, J): its own command of the tick before the window (None at
        an episode's start, where the graph also starts from the measured joints, teacher[:, 0]);
        forced: the window's first ticks that see the demonstrated previous targets alone.

        Returns the outputs as `forward` does, the previous targets it saw (B, T, J) (the "previous"
        targets are taken from them) and its last joint command (B, J), to carry into the next window."""
        T = obs.shape[1]
        outs: list[PolicyOutput] = []
        seen: list[Tensor] = []
        own = carried
        for t in range(T):
            if own is None or t < forced:
                previous = teacher[:, t]  # (B, J)
            else:
                previous = alpha * own + (1.0 - alpha) * teacher[:, t]
            step_draws = Draws(
                draws.eps[:, t : t + 1],
                draws.u[:, t : t + 1],
                None if draws.u_x is None else draws.u_x[:, t : t + 1],
            )
            out = self.forward(obs[:, t : t + 1], state, step_draws, hard, previous[:, None])
            state = out.state
            chunk = decode(
                self.denormalise_act(out.mean[:, 0]), obs[:, t], self.action, self.joints, previous
            )  # (B, K, A) absolute
            own = chunk[:, 0, self.joints]  # (B, J): the command sent, seen at the next tick
            if not self.cfg.feedback_gradient:
                own = own.detach()
            outs.append(out)
            seen.append(previous)
        assert own is not None, "a window has at least one tick"
        merged = PolicyOutput(
            torch.cat([o.mean for o in outs], dim=1),  # (B, T, K, A)
            state,
            torch.cat([o.reg for o in outs], dim=1),  # (B, T)
            torch.cat([o.hidden for o in outs], dim=1),  # (B, T, H)
        )
        return merged, torch.stack(seen, dim=1), own

    def nll(self, mean: Tensor, target: Tensor) -> Tensor:
        """Gaussian negative log-likelihood, mean over action dimensions: (B, T, K, A) -> (B, T, K)."""
        log_std = self.log_std.clamp(min=self.cfg.min_log_std)  # (K, A)
        z = (target - mean) * torch.exp(-log_std)
        return torch.mean(0.5 * z**2 + log_std + 0.5 * math.log(2 * math.pi), dim=-1)

    # -- learned scales ---------------------------------------------------------------------------------
    def sigma(self) -> Tensor:
        """(L, H) noise scales (zeros without VAND noise)."""
        return torch.stack([layer.sigma() for layer in self.layers])  # type: ignore[operator]

    def rho(self) -> Tensor:
        """(L, H) dropout ratios (zeros without VAND dropout)."""
        return torch.stack([layer.rho() for layer in self.layers])  # type: ignore[operator]


# -- draws -------------------------------------------------------------------------------------------------
def _fill(
    spec: DrawSpec, shape: tuple[int, ...], per_episode: Tensor | None, generator: torch.Generator | None
) -> Tensor:
    if spec.kind == "normal_per_step":
        return torch.randn(shape, generator=generator)
    if spec.kind == "uniform_per_step":
        return torch.rand(shape, generator=generator)
    if spec.kind == "uniform_per_episode":
        assert per_episode is not None
        return per_episode
    return torch.full(shape, spec.value if spec.kind == "constant" else 0.0)


class DrawMaker:
    """Torch twin of runtime.card.DrawSampler: draws windows for training ("train") or any execution mode.

    Per-episode draws (Gal masks) are drawn in `reset(batch)` and held over the windows of an episode.
    Draws are made on the CPU from a seeded generator (same seed, same draws on every device).
    """

    def __init__(self, cfg: TrainConfig, obs_dim: int, mode: str, seed: int) -> None:
        self.cfg = cfg
        self.feeds = mode_feeds(cfg.regulariser, mode, cfg.uses_input_mask)
        self.obs_dim = obs_dim
        self.generator = torch.Generator().manual_seed(seed)
        self._episode: dict[str, Tensor] = {}

    def _step_shape(self, name: str, batch: int) -> tuple[int, ...]:
        L, H = self.cfg.num_layers, self.cfg.hidden_size
        return {"eps": (batch, L, H), "u": (batch, L, self.cfg.u_size), "u_x": (batch, self.obs_dim)}[name]

    def reset(self, batch: int) -> None:
        self._episode = {
            n: torch.rand(self._step_shape(n, batch), generator=self.generator)
            for n, spec in self.feeds.items()
            if spec.kind == "uniform_per_episode"
        }

    def window(self, batch: int, steps: int, device: torch.device | str = "cpu") -> Draws:
        out: dict[str, Tensor] = {}
        for name, spec in self.feeds.items():
            step_shape = self._step_shape(name, batch)
            shape = (step_shape[0], steps, *step_shape[1:])
            ep = self._episode.get(name)
            out[name] = _fill(
                spec, shape, None if ep is None else ep.unsqueeze(1).expand(shape), self.generator
            )
        return Draws(
            out["eps"].to(device), out["u"].to(device), out["u_x"].to(device) if "u_x" in out else None
        )
