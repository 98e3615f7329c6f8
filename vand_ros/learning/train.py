"""The training loop: truncated BPTT over whole episodes with carried state, Adam, clipping, early stopping.

Per epoch, training episodes are shuffled (seeded) into batches of `batch_size`, padded to the longest
episode of the batch, and walked in windows of `seq_len` steps; the state is carried from window to window
(detached), so the policy learns from states it reached itself, as it will run. The loss per window is

    NLL(y | h) + beta_t * mean_over_valid_B_T(R)        (R = 0 for none / nrnn / gal)

with beta_t ramping linearly from 0 over the first `beta_warmup` of the planned optimiser steps. The
validation loss (early stopping, best checkpoint) is the NLL on the validation episodes, run whole from a
zero state in `deterministic` execution mode (eps = 0, masks at their means): the same number for every
regulariser, and no sampling noise in the model selection. With `ema_decay` > 0 the policy validated, selected
and saved is the moving average of the weights (learning.averaging), not the optimiser's live weights.
A run directory holds:

    checkpoint.pt   the best policy (Checkpoint)        history.json   per-epoch numbers
    summary.json    the training summary, with the copycat diagnostic (learning.diagnostics)
    tb/             TensorBoard scalars
    losses.png, sigma_rho.png, open_loop.png, copycat.png                plots
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vand_ros.data.dataset import Dataset, Episode, NormStats
from vand_ros.errors import VandError
from vand_ros.learning.actions import (
    absolute_chunk_targets,
    changepoint_threshold,
    changepoint_weights,
    chunk_targets,
    command_changes,
    filter_joints,
    filtered_episodes,
    offset_scale,
    policy_stats,
    previous_offset_std,
    previous_targets,
    targets_seen_from,
)
from vand_ros.learning.averaging import WeightAverage
from vand_ros.learning.checkpoint import CHECKPOINT_NAME, Checkpoint
from vand_ros.learning.config import LR_FINAL, TrainConfig
from vand_ros.learning.diagnostics import copycat, teacher_forced_commands
from vand_ros.learning.distributed import Distributed
from vand_ros.learning.policy import DrawMaker, Policy

SMOKE_EPISODES = (4, 2)  # (train, val) episodes used by --smoke
SMOKE_STEPS = 96  # and the first steps of each


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    epochs: int
    best_epoch: int
    best_val_loss: float
    history: list[dict[str, Any]]


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise VandError(
            "--device cuda: expected a CUDA GPU, found none (torch "
            f"{torch.__version__}, cuda build: {torch.version.cuda is not None}); use --device cpu or "
            "install a CUDA build of torch on a machine with a GPU"
        )
    return torch.device(name)


def pad_batch(
    episodes: list[Episode], device: torch.device, length: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """Episodes -> obs (B, T, D), act (B, T, A) raw, valid (B, T) in {0, 1}, padded to the longest (or to
    `length`, when that is longer: every rank of a distributed job steps through the same windows)."""
    T = max(length, *(len(e) for e in episodes))
    B, D, A = len(episodes), episodes[0].obs.shape[1], episodes[0].act.shape[1]
    obs = np.zeros((B, T, D), np.float32)
    act = np.zeros((B, T, A), np.float32)
    valid = np.zeros((B, T), np.float32)
    for i, e in enumerate(episodes):
        obs[i, : len(e)], act[i, : len(e)], valid[i, : len(e)] = e.obs, e.act, 1.0
        obs[i, len(e) :] = e.obs[-1]  # padding repeats the last tick (finite; masked out of the loss)
        act[i, len(e) :] = e.act[-1]
    return (
        torch.from_numpy(obs).to(device),
        torch.from_numpy(act).to(device),
        torch.from_numpy(valid).to(device),
    )


def _masked_mean(x: Tensor, valid: Tensor) -> Tensor:
    return (x * valid).sum() / valid.sum().clamp(min=1.0)


def twist_noise_draws(policy: Policy, batch: int, steps: int, generator: torch.Generator) -> Tensor | None:
    """Standard normal draws (batch, steps, base axes) for the twist-input noise of a global batch, or None
    when cfg.base_twist_noise is off. Drawn on every rank, so all ranks use their rows of the same draws."""
    n = policy.base_obs.stop - policy.base_obs.start
    if policy.cfg.base_twist_noise <= 0 or n == 0:
        return None
    return torch.randn((batch, steps, n), generator=generator)


def perturb_twist(policy: Policy, obs: Tensor, draws: Tensor | None) -> Tensor:
    """The observations (b, T, D) with cfg.base_twist_noise normalisation stds of noise on the measured base
    twist. Only the input is perturbed: compute the targets (relative to the clean joints) before."""
    if draws is None:
        return obs
    out = obs.clone()
    out[..., policy.base_obs] += policy.cfg.base_twist_noise * policy.obs_std[policy.base_obs] * draws.to(obs)
    return out


def targets(
    policy: Policy, obs: Tensor, act: Tensor, valid: Tensor, previous: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Normalised training targets (B, T, K, A) in the policy's representation, and their valid (B, T, K);
    `previous`: the previous targets the network sees ("previous" representation; default demonstrated)."""
    target, target_valid = chunk_targets(obs, act, valid, policy.action, policy.joints, previous)
    return policy.normalise_act(target), target_valid


