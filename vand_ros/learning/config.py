"""The one training configuration: model shape, regulariser and its switches, optimisation. Saved with every
checkpoint (as a plain dict) and summarised on the ONNX model card.

Regulariser presets (../shared/VAND.md, formulation "vand_ros/1"):

    none          plain GRU/LSTM
    nrnn          Noisy RNN: additive N(0, nrnn_sigma_add^2) and multiplicative U[1 - nrnn_mult, 1] on the
                  state increment, per unit and step, fixed scales
    gal           variational dropout: Bernoulli masks drawn once per sequence on the recurrent state
                  (gal_p_h) and on the normalised inputs (gal_p_x), optionally untied per gate, inverted
                  scaling, weight decay as the KL
    vand          adaptive noise (learned sigma) + adaptive history dropout (learned rho) + beta * R
    vand_noise    VAND without dropout (m = 1)
    vand_dropout  VAND without noise (sigma = 0)
    vand_fixed    VAND with sigma and rho frozen at sigma_init and rho_init

The ablation switches (noise on, dropout on, sigma/rho learned) follow from the preset name; see
`uses_noise`, `uses_dropout` and `learns_scales`. Every other knob of VAND.md is a field below.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from vand_ros.errors import VandError
from vand_ros.runtime.action import ActionSpec
from vand_ros.runtime.card import EXECUTION_MODES

CONFIG_VERSION = 1
# Fields added after version 1 was written, with the value a config that lacks them was trained with (not
# today's default: a checkpoint trained on absolute targets must not be decoded as relative ones).
LEGACY_VALUES: dict[str, Any] = {
    "action_representation": "absolute",
    "action_chunk": 1,
    "chunk_execution": "first",
    "ensemble_decay": 0.0,
    "ensemble_window": "exponential",
    "ensemble_horizon": 0,
    "chunk_normalisation": "shared",
    "base_deadband": 0.0,
    "base_deadband_angular": 0.0,
    "select_every": 0,
    "train_episodes": 0,
    "changepoint_weight": 1.0,
    "base_twist_input": "measured",
    "base_twist_noise": 0.0,
    "previous_noise": 0.0,
    "previous_shift": 0.0,
    "lr_schedule": "constant",
    "ema_decay": 0.0,
    "joint_noise": 0.0,
    "joint_input": "measured",
    "feedback": 0.0,
    "feedback_warmup": 0.25,
    "feedback_gradient": True,
    "feedback_after": 0,
    "command_weight": 1.0,
    "joint_filter": 0.0,
    "previous_weight": 1.0,
}
REGULARISERS: tuple[str, ...] = ("none", "nrnn", "gal", "vand", "vand_noise", "vand_dropout", "vand_fixed")
BASE_TWIST_INPUTS: tuple[str, ...] = ("measured", "none")
VAND_FAMILY: tuple[str, ...] = ("vand", "vand_noise", "vand_dropout", "vand_fixed")
CELLS: tuple[str, ...] = ("gru", "lstm")
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")
CHUNK_NORMALISATIONS: tuple[str, ...] = ("shared", "per_offset")  # TrainConfig.chunk_normalisation
LR_FINAL = 0.01  # the cosine schedule's last learning rate, as a fraction of lr
DEVICES: tuple[str, ...] = ("cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Validated on construction."""

    # -- model ------------------------------------------------------------------------------------------
    regulariser: str = "vand"
    cell: str = "gru"  # base cell f: "gru" or "lstm" (for an LSTM the regulariser acts on h, c is carried)
    hidden_size: int = 64  # H
    num_layers: int = 1  # L, 1 or 2
    encoder_size: int = 64  # E: Linear(D, E) + tanh before the recurrent layers
    # -- VAND (VAND.md): loss = NLL + beta * mean_BT(R_sigma + R_rho) ----------------------------------------
    beta: float = 0.05  # measured at H = 64; the pull per unit is beta / H, so re-tune when H changes
    beta_warmup: float = 0.1  # fraction of the planned optimiser steps over which beta ramps from 0 (0 = off)
    sigma_init: float = 0.1  # initial noise scale sigma = softplus(s)
    rho_init: float = 0.1  # initial dropout ratio rho = rho_max * sigmoid(r)
    rho_max: float = 0.5  # cap on rho by its parameterisation (R_rho is linear in rho)
    temperature: float = 0.1  # binary-concrete temperature of the training mask
    # -- NRNN --------------------------------------------------------------------------------------------
    nrnn_sigma_add: float = 0.05
    nrnn_mult: float = 0.02
    # -- Gal & Ghahramani --------------------------------------------------------------------------------
    gal_p_h: float = 0.25
    gal_p_x: float = 0.0  # masking a joint for a whole sequence failed every prototype task; for features
    gal_untied: bool = False  # one mask per gate instead of one per unit
    gal_weight_decay: float = 1e-5  # the KL of Gal's variational dropout, as Adam weight decay
    # -- execution --------------------------------------------------------------------------------------
    execution_mode: str = ""  # "" = the regulariser's default (EXECUTION_MODES)
    # -- action representation (vand_ros.runtime.action; decoded inside the ONNX graph) ------------------
    # relative and the deadband: docs/learnability.md (absolute targets were copied; the base crept)
    action_representation: str = (
        "relative"  # "relative" to the measured joints, "previous" target, "absolute"
    )
    action_chunk: int = 1  # K: commands predicted per tick (this one and the next K - 1)
    chunk_execution: str = "first"  # "first" command of the newest chunk, or "ensemble" (temporal)
    ensemble_decay: float = 0.0  # [1/tick] ensembling weight exp(-decay * age); < 0: older weigh more
    ensemble_window: str = "exponential"  # or "hann": sin^2(pi (age + 1) / (K + 1)), decay 0
    ensemble_horizon: int = 0  # ensemble only the newest H of the K predictions for a tick (0 = all K)
    # How chunk targets are normalised: "shared" = one mean and std per action entry over every chunk
    # offset (a relative chunk's std is then set by its far offsets, and the next tick's command, one tick
    # of motion, spans a third of a unit), or "per_offset" = each chunk offset's targets also scaled to
    # their own spread. Trained in; the graph carries it. Round 21 (docs/learnability.md) measured it on
    # chunks of 20: the copycat gain did not move (0.72 / 0.66); not the default.
    chunk_normalisation: str = "shared"
    base_deadband: float = 0.02  # [m/s] linear base commands smaller than this are sent as zero
    base_deadband_angular: float = 0.05  # [rad/s] the same for angular base commands (wz)
    # What the network sees in its joint slots: the "measured" joints, the "command" the graph sent the
    # tick before (kept in the graph; the measured joints at reset), which no encoder noise or latency
    # reaches, or the measured joints "filtered" (joint_filter, below). "command" needs absolute or
    # previous targets, and training with feedback (below). Round 15 measured both; neither is adopted.
    joint_input: str = "measured"
    command_weight: float = 1.0  # with "command": its weight against the measured joints (1 = alone)
    # With joint_input "filtered": the joint slots (input, and what relative targets are taken from) hold
    # the measured joints low-pass filtered inside the graph, f = joint_filter x f + (1 - joint_filter) x q
    # per tick, so encoder noise does not reach the command one to one (in the `noise` condition the
    # relative wipe's command carried the 0.01 rad noise straight to the arm: 14.7x the demonstrations'
    # shake, docs/learnability.md round 14). 0 with the other inputs.
    joint_filter: float = 0.0
    # With action_representation "previous": targets are taken from, and decoded onto, previous_weight x
    # the previous target + (1 - previous_weight) x the joint slots, so only 1 - w of encoder noise reaches
    # the command. Round 16 measured it on the wipe: less shake under noise, but the stroke still drifts
    # (the arm follows the command, so the measured joints cannot anchor where the stroke is). Not a default.
    previous_weight: float = 1.0
    # -- optimisation -----------------------------------------------------------------------------------
    seq_len: int = 64  # truncated-BPTT window [steps]; the state is carried (detached) across windows
    batch_size: int = 16  # episodes per batch
    lr: float = 1e-3
    # "constant" lr, or "cosine": from lr down to LR_FINAL * lr over the planned optimiser steps
    # (max_epochs), so the last epochs settle instead of hopping between checkpoints of different quality
    lr_schedule: str = "constant"
    # Exponential moving average of the weights (learning.averaging): the averaged policy is the one
    # validated, selected and saved; per optimiser step, so 0.998 averages over about 500 steps (0 = off).
    # Measured (docs/learnability.md, round 14): 32 of 57 validation runs against 28 without, patrol 13/15.
    ema_decay: float = 0.998
    grad_clip: float = 1.0  # max global gradient norm
    max_epochs: int = 400  # with recovery demonstrations the validation loss still improved after 200
    patience: int = 60  # early stopping: epochs without a better validation loss (noisy with recovery data)
    select_every: int = (
        0  # score the policy in closed loop every this many epochs and keep the best (0 = off:
    )
    # keep the lowest validation loss); needs a validator (vand_ros.evaluation.selection)
    min_log_std: float = -5.0  # floor of the action head's learned log-std (keeps the NLL bounded)
    train_episodes: int = 0  # at most this many training episodes per behaviour (0 = all): data-scaling runs
    # Keyframe weighting (Wen et al. 2021): ticks where the demonstrated command changes most (the top
    # 1 - changepoint_quantile of normalised command changes, +- CHANGEPOINT_DILATION ticks) weigh this much
    # in the loss (1 = off).
    changepoint_weight: float = 1.0
    changepoint_quantile: float = 0.95
    # The measured base twist (odometry) in the observation. Demonstrations start from standstill, so a
    # policy learned to copy the twist it measures and stayed still (a copycat of the base; with it left
    # out, visit_abc 0/6 -> 4/6 and visit_cba 0/6 -> 4/6 validation runs: docs/learnability.md, round 9).
    # "none" zeroes it inside the model (the node and the layout are unchanged); "measured" feeds it in.
    base_twist_input: str = "none"
    # Training only: Gaussian noise on the twist input, in units of its normalisation std (0 = off); with
    # "measured". Measured as a weaker remedy than leaving the twist out (round 9).
    base_twist_noise: float = 0.0
    # Training only, "previous" representation: Gaussian noise on the previous joint targets the network
    # sees, in units of their lead's std (previous_std), with the training targets taken from the noisy
    # ones, so the policy learns to correct a previous command that went astray (its own, in closed loop:
    # teacher forcing alone shows it only the demonstrator's). 0 = off.
    previous_noise: float = 0.0
    # Training only, "previous" representation: the whole arm shifted, per episode, by Gaussian joint offsets
    # of this std [rad] (the measured joints and the previous targets together, as a command that
    # drifted and the arm that followed it), with the targets still the demonstrated ones, so the policy
    # learns to pull a drifted stroke back to where the demonstrations put it. 0 = off.
    previous_shift: float = 0.0
    # Training only: Gaussian noise of this std [rad] on the measured joint positions the network sees, per
    # tick, with the targets taken relative to the noisy joints (as the node decodes a relative target), so
    # the policy learns to cancel its encoders' noise instead of passing it on to the command: with
    # sensor noise (the `noise` condition, 0.01 rad) the relative wipe shook in 21 of 22 validation runs.
    # 0 = off.
    joint_noise: float = 0.0
    # Training only, where the graph carries the previous joint targets (joint_input "command" or previous
    # targets): the previous targets the network sees are this fraction of its own previous command and
    # the rest the demonstrated one (0 = teacher forcing; 1 = free-running, as it runs), so that it learns
    # from its own errors within a BPTT window instead of repeating a demonstrated command it will never
    # see in closed loop (scheduled sampling; Bengio et al. 2015). The gradient flows through the fed-back
    # commands. Ramps linearly from 0 over the first `feedback_warmup` of the planned optimiser steps.
    feedback: float = 0.0
    feedback_warmup: float = 0.25
    feedback_gradient: bool = True  # False: the fed-back commands are detached (no BPTT through the loop)
    # > 0: each window starts from the demonstrated previous targets and sees them alone for this many
    # ticks, then its own (the state it reached is then phase-locked to the demonstration; 0 = the rollout
    # runs on across windows).
    feedback_after: int = 0
    seed: int = 0
    device: str = "cpu"
    smoke: bool = False  # tiny run that finishes in seconds (tests)

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> VandError:
            return VandError(
                f"config field {name}: expected {expected}, found {getattr(self, name)!r}; fix the value"
            )

        if self.regulariser not in REGULARISERS:
            raise bad("regulariser", f"one of {list(REGULARISERS)}")
        if self.cell not in CELLS:
            raise bad("cell", f"one of {list(CELLS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise bad("lr_schedule", f"one of {list(LR_SCHEDULES)}")
        if self.device not in DEVICES:
            raise bad("device", f"one of {list(DEVICES)}")
        for name in ("hidden_size", "encoder_size", "seq_len", "batch_size", "max_epochs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise bad(name, "a positive integer")
        if self.num_layers not in (1, 2):
            raise bad("num_layers", "1 or 2")
        if self.select_every < 0:
            raise bad("select_every", "0 (off) or a positive number of epochs")
        if self.train_episodes < 0:
            raise bad("train_episodes", "0 (all) or a positive number of episodes per behaviour")
        if not math.isfinite(self.changepoint_weight) or self.changepoint_weight < 1:
            raise bad("changepoint_weight", "a finite number >= 1 (1 = off)")
        if not 0 < self.changepoint_quantile < 1:
            raise bad("changepoint_quantile", "a number between 0 and 1")
        if self.base_twist_input not in BASE_TWIST_INPUTS:
            raise bad("base_twist_input", f"one of {list(BASE_TWIST_INPUTS)}")
        if not math.isfinite(self.base_twist_noise) or self.base_twist_noise < 0:
            raise bad("base_twist_noise", "a finite number >= 0 (0 = off)")
        if not math.isfinite(self.joint_noise) or self.joint_noise < 0:
            raise bad("joint_noise", "a finite number >= 0 [rad] (0 = off)")
        for name in ("previous_noise", "previous_shift"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise bad(name, "a finite number >= 0 (0 = off)")
            if value > 0 and self.action_representation != "previous":
                raise bad(name, "0 unless action_representation='previous'")
        if not 0 <= self.feedback <= 1:
            raise bad("feedback", "a fraction in [0, 1] (0 = teacher forcing)")
        if self.feedback > 0 and not self.action_spec.feeds_previous:
            raise bad("feedback", "0 unless joint_input='command' or action_representation='previous'")
        if self.feedback_after < 0 or self.feedback_after >= self.seq_len:
            raise bad("feedback_after", f"0 or a number of ticks below seq_len ({self.seq_len})")
        if not 0 <= self.feedback_warmup <= 1:
            raise bad("feedback_warmup", "a fraction in [0, 1]")
        if self.base_twist_noise > 0 and self.base_twist_input != "measured":
            raise bad("base_twist_noise", "0 unless base_twist_input='measured' (no twist, nothing to noise)")
        if self.patience < 1:
            raise bad("patience", "a positive integer")
        for name in ("beta", "nrnn_sigma_add", "gal_weight_decay"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise bad(name, "a finite number >= 0")
        for name in ("lr", "grad_clip", "sigma_init", "temperature"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) <= 0:
                raise bad(name, "a finite number > 0")
        if not 0 <= self.ema_decay < 1:
            raise bad("ema_decay", "a number in [0, 1) (0 = off)")
        if not 0 <= self.beta_warmup <= 1:
            raise bad("beta_warmup", "a fraction in [0, 1]")
        if not 0 < self.rho_max < 1:
            raise bad("rho_max", "a ratio in (0, 1)")
        if not 0 < self.rho_init < self.rho_max:
            raise bad("rho_init", f"a ratio in (0, rho_max={self.rho_max})")
        if not 0 <= self.nrnn_mult < 1:
            raise bad("nrnn_mult", "a fraction in [0, 1)")
        for name in ("gal_p_h", "gal_p_x"):
            if not 0 <= getattr(self, name) < 1:
                raise bad(name, "a dropout probability in [0, 1)")
        if self.chunk_normalisation not in CHUNK_NORMALISATIONS:
            raise bad("chunk_normalisation", f"one of {list(CHUNK_NORMALISATIONS)}")
        _ = self.action_spec  # validates the action fields (VandError names the bad one)
        supported, _ = EXECUTION_MODES[self.regulariser]
        if self.execution_mode and self.execution_mode not in supported:
            raise bad(
                "execution_mode", f"'' (the default) or one of {list(supported)} for {self.regulariser}"
            )

    # -- derived switches -------------------------------------------------------------------------------
    @property
    def action_spec(self) -> ActionSpec:
        return ActionSpec(
            self.action_representation,
            self.action_chunk,
            self.chunk_execution,
            self.ensemble_decay,
            self.base_deadband,
            self.base_deadband_angular,
            self.joint_input,
            self.command_weight,
            self.joint_filter,
            self.previous_weight,
            self.ensemble_window,
            self.ensemble_horizon,
        )

    @property
    def is_vand(self) -> bool:
        return self.regulariser in VAND_FAMILY

    @property
    def uses_noise(self) -> bool:
        """VAND family: sigma * eps is added to the state."""
        return self.regulariser in ("vand", "vand_noise", "vand_fixed")

    @property
    def uses_dropout(self) -> bool:
        """VAND family: units drop their history to the prior mean with ratio rho."""
        return self.regulariser in ("vand", "vand_dropout", "vand_fixed")

    @property
    def learns_scales(self) -> bool:
        """VAND family: sigma and rho are trained (frozen for vand_fixed)."""
        return self.regulariser in ("vand", "vand_noise", "vand_dropout")

    @property
    def gates(self) -> int:
        """Gate blocks of the base cell: 3 for a GRU (r, z, n), 4 for an LSTM (i, f, g, o)."""
        return 3 if self.cell == "gru" else 4

    @property
    def u_size(self) -> int:
        """Width U of the uniform draws per layer: one per gate and unit for untied Gal masks, else H."""
        if self.regulariser == "gal" and self.gal_untied:
            return self.gates * self.hidden_size
        return self.hidden_size

    @property
    def uses_input_mask(self) -> bool:
        return self.regulariser == "gal" and self.gal_p_x > 0

    @property
    def supported_modes(self) -> tuple[str, ...]:
        return EXECUTION_MODES[self.regulariser][0]

    @property
    def default_mode(self) -> str:
        return self.execution_mode or EXECUTION_MODES[self.regulariser][1]

    # -- serialisation ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"version": CONFIG_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        if d.pop("version", None) != CONFIG_VERSION:
            raise VandError(
                f"training config version: expected {CONFIG_VERSION}, found {d.get('version')!r}; "
                "retrain with this version of vand_ros"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise VandError(f"training config: unknown fields {unknown}; expected only {sorted(known)}")
        return cls(**{**LEGACY_VALUES, **d})

    def smoke_version(self) -> TrainConfig:
        """A copy small enough to train in seconds (used by `--smoke` and the tests)."""
        return replace(
            self,
            smoke=True,
            hidden_size=min(self.hidden_size, 16),
            encoder_size=min(self.encoder_size, 16),
            seq_len=min(self.seq_len, 32),
            max_epochs=min(self.max_epochs, 3),
            patience=min(self.patience, 3),
        )