def feedback_targets(policy: Policy, absolute: Tensor, obs: Tensor, seen: Tensor) -> Tensor:
    """Normalised targets (B, T, K, A) of a rollout with feedback, from the absolute targets of its ticks
    (B, T, K, A) raw, their observations (B, T, D) and the previous targets it saw (B, T, J)."""
    return policy.normalise_act(targets_seen_from(absolute, obs, seen, policy.action, policy.joints))


def feedback_alpha(cfg: TrainConfig, step: int, planned_steps: int) -> float:
    """The fraction of its own previous command the policy sees at optimiser `step` (TrainConfig.feedback,
    ramped linearly from 0 over the first feedback_warmup of the planned steps)."""
    ramp = cfg.feedback_warmup * planned_steps
    return cfg.feedback * (min(1.0, step / ramp) if ramp > 0 else 1.0)


def perturb_joints(policy: Policy, obs: Tensor, draws: Tensor | None) -> Tensor:
    """The observations (b, T, D) with cfg.joint_noise [rad] x draws (b, T, J) N(0, 1) added to the measured
    joints (None = off). Compute the targets from the result: a relative target is then the way from the
    noisy measurement to the demonstrated command, as the node decodes it."""
    if draws is None:
        return obs
    out = obs.clone()
    out[..., policy.joints] += policy.cfg.joint_noise * draws.to(obs)
    return out


def perturb_previous(policy: Policy, previous: Tensor, draws: Tensor | None) -> Tensor:
    """The previous targets (b, T, J) with cfg.previous_noise lead stds of noise (draws (b, T, J) N(0, 1),
    None = off). Training takes the targets from the result too, so the policy learns to correct it."""
    if draws is None:
        return previous
    return previous + policy.cfg.previous_noise * policy.previous_std * draws.to(previous)


def shift_arm(policy: Policy, obs: Tensor, previous: Tensor, draws: Tensor | None) -> tuple[Tensor, Tensor]:
    """The measured joints of obs (b, T, D) and the previous targets (b, T, J) shifted together by
    cfg.previous_shift [rad] x draws (b, J) N(0, 1) per episode (None = off): a drifted arm. Training
    takes the targets from the shifted previous targets, i.e. the way back to the demonstration."""
    if draws is None:
        return obs, previous
    offset = policy.cfg.previous_shift * draws.to(obs)[:, None, :]  # (b, 1, J)
    obs = obs.clone()
    obs[..., policy.joints] += offset
    return obs, previous + offset


def evaluate(
    policy: Policy, episodes: list[Episode], mode: str = "deterministic", seed: int = 0, batch_size: int = 64
) -> dict[str, float]:
    """Teacher-forced NLL and MSE (normalised units, every chunk offset) over whole episodes from a zero
    state."""
    device = policy.head.weight.device
    drawer = DrawMaker(policy.cfg, policy.obs_dim, mode, seed)
    nll_sum = mse_sum = count = 0.0
    policy.eval()
    with torch.no_grad():
        for i in range(0, len(episodes), batch_size):
            obs, act, valid = pad_batch(episodes[i : i + batch_size], device)
            obs = filter_joints(obs, policy.action, policy.joints)[0]  # as the graph sees them
            B, T = valid.shape
            drawer.reset(B)
            previous = previous_targets(obs, act, policy.joints) if policy.action.feeds_previous else None
            window = drawer.window(B, T, device)
            if policy.cfg.feedback > 0:  # as trained: partly on its own previous commands
                assert previous is not None
                out, seen, _ = policy.rollout(
                    obs,
                    policy.init_state(B),
                    window,
                    previous,
                    None,
                    policy.cfg.feedback,
                    True,
                    policy.cfg.feedback_after,
                )
                absolute, target_valid = absolute_chunk_targets(act, valid, policy.action)
                target = feedback_targets(policy, absolute, obs, seen)
            else:
                out = policy(obs, policy.init_state(B), window, hard=True, previous=previous)
                target, target_valid = targets(policy, obs, act, valid)  # (B, T, K, A), (B, T, K)
            nll_sum += float((policy.nll(out.mean, target) * target_valid).sum())
            mse_sum += float((((out.mean - target) ** 2).mean(-1) * target_valid).sum())
            count += float(target_valid.sum())
    return {"nll": nll_sum / max(count, 1.0), "mse": mse_sum / max(count, 1.0)}


def lr_factor(schedule: str, step: int, planned_steps: int) -> float:
    """The learning rate at optimiser `step`, as a fraction of TrainConfig.lr (config.LR_SCHEDULES)."""
    if schedule == "constant":
        return 1.0
    progress = min(1.0, step / max(1, planned_steps))
    return LR_FINAL + (1.0 - LR_FINAL) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _scale_stats(values: Tensor, prefix: str) -> dict[str, float]:
    v = values.detach().cpu().double()
    return {
        f"{prefix}_mean": float(v.mean()),
        f"{prefix}_min": float(v.min()),
        f"{prefix}_max": float(v.max()),
        f"{prefix}_frac_gt_0_5": float((v > 0.5).double().mean()),
    }


def _smoke_dataset(ds: Dataset) -> tuple[list[Episode], list[Episode]]:
    def cut(eps: list[Episode], n: int) -> list[Episode]:
        return [Episode(e.obs[:SMOKE_STEPS], e.act[:SMOKE_STEPS], e.behaviour, e.source) for e in eps[:n]]

    return cut(ds.train, SMOKE_EPISODES[0]), cut(ds.val, SMOKE_EPISODES[1])


def _per_behaviour(episodes: list[Episode], limit: int) -> list[Episode]:
    """The first `limit` episodes of each behaviour, in the (already shuffled) split order."""
    count: dict[str, int] = {}
    kept = []
    for ep in episodes:
        count[ep.behaviour] = count.get(ep.behaviour, 0) + 1
        if count[ep.behaviour] <= limit:
            kept.append(ep)
    return kept


Validator = Callable[[Checkpoint], float]  # closed-loop score of a checkpoint (higher is better)


def _snapshot(policy: Policy, ds: Dataset, stats: NormStats) -> Checkpoint:
    return Checkpoint.from_policy(policy, ds.layout, ds.control_rate, stats, ds.summary)


class _Selector:
    """Which epoch's policy is kept as checkpoint.pt.

    Without a validator (or with `select_every` 0): the lowest validation loss. With one, as robomimic does
    (rollout success, not validation loss, picks the checkpoint): every `select_every` epochs and at the last
    epoch the validator scores the policy in closed loop, and the best score is kept (ties: the lower
    validation loss). Every score goes into the epoch's history record (`closed_loop_score`)."""

    def __init__(
        self, cfg: TrainConfig, validator: Validator | None, snapshot: Callable[[], Checkpoint]
    ) -> None:
        self.every = cfg.select_every
        self.validator = validator
        self.snapshot = snapshot
        self.best: tuple[float, float] = (-math.inf, -math.inf)  # (score, -val_loss)

    @property
    def by_rollout(self) -> bool:
        return self.every > 0

    def consider(self, epoch: int, record: dict[str, Any], last: bool) -> bool:
        """Whether this epoch's policy is the best so far (the caller saves it)."""
        if not self.by_rollout:
            key = (0.0, -record["val_loss"])
        elif epoch % self.every == 0 or last:
            assert self.validator is not None
            record["closed_loop_score"] = self.validator(self.snapshot())
            key = (record["closed_loop_score"], -record["val_loss"])
        else:
            return False
        if key > self.best:
            self.best = key
            return True
        return False


def train(
    ds: Dataset,
    cfg: TrainConfig,
    run_dir: str | Path,
    progress: bool = True,
    validator: Validator | None = None,
    dist: Distributed | None = None,
) -> TrainResult:
    """Train a policy on `ds` into `run_dir`; returns where the kept checkpoint is and how it did.

    `validator` (with cfg.select_every > 0) chooses the kept checkpoint by closed-loop score (_Selector);
    the evaluation layer provides one (vand_ros.evaluation.selection). `dist`: this process's rank in a
    data-parallel job (learning.distributed); rank 0 alone writes `run_dir`, and only its result holds
    the summary."""
    dist = dist or Distributed()
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    from vand_ros.learning import plots

    if cfg.select_every and validator is None:
        raise VandError(
            f"select_every={cfg.select_every} chooses the checkpoint by closed-loop runs, which need a "
            "validator: train through `vand-ros sweep` or `vand-ros evaluate` (they pass one), or set "
            "select_every=0"
        )
    if cfg.smoke:
        cfg = cfg.smoke_version()  # idempotent
    device = resolve_device(cfg.device)
    run_dir = Path(run_dir)
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    train_eps, val_eps = _smoke_dataset(ds) if cfg.smoke else (list(ds.train), list(ds.val))
    if cfg.train_episodes:
        train_eps = _per_behaviour(train_eps, cfg.train_episodes)
    if not train_eps:
        raise VandError("the dataset has no training episodes; record more demonstrations")
    val_source = "val"
    if not val_eps:
        val_eps, val_source = train_eps, "train (the dataset has no validation episodes)"

    torch.manual_seed(cfg.seed)
    joints = ds.layout.act_slices["joints"]
    seen_eps = filtered_episodes(train_eps, cfg.action_spec, joints)  # as the network sees them
    stats = policy_stats(ds.stats, seen_eps, cfg.action_spec, ds.layout)
    n_joints = len(ds.layout.joint_names)
    policy = Policy(cfg, ds.layout.obs_dim, ds.layout.act_dim, stats, n_joints, ds.layout.base_axes).to(
        device
    )
    if policy.action.feeds_previous:
        policy.previous_std.copy_(torch.from_numpy(previous_offset_std(seen_eps, policy.joints)))
    if cfg.chunk_normalisation == "per_offset":
        policy.offset_scale.copy_(torch.from_numpy(offset_scale(stats, seen_eps, cfg.action_spec, ds.layout)))
    changepoints = (
        changepoint_threshold(train_eps, ds.stats.act_std, cfg.changepoint_quantile)
        if cfg.changepoint_weight > 1
        else math.inf
    )
    act_std = torch.from_numpy(ds.stats.act_std).to(device)
    params = [p for p in policy.parameters() if p.requires_grad]
    average = WeightAverage(policy, cfg.ema_decay)  # average.policy is validated and kept
    kept = average.policy
    weight_decay = cfg.gal_weight_decay if cfg.regulariser == "gal" else 0.0
    optimiser = torch.optim.Adam(params, lr=cfg.lr, weight_decay=weight_decay)
    shuffle = torch.Generator().manual_seed(cfg.seed + 1)
    drawer = DrawMaker(cfg, ds.layout.obs_dim, "train", cfg.seed + 2)
    twist_noise = torch.Generator().manual_seed(cfg.seed + 3)  # used only when cfg.base_twist_noise > 0
    previous_noise = torch.Generator().manual_seed(cfg.seed + 4)  # only when previous_noise or _shift > 0
    joint_noise = torch.Generator().manual_seed(cfg.seed + 5)  # only when joint_noise > 0

    batches_per_epoch = math.ceil(len(train_eps) / cfg.batch_size)
    windows = sum(
        math.ceil(max(len(e) for e in train_eps[i : i + cfg.batch_size]) / cfg.seq_len)
        for i in range(0, len(train_eps), cfg.batch_size)
    )  # approximate (batches are reshuffled); used for the beta warm-up and the lr schedule
    planned_steps = max(1, cfg.max_epochs * windows)
    warmup_steps = cfg.beta_warmup * planned_steps

    writer = SummaryWriter(str(run_dir / "tb")) if dist.main else None
    if dist.main:
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1), encoding="utf-8")
    history: list[dict[str, Any]] = []
    best = (math.inf, -1)
    lowest, stale = math.inf, 0
    step = 0
    selector = _Selector(cfg, validator, lambda: _snapshot(kept, ds, stats))
    bar = tqdm(
        range(1, cfg.max_epochs + 1),
        desc=f"train {cfg.regulariser}/{cfg.cell}",
        disable=not progress or not dist.main,
    )
    try:
        for epoch in bar:
            t0 = time.perf_counter()
            policy.train()
            order = torch.randperm(len(train_eps), generator=shuffle).tolist()
            sums = {"nll": 0.0, "reg": 0.0, "loss": 0.0, "n": 0.0}
            for b in range(batches_per_epoch):
                batch = [train_eps[i] for i in order[b * cfg.batch_size : (b + 1) * cfg.batch_size]]
                B, T = len(batch), max(len(e) for e in batch)  # the global batch
                local = dist.shard(batch)
                twist_draws = twist_noise_draws(policy, B, T, twist_noise)  # (B, T, 3) or None
                previous_draws = (
                    torch.randn((B, T, n_joints), generator=previous_noise)
                    if cfg.previous_noise > 0
                    else None
                )  # drawn on every rank, like the twist's
                shift_draws = (
                    torch.randn((B, n_joints), generator=previous_noise) if cfg.previous_shift > 0 else None
                )
                joint_draws = (
                    torch.randn((B, T, n_joints), generator=joint_noise) if cfg.joint_noise > 0 else None
                )
                if local:
                    obs, act, valid = pad_batch(local, device, T)  # (b, T, D), (b, T, A), (b, T)
                    if joint_draws is not None:  # before the targets, which are relative to these joints
                        obs = perturb_joints(policy, obs, joint_draws[dist.rows(B)])
                    obs = filter_joints(obs, policy.action, policy.joints)[0]  # the graph's, if it filters
                    previous = None  # (b, T, J): the previous targets the network sees, if it sees them
                    if policy.action.feeds_previous:
                        previous = previous_targets(obs, act, policy.joints)
                        if previous_draws is not None:
                            previous = perturb_previous(policy, previous, previous_draws[dist.rows(B)])
                        if shift_draws is not None:
                            obs, previous = shift_arm(policy, obs, previous, shift_draws[dist.rows(B)])
                    # (b, T, K, A), (b, T, K): from the (perturbed) previous targets the network sees
                    target, target_valid = targets(policy, obs, act, valid, previous)
                    rows = twist_draws[dist.rows(B)] if twist_draws is not None else None
                    obs = perturb_twist(policy, obs, rows)  # after the targets
                    # Loss weights: 1, or changepoint_weight near the demonstrated command's changepoints.
                    weight = changepoint_weights(
                        command_changes(act, valid, act_std), changepoints, cfg.changepoint_weight
                    )
                    target_valid = target_valid * weight[..., None]  # (b, T, K)
                    state = policy.init_state(len(local))
                    carried = None  # with feedback: its own last joint command (b, J), across windows
                    if cfg.feedback > 0:  # the targets are taken from what it sees, window by window
                        absolute = absolute_chunk_targets(act, valid, policy.action)[0]  # (b, T, K, A)
                drawer.reset(B)  # draws for the global batch, so every rank uses its rows of the same draws
                for start in range(0, T, cfg.seq_len):
                    sl = slice(start, start + cfg.seq_len)
                    # The global batch's masked means, as local sums over global counts.
                    sums_local = torch.zeros(4, dtype=torch.float64)  # nll, reg, nll count, reg count
                    if local:
                        v = valid[:, sl]  # (b, W)
                        sums_local[2], sums_local[3] = float(target_valid[:, sl].sum()), float(v.sum())
                    counts = dist.sum(sums_local[2:].clone())
                    if float(counts[1]) == 0:
                        break
                    draws = drawer.window(B, min(cfg.seq_len, T - start), device)
                    beta = cfg.beta * (min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0)
                    for group in optimiser.param_groups:
                        group["lr"] = cfg.lr * lr_factor(cfg.lr_schedule, step, planned_steps)
                    optimiser.zero_grad(set_to_none=True)
                    if local:
                        if cfg.feedback > 0:
                            assert previous is not None
                            alpha = feedback_alpha(cfg, step, planned_steps)
                            out, seen, carried = policy.rollout(
                                obs[:, sl], state, draws.rows(dist.rows(B)), previous[:, sl],
                                None if cfg.feedback_after else carried, alpha, False, cfg.feedback_after,
                            )  # fmt: skip
                            carried = carried.detach()
                            window_target = feedback_targets(policy, absolute[:, sl], obs[:, sl], seen)
                        else:
                            out = policy(
                                obs[:, sl],
                                state,
                                draws.rows(dist.rows(B)),
                                hard=False,
                                previous=None if previous is None else previous[:, sl],
                            )
                            window_target = target[:, sl]
                        nll_terms = policy.nll(out.mean, window_target) * target_valid[:, sl]
                        reg_terms = out.reg * v
                        nll = nll_terms.sum() / counts[0].clamp(min=1.0).item()
                        reg = reg_terms.sum() / counts[1].clamp(min=1.0).item()
                        loss = nll + beta * reg
                        loss.backward()  # type: ignore[no-untyped-call]
                        state = tuple(s.detach() for s in out.state)
                        sums_local[0], sums_local[1] = float(nll.detach()), float(reg.detach())
                    dist.sum_gradients(params)
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                    optimiser.step()
                    average.update(policy)
                    step += 1
                    nll_w, reg_w = (float(x) for x in dist.sum(sums_local[:2].clone()))
                    n = float(counts[1])
                    sums["nll"] += nll_w * n
                    sums["reg"] += reg_w * n
                    sums["loss"] += (nll_w + beta * reg_w) * n
                    sums["n"] += n
            val = evaluate(kept, val_eps, seed=cfg.seed)
            with torch.no_grad():
                record: dict[str, Any] = {
                    "epoch": epoch,
                    "train_nll": sums["nll"] / sums["n"],
                    "train_reg": sums["reg"] / sums["n"],
                    "train_loss": sums["loss"] / sums["n"],
                    "val_loss": val["nll"],
                    "val_mse": val["mse"],
                    "beta": cfg.beta * (min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0),
                    "steps": step,
                    "lr": optimiser.param_groups[0]["lr"],
                    "seconds": time.perf_counter() - t0,
                    **_scale_stats(kept.sigma(), "sigma"),
                    **_scale_stats(kept.rho(), "rho"),
                }
            if not all(math.isfinite(x) for x in (record["train_loss"], record["val_loss"])):
                raise VandError(
                    f"training diverged at epoch {epoch} (train loss {record['train_loss']}, val loss "
                    f"{record['val_loss']}); lower --lr or beta, or check the dataset for bad values"
                )
            history.append(record)
            for key, value in record.items():
                if key != "epoch" and writer is not None:
                    writer.add_scalar(key, value, epoch)
            bar.set_postfix(train=f"{record['train_nll']:.3f}", val=f"{record['val_loss']:.3f}")
            stale = stale + 1 if record["val_loss"] >= lowest else 0
            lowest = min(lowest, record["val_loss"])
            last = stale >= cfg.patience or epoch == cfg.max_epochs
            if dist.main and selector.consider(epoch, record, last):
                best = (record["val_loss"], epoch)
                Checkpoint.from_policy(
                    kept,
                    ds.layout,
                    ds.control_rate,
                    stats,
                    ds.summary,
                    training={
                        "epochs": epoch,
                        "best_epoch": epoch,
                        "best_val_loss": record["val_loss"],
                        "val_source": val_source,
                    },
                ).save(run_dir / CHECKPOINT_NAME)
            if last:
                break
    finally:
        if writer is not None:
            writer.close()
        bar.close()
    if not dist.main:
        return TrainResult(run_dir, run_dir / CHECKPOINT_NAME, len(history), best[1], best[0], history)

    # The best checkpoint gets the final summary, the copycat diagnostic and the whole history.
    ckpt = Checkpoint.load(run_dir / CHECKPOINT_NAME)
    best_policy = ckpt.build_policy().to(device)
    diag = copycat(best_policy, val_eps, list(ds.layout.joint_names))
    with SummaryWriter(str(run_dir / "tb")) as diag_writer:
        for key, joints in diag.items():
            for joint, values in joints.items():
                diag_writer.add_scalar(f"copycat_gain/{key}/{joint}", values["gain"], best[1])
    ckpt.training.update(
        epochs=len(history),
        best_epoch=best[1],
        best_val_loss=best[0],
        best_val_mse=history[best[1] - 1]["val_mse"],
        val_source=val_source,
        train_episodes=len(train_eps),
        val_episodes=len(val_eps),
        optimiser_steps=step,
        changepoint_threshold=None if math.isinf(changepoints) else changepoints,
        device=str(device),
        copycat=diag,
        selection="closed-loop score" if selector.by_rollout else "validation loss",
        best_closed_loop_score=history[best[1] - 1].get("closed_loop_score"),
    )
    ckpt.history = history
    ckpt.save(run_dir / CHECKPOINT_NAME)
    (run_dir / "history.json").write_text(json.dumps(history, indent=1), encoding="utf-8")
    (run_dir / "summary.json").write_text(
        json.dumps({"regulariser": cfg.regulariser, "cell": cfg.cell, **ckpt.training}, indent=1),
        encoding="utf-8",
    )
    shown = val_eps[0]
    plots.copycat(diag, run_dir / "copycat.png")
    plots.losses(history, run_dir / "losses.png")
    plots.sigma_rho(history, run_dir / "sigma_rho.png")
    plots.open_loop(
        shown.act,
        teacher_forced_commands(best_policy, shown, cfg.default_mode, cfg.seed),
        ds.layout.act_names,
        ds.control_rate,
        f"{cfg.regulariser}/{cfg.cell}, {cfg.default_mode} mode, {shown.source}",
        run_dir / "open_loop.png",
    )
    return TrainResult(run_dir, run_dir / CHECKPOINT_NAME, len(history), best[1], best[0], history)
