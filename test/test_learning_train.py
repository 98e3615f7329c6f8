"""Training: the CLI end to end (--smoke), determinism, checkpoints, plots, logs, early stopping, devices."""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vand_ros.cli import main
from vand_ros.data.dataset import Dataset, Episode
from vand_ros.errors import VandError
from vand_ros.learning.checkpoint import Checkpoint
from vand_ros.learning.config import TrainConfig
from vand_ros.learning.synthetic import synthetic_dataset
from vand_ros.learning.train import evaluate, train
from vand_ros.runtime.layout import default_layout

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def periodic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_dataset("periodic", n=5, steps=120).save(tmp_path_factory.mktemp("ds") / "periodic")


def _run(*argv: str) -> int:
    return main(list(argv))


@pytest.mark.parametrize("reg", ["vand", "none"])
def test_smoke_train_then_export_from_the_cli(
    reg: str, periodic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    assert (
        _run("train", str(periodic), "--regulariser", reg, "--out", str(run_dir), "--smoke", "--quiet") == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["regulariser"] == reg and np.isfinite(summary["best_val_loss"])
    for name in (
        "checkpoint.pt",
        "history.json",
        "summary.json",
        "config.json",
        "losses.png",
        "sigma_rho.png",
        "open_loop.png",
        "copycat.png",
    ):
        assert (run_dir / name).stat().st_size > 0, name
    copycat = json.loads((run_dir / "summary.json").read_text())["copycat"]
    joints = Dataset.load(periodic).layout.joint_names
    assert set(copycat["all"]) == set(joints)
    assert {"policy_mse", "copy_mse", "previous_mse", "gain"} == set(copycat["all"][joints[-1]])
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history) == 3 and {"sigma_mean", "rho_max", "rho_frac_gt_0_5", "val_loss"} <= set(history[0])
    ckpt = Checkpoint.load(run_dir)
    assert ckpt.config.smoke and ckpt.config.regulariser == reg
    assert ckpt.training["best_val_loss"] == summary["best_val_loss"] and ckpt.history == history
    assert _run("export", str(run_dir), "--out", str(tmp_path / "p.onnx")) == 0
    assert (tmp_path / "p.onnx").stat().st_size > 0


def test_same_seed_same_result_on_cpu(periodic: Path, tmp_path: Path) -> None:
    ds = Dataset.load(periodic)
    cfg = TrainConfig(regulariser="vand", smoke=True, seed=3)
    a = train(ds, cfg, tmp_path / "a", progress=False)
    b = train(ds, cfg, tmp_path / "b", progress=False)
    c = train(ds, TrainConfig(regulariser="vand", smoke=True, seed=4), tmp_path / "c", progress=False)
    sa, sb, sc = (Checkpoint.load(r.checkpoint).state_dict for r in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.best_val_loss == b.best_val_loss
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_checkpoint_round_trip_is_exact(periodic: Path, tmp_path: Path) -> None:
    ds = Dataset.load(periodic)
    result = train(
        ds, TrainConfig(regulariser="gal", cell="lstm", num_layers=2, smoke=True), tmp_path, progress=False
    )
    ckpt = Checkpoint.load(result.checkpoint)
    ckpt.save(tmp_path / "again.pt")
    again = Checkpoint.load(tmp_path / "again.pt")
    assert (
        again.config
        == ckpt.config
        == TrainConfig.from_dict(json.loads((tmp_path / "config.json").read_text()))
    )
    assert again.layout == ds.layout and again.control_rate == ds.control_rate
    assert again.dataset_summary == ds.summary and again.training == ckpt.training
    for k in ("obs_mean", "obs_std", "act_mean", "act_std"):
        np.testing.assert_allclose(getattr(again.stats, k), getattr(ckpt.stats, k), rtol=0, atol=0)
        assert getattr(again.stats, k).dtype == np.float32
    for k in ("obs_mean", "obs_std"):  # the actions' are those of the relative targets (learning.actions)
        np.testing.assert_array_equal(getattr(again.stats, k), getattr(ds.stats, k))
    assert again.state_dict.keys() == ckpt.state_dict.keys()
    for k, v in ckpt.state_dict.items():
        torch.testing.assert_close(again.state_dict[k], v, rtol=0, atol=0)
    # the rebuilt policy predicts exactly what the trained one did
    p1, p2 = ckpt.build_policy(), again.build_policy()
    assert evaluate(p1, ds.val) == evaluate(p2, ds.val)


def test_training_learns_a_periodic_task(periodic: Path, tmp_path: Path) -> None:
    """A short real run: the validation NLL falls well below its start, for VAND and the plain GRU. (The
    synthetic base command is the next value of the observed twist, so the model sees the twist here.)"""
    ds = Dataset.load(periodic)
    for reg in ("vand", "none"):
        cfg = TrainConfig(
            regulariser=reg,
            hidden_size=16,
            encoder_size=16,
            seq_len=40,
            batch_size=4,
            max_epochs=12,
            lr=5e-3,
            base_twist_input="measured",
        )
        result = train(ds, cfg, tmp_path / reg, progress=False)
        first = result.history[0]["val_loss"]
        assert result.best_val_loss < first - 0.5, (reg, first, result.best_val_loss)
        assert result.history[-1]["val_mse"] < 0.2, reg


def test_early_stopping_and_beta_warmup(periodic: Path, tmp_path: Path) -> None:
    ds = Dataset.load(periodic)
    cfg = TrainConfig(hidden_size=8, encoder_size=8, max_epochs=40, patience=2, lr=0.3, beta_warmup=0.5)
    result = train(ds, cfg, tmp_path, progress=False)
    assert result.epochs < 40  # a learning rate of 0.3 soon stops improving the validation loss
    assert result.epochs == result.best_epoch + cfg.patience
    assert Checkpoint.load(result.checkpoint).training["best_epoch"] == result.best_epoch
    assert result.history[0]["beta"] < cfg.beta


def test_the_cosine_schedule_decays_the_learning_rate_to_its_floor(periodic: Path, tmp_path: Path) -> None:
    """lr_schedule="cosine" lowers the learning rate over the planned steps to LR_FINAL * lr (and no
    further); "constant" keeps it, so a constant run is the one trained before the field existed."""
    from vand_ros.learning.config import LR_FINAL
    from vand_ros.learning.train import lr_factor

    assert [lr_factor("constant", s, 100) for s in (0, 50, 100, 500)] == [1.0] * 4
    cosine = [lr_factor("cosine", s, 100) for s in range(0, 130, 10)]
    assert cosine[0] == 1.0 and cosine[5] == pytest.approx((1 + LR_FINAL) / 2)
    assert all(a > b for a, b in itertools.pairwise(cosine[:11]))  # decreasing to the plan's end
    assert cosine[10:] == [pytest.approx(LR_FINAL)] * 3  # then held at the floor

    ds = Dataset.load(periodic)
    cfg = TrainConfig(hidden_size=8, encoder_size=8, max_epochs=6, patience=10, lr=5e-3)
    constant = train(ds, cfg, tmp_path / "constant", progress=False)
    cosine_run = train(ds, replace(cfg, lr_schedule="cosine"), tmp_path / "cosine", progress=False)
    assert [r["lr"] for r in constant.history] == [5e-3] * 6
    lrs = [r["lr"] for r in cosine_run.history]
    assert all(a > b for a, b in itertools.pairwise(lrs)), lrs
    assert lrs[-1] < 0.1 * 5e-3  # the last epoch's steps ran near the floor
    assert cosine_run.history[-1]["val_loss"] != constant.history[-1]["val_loss"]
    with pytest.raises(VandError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")


def test_the_weight_average_is_validated_and_kept_without_changing_the_training(
    periodic: Path, tmp_path: Path
) -> None:
    """ema_decay > 0: the optimiser's trajectory is the same as without it (same training losses), but the
    validation loss, the selection and the checkpoint are those of the averaged weights."""
    from vand_ros.learning.averaging import WeightAverage

    ds = Dataset.load(periodic)
    cfg = TrainConfig(hidden_size=8, encoder_size=8, max_epochs=5, patience=10, lr=2e-2, ema_decay=0.0)
    plain = train(ds, cfg, tmp_path / "plain", progress=False)
    averaged = train(ds, replace(cfg, ema_decay=0.9), tmp_path / "ema", progress=False)
    assert [r["train_nll"] for r in averaged.history] == [r["train_nll"] for r in plain.history]
    assert [r["val_loss"] for r in averaged.history] != [r["val_loss"] for r in plain.history]
    kept = Checkpoint.load(averaged.checkpoint)
    assert kept.config.ema_decay == 0.9
    assert evaluate(kept.build_policy(), list(ds.val))["nll"] == pytest.approx(
        averaged.best_val_loss, rel=1e-5
    )

    # The average itself: warm-up decay, then an exponential average of the live weights; 0 = the live policy.
    live = Checkpoint.load(plain.checkpoint).build_policy()
    assert WeightAverage(live, 0.0).policy is live
    average = WeightAverage(live, 0.5)
    first = [p.detach().clone() for p in average.policy.parameters()]
    with torch.no_grad():
        for p in live.parameters():
            p.add_(1.0)
    average.update(live)  # rate min(0.5, 1 / 10) = 0.1: 90 % of the new weights
    for a, p0 in zip(average.policy.parameters(), first, strict=True):
        assert torch.allclose(a, p0 + 0.9)
    assert average.rate() == pytest.approx(2 / 11)  # warming up towards the decay
    average.updates = 1000
    assert average.rate() == 0.5
    with pytest.raises(VandError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)
    assert TrainConfig().ema_decay == 0.998  # the default since round 14 (docs/learnability.md)


def test_cuda_is_honoured_or_refused_clearly(periodic: Path, tmp_path: Path) -> None:
    ds = Dataset.load(periodic)
    cfg = TrainConfig(smoke=True, device="cuda")
    if torch.cuda.is_available():
        result = train(ds, cfg, tmp_path, progress=False)
        assert Checkpoint.load(result.checkpoint).training["device"].startswith("cuda")
    else:
        with pytest.raises(VandError, match="--device cuda"):
            train(ds, cfg, tmp_path, progress=False)
        assert _run("train", str(periodic), "--out", str(tmp_path / "r"), "--device", "cuda", "--smoke") == 1


def test_default_layout_and_no_validation_split(tmp_path: Path) -> None:
    ds = synthetic_dataset("sequential", layout=default_layout(), n=1, steps=60)
    assert not ds.val  # one episode per behaviour: nothing to hold out
    result = train(ds, TrainConfig(smoke=True, regulariser="vand_dropout"), tmp_path, progress=False)
    assert Checkpoint.load(result.checkpoint).training["val_source"].startswith("train")


def test_bad_inputs_are_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("train", str(tmp_path / "nothing"), "--out", str(tmp_path / "r"), "--smoke") == 1
    assert "not a dataset" in capsys.readouterr().err
    assert _run("export", str(tmp_path), "--out", str(tmp_path / "p.onnx")) == 1
    assert "no checkpoint" in capsys.readouterr().err
    assert _run("train", str(tmp_path), "--out", str(tmp_path / "r"), "--set", "beta=x") == 1


def test_closed_loop_selection_keeps_the_best_scored_epoch_not_the_lowest_loss(
    periodic: Path, tmp_path: Path
) -> None:
    """A validator (here a fixed score per call, standing in for closed-loop runs) picks the checkpoint."""
    scores = iter([0.2, 0.9, 0.1, 0.5, 0.3])
    seen: list[int] = []

    def validator(ckpt: Checkpoint) -> float:
        seen.append(len(seen))
        assert ckpt.layout == Dataset.load(periodic).layout
        return next(scores)

    cfg = TrainConfig(
        regulariser="none", hidden_size=8, encoder_size=8, max_epochs=10, select_every=2, seed=3
    )
    result = train(Dataset.load(periodic), cfg, tmp_path / "run", progress=False, validator=validator)
    assert len(seen) == 5  # epochs 2, 4, 6, 8 and 10 (the last)
    assert result.best_epoch == 4  # the 0.9
    assert [h.get("closed_loop_score") for h in result.history][1::2] == [0.2, 0.9, 0.1, 0.5, 0.3]
    ckpt = Checkpoint.load(tmp_path / "run")
    assert (
        ckpt.training["selection"] == "closed-loop score" and ckpt.training["best_closed_loop_score"] == 0.9
    )
    assert ckpt.training["best_epoch"] == 4
    by_loss = train(Dataset.load(periodic), replace(cfg, select_every=0), tmp_path / "p", progress=False)
    losses = [h["val_loss"] for h in by_loss.history]
    assert by_loss.best_epoch == 1 + losses.index(min(losses))
    assert Checkpoint.load(tmp_path / "p").training["selection"] == "validation loss"
    with pytest.raises(VandError, match="need a validator"):
        train(Dataset.load(periodic), cfg, tmp_path / "v", progress=False)


def test_execution_fields_change_at_export_without_retraining(periodic: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert (
        _run("train", str(periodic), "--out", str(run_dir), "--smoke", "--quiet", "--set", "action_chunk=3")
        == 0
    )
    out = tmp_path / "p.onnx"
    argv = ["export", str(run_dir), "--out", str(out), "--execution", "ensemble", "--base-deadband", "0.05"]
    assert _run(*argv, "--ensemble-window", "hann", "--ensemble-horizon", "2") == 0
    from vand_ros.runtime.policy import PolicyRuntime

    card = PolicyRuntime(out).card
    assert (card.action.chunk, card.action.execution, card.action.base_deadband) == (3, "ensemble", 0.05)
    assert (card.action.ensemble_window, card.action.ensemble_horizon) == ("hann", 2)
    assert ("chunk", "chunk_out") in card.state
    with pytest.raises(VandError, match="can change after training"):
        Checkpoint.load(run_dir).with_execution(hidden_size=8)


def test_a_config_written_before_the_action_fields_loads_as_it_was_trained() -> None:
    """A checkpoint of absolute targets must not be decoded as relative ones after the default changed."""
    old = TrainConfig().to_dict()
    for key in ("action_representation", "action_chunk", "chunk_execution", "ensemble_decay"):
        old.pop(key)
    for key in ("base_deadband", "base_deadband_angular", "select_every", "train_episodes"):
        old.pop(key)
    for key in ("base_twist_input", "base_twist_noise", "previous_noise", "previous_shift"):
        old.pop(key)
    for key in ("ema_decay", "joint_noise"):
        old.pop(key)
    cfg = TrainConfig.from_dict(old)
    assert cfg.action_representation == "absolute" and not cfg.action_spec.has_deadband
    assert cfg.base_twist_input == "measured"  # the models before it saw the twist
    assert cfg.ema_decay == 0.0  # and kept their live weights
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()  # today's configs round-trip


def test_joint_noise_perturbs_the_measured_joints_and_the_relative_targets_absorb_it(
    periodic: Path, tmp_path: Path
) -> None:
    """`joint_noise`: noise on the joint columns of the training input only, and a relative target is taken
    from the noisy joints, so the policy is taught the command minus the noise it measured."""
    from vand_ros.learning.policy import Policy
    from vand_ros.learning.train import perturb_joints, targets

    ds = Dataset.load(periodic)
    layout = ds.layout
    J = len(layout.joint_names)
    cfg = TrainConfig(regulariser="none", smoke=True, joint_noise=0.01)
    policy = Policy(cfg, layout.obs_dim, layout.act_dim, ds.stats, J, layout.base_axes)
    obs = torch.from_numpy(ds.episodes[0].obs[:20][None]).float()  # (1, 20, D)
    act = torch.from_numpy(ds.episodes[0].act[:20][None]).float()
    valid = torch.ones(1, 20)
    draws = torch.randn(1, 20, J, generator=torch.Generator().manual_seed(0))
    noisy = perturb_joints(policy, obs, draws)
    torch.testing.assert_close(noisy[..., :J] - obs[..., :J], 0.01 * draws)
    assert torch.equal(noisy[..., J:], obs[..., J:])  # base twist, features, instruction untouched
    assert perturb_joints(policy, obs, None) is obs
    clean_target, _ = targets(policy, obs, act, valid)
    noisy_target, _ = targets(policy, noisy, act, valid)
    raw = (clean_target - noisy_target)[:, :, 0, :J] * policy.act_std[:J]  # denormalised difference
    torch.testing.assert_close(raw, 0.01 * draws, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(noisy_target[..., J:], clean_target[..., J:])  # the base commands are not

    plain = train(ds, replace(cfg, joint_noise=0.0), tmp_path / "plain", progress=False)
    noised = train(ds, cfg, tmp_path / "noised", progress=False)
    assert noised.history[0]["train_nll"] != plain.history[0]["train_nll"]
    assert Checkpoint.load(noised.checkpoint).config.joint_noise == 0.01
    with pytest.raises(VandError, match="joint_noise"):
        TrainConfig(joint_noise=-0.01)


def test_changepoint_weighting_changes_the_loss_and_is_recorded(periodic: Path, tmp_path: Path) -> None:
    ds = Dataset.load(periodic)
    plain = train(ds, TrainConfig(regulariser="none", smoke=True), tmp_path / "plain", progress=False)
    cfg = TrainConfig(regulariser="none", smoke=True, changepoint_weight=5.0)
    weighted = train(ds, cfg, tmp_path / "weighted", progress=False)
    assert weighted.history[0]["train_loss"] != plain.history[0]["train_loss"]
    threshold = Checkpoint.load(weighted.checkpoint).training["changepoint_threshold"]
    assert threshold is not None and threshold > 0
    assert Checkpoint.load(plain.checkpoint).training["changepoint_threshold"] is None
    with pytest.raises(VandError, match="changepoint_weight"):
        TrainConfig(changepoint_weight=0.5)


def test_the_base_twist_can_be_left_out_of_the_input_or_noised_in_training(
    periodic: Path, tmp_path: Path
) -> None:
    """`base_twist_input="none"` makes the commands independent of the measured twist; `base_twist_noise`
    perturbs only the twist columns of the training input, never the targets."""
    from vand_ros.learning.policy import DrawMaker, Policy
    from vand_ros.learning.train import perturb_twist, twist_noise_draws

    ds = Dataset.load(periodic)
    layout = ds.layout
    base = layout.obs_slices["base"]
    assert base.stop > base.start
    obs = torch.from_numpy(ds.episodes[0].obs[:20][None]).float()  # (1, 20, D)
    moved = obs.clone()
    moved[..., base] += 0.3

    def build(cfg: TrainConfig) -> Policy:
        torch.manual_seed(0)
        joints = len(layout.joint_names)
        return Policy(cfg, layout.obs_dim, layout.act_dim, ds.stats, joints, layout.base_axes)

    def commands(cfg: TrainConfig, x: torch.Tensor) -> torch.Tensor:
        policy = build(cfg)
        draws = DrawMaker(cfg, layout.obs_dim, "train", 0).window(1, x.shape[1], "cpu")
        return policy(x, policy.init_state(1), draws, hard=True).mean

    blind = TrainConfig(regulariser="none")
    assert blind.base_twist_input == "none"  # the default since round 9
    seeing = TrainConfig(regulariser="none", base_twist_input="measured")
    assert torch.equal(commands(blind, obs), commands(blind, moved))
    assert not torch.allclose(commands(seeing, obs), commands(seeing, moved))

    noisy = build(TrainConfig(regulariser="none", base_twist_input="measured", base_twist_noise=0.5))
    draws = twist_noise_draws(noisy, 1, 20, torch.Generator().manual_seed(0))
    assert draws is not None and draws.shape == (1, 20, base.stop - base.start)
    out = perturb_twist(noisy, obs, draws)
    outside = torch.ones(obs.shape[-1], dtype=torch.bool)
    outside[base] = False
    assert torch.equal(out[..., outside], obs[..., outside])
    expected = 0.5 * torch.from_numpy(ds.stats.obs_std[base]) * draws
    assert torch.allclose(out[..., base] - obs[..., base], expected)
    assert twist_noise_draws(build(seeing), 1, 20, torch.Generator()) is None

    seeing_smoke = TrainConfig(regulariser="none", smoke=True, base_twist_input="measured")
    plain = train(ds, seeing_smoke, tmp_path / "plain", progress=False)
    cfg = TrainConfig(regulariser="none", smoke=True, base_twist_input="measured", base_twist_noise=0.5)
    noised = train(ds, cfg, tmp_path / "noised", progress=False)
    assert noised.history[0]["train_loss"] != plain.history[0]["train_loss"]
    assert Checkpoint.load(noised.checkpoint).config.base_twist_noise == 0.5
    with pytest.raises(VandError, match="base_twist_input"):
        TrainConfig(base_twist_input="odom")
    with pytest.raises(VandError, match="base_twist_noise"):
        TrainConfig(base_twist_input="measured", base_twist_noise=-1.0)
    with pytest.raises(VandError, match="base_twist_noise"):
        TrainConfig(base_twist_noise=0.5)  # the default leaves the twist out: nothing to noise


def test_a_previous_policy_trains_with_its_lead_scale_and_noise_it_learns_to_correct(
    periodic: Path, tmp_path: Path
) -> None:
    """The "previous" representation: the trained checkpoint carries the scale of the previous targets'
    lead over the measured joints; `previous_noise` perturbs the previous targets the network sees and
    takes the training targets from the perturbed ones (so a target is the way back to the demonstration)."""
    from vand_ros.learning.actions import previous_offset_std, previous_targets
    from vand_ros.learning.policy import Policy
    from vand_ros.learning.train import perturb_previous, shift_arm, targets

    ds = Dataset.load(periodic)
    layout = ds.layout
    J = len(layout.joint_names)
    cfg = TrainConfig(regulariser="none", smoke=True, action_representation="previous")
    plain = train(ds, cfg, tmp_path / "plain", progress=False)
    policy = Checkpoint.load(plain.checkpoint).build_policy()
    assert not torch.equal(policy.previous_std, torch.ones(J))  # set from the data, saved and loaded
    smoke_eps = [Episode(e.obs[:96], e.act[:96], e.behaviour, e.source) for e in ds.train[:4]]  # --smoke's
    np.testing.assert_allclose(
        policy.previous_std.numpy(), previous_offset_std(smoke_eps, policy.joints), rtol=1e-6
    )

    noisy_cfg = TrainConfig(
        regulariser="none", smoke=True, action_representation="previous", previous_noise=0.5
    )
    noised = train(ds, noisy_cfg, tmp_path / "noised", progress=False)
    assert noised.history[0]["train_loss"] != plain.history[0]["train_loss"]
    torch.manual_seed(0)
    model = Policy(noisy_cfg, layout.obs_dim, layout.act_dim, ds.stats, J, layout.base_axes)
    obs = torch.from_numpy(ds.episodes[0].obs[:20][None]).float()
    act = torch.from_numpy(ds.episodes[0].act[:20][None]).float()
    previous = previous_targets(obs, act, model.joints)
    draws = torch.randn(1, 20, J, generator=torch.Generator().manual_seed(0))
    moved = perturb_previous(model, previous, draws)
    torch.testing.assert_close(moved - previous, 0.5 * model.previous_std * draws)
    clean_t, _ = targets(model, obs, act, torch.ones(1, 20), previous)
    moved_t, _ = targets(model, obs, act, torch.ones(1, 20), moved)
    shift = (clean_t - moved_t)[..., 0, :J] * model.act_std[:J]  # de-normalised: the way back
    torch.testing.assert_close(shift, moved - previous)
    assert perturb_previous(model, previous, None) is previous

    shift_cfg = TrainConfig(regulariser="none", action_representation="previous", previous_shift=0.1)
    shifter = Policy(shift_cfg, layout.obs_dim, layout.act_dim, ds.stats, J, layout.base_axes)
    offsets = torch.randn(1, J, generator=torch.Generator().manual_seed(1))
    shifted_obs, shifted = shift_arm(shifter, obs, previous, offsets)
    torch.testing.assert_close(shifted_obs[..., :J] - obs[..., :J], 0.1 * offsets.expand(20, J)[None])
    assert torch.equal(shifted_obs[..., J:], obs[..., J:])  # only the arm moved
    torch.testing.assert_close(shifted - previous, 0.1 * offsets.expand(20, J)[None])
    back, _ = targets(shifter, shifted_obs, act, torch.ones(1, 20), shifted)
    plain_t, _ = targets(shifter, obs, act, torch.ones(1, 20), previous)
    torch.testing.assert_close(  # the targets lead back to the demonstrated commands
        (plain_t - back)[..., 0, :J] * shifter.act_std[:J], 0.1 * offsets.expand(20, J)[None]
    )
    assert shift_arm(shifter, obs, previous, None) == (obs, previous)
    shift_smoke = TrainConfig(
        regulariser="none", smoke=True, action_representation="previous", previous_shift=0.1
    )
    shifted_run = train(ds, shift_smoke, tmp_path / "shifted", progress=False)
    assert shifted_run.history[0]["train_loss"] != plain.history[0]["train_loss"]
    with pytest.raises(VandError, match="previous_noise"):
        TrainConfig(previous_noise=0.5)  # relative targets: no previous targets to perturb
    with pytest.raises(VandError, match="previous_noise"):
        TrainConfig(action_representation="previous", previous_noise=-0.1)
    with pytest.raises(VandError, match="previous_shift"):
        TrainConfig(previous_shift=0.1)


def test_feedback_trains_on_its_own_commands_and_validates_free_running(
    periodic: Path, tmp_path: Path
) -> None:
    """TrainConfig.feedback: the fraction of its own previous command the network sees ramps from 0 to
    `feedback`; the validation loss is then that of a free-running rollout, and the config is kept."""
    from vand_ros.learning.train import evaluate, feedback_alpha

    ds = Dataset.load(periodic)
    base = {
        "regulariser": "none",
        "smoke": True,
        "action_representation": "absolute",
        "joint_input": "command",
    }
    forced = train(ds, TrainConfig(**base), tmp_path / "forced", progress=False)  # type: ignore[arg-type]
    cfg = TrainConfig(**base, feedback=1.0, feedback_warmup=0.5)  # type: ignore[arg-type]
    fed = train(ds, cfg, tmp_path / "fed", progress=False)
    assert fed.history[0]["train_loss"] != forced.history[0]["train_loss"]
    policy = Checkpoint.load(fed.checkpoint).build_policy()
    assert policy.cfg.feedback == 1.0 and policy.action.joint_input == "command"
    val = [Episode(e.obs[:96], e.act[:96], e.behaviour, e.source) for e in ds.val[:2]]  # --smoke's
    assert evaluate(policy, val)["nll"] == pytest.approx(fed.history[-1]["val_loss"], rel=1e-5)
    teacher = Checkpoint.load(fed.checkpoint).build_policy()
    teacher.cfg = dataclasses.replace(policy.cfg, feedback=0.0)  # the same weights, teacher forced
    assert evaluate(teacher, val)["nll"] != pytest.approx(fed.history[-1]["val_loss"], rel=1e-3)
    assert [feedback_alpha(cfg, s, 100) for s in (0, 25, 50, 80)] == [0.0, 0.5, 1.0, 1.0]
    # feedback_after: every window restarts from the demonstrated commands, and validation does the same
    after = train(ds, dataclasses.replace(cfg, feedback_after=8), tmp_path / "after", progress=False)
    assert after.history[0]["train_loss"] != fed.history[0]["train_loss"]
    restarted = Checkpoint.load(after.checkpoint).build_policy()
    assert restarted.cfg.feedback_after == 8
    assert evaluate(restarted, val)["nll"] == pytest.approx(after.history[-1]["val_loss"], rel=1e-5)


def test_a_filtered_policy_is_trained_validated_and_normalised_on_the_filtered_joints(
    periodic: Path, tmp_path: Path
) -> None:
    """joint_input "filtered": the relative targets' statistics, the training and the validation loss all
    use the joints through the graph's filter (the exported graph applies it too: the parity test), so
    the filter's lag is learned rather than met for the first time on the robot."""
    from vand_ros.learning.actions import filtered_episodes, policy_stats
    from vand_ros.learning.train import _smoke_dataset

    ds = Dataset.load(periodic)
    cfg = TrainConfig(regulariser="none", smoke=True, joint_input="filtered", joint_filter=0.8)
    result = train(ds, cfg, tmp_path / "filtered", progress=False)
    policy = Checkpoint.load(result.checkpoint).build_policy()
    assert policy.action.filters_joints and policy.action.joint_filter == 0.8
    train_eps, val_eps = _smoke_dataset(ds)
    joints = ds.layout.act_slices["joints"]
    want = policy_stats(
        ds.stats, filtered_episodes(train_eps, cfg.action_spec, joints), cfg.action_spec, ds.layout
    )
    np.testing.assert_allclose(policy.act_std.numpy(), want.act_std, rtol=1e-6)
    unfiltered = policy_stats(ds.stats, train_eps, cfg.action_spec, ds.layout)
    assert not np.allclose(want.act_std, unfiltered.act_std, rtol=1e-3)  # the lag widens the offsets
    val = [Episode(e.obs[:96], e.act[:96], e.behaviour, e.source) for e in val_eps]  # --smoke's windows
    assert evaluate(policy, val)["nll"] == pytest.approx(result.history[-1]["val_loss"], rel=1e-5)
    plain = train(
        ds, replace(cfg, joint_input="measured", joint_filter=0.0), tmp_path / "plain", progress=False
    )
    assert plain.history[0]["train_nll"] != result.history[0]["train_nll"]


def test_copycat_of_an_exported_graph_is_the_diagnostic_of_the_execution_it_ships_with(
    periodic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`vand-ros copycat` steps the ONNX graph (no torch): trained with a chunk's first command and exported
    with a Hann-window ensemble, its numbers are the torch diagnostic of the ensemble, not the card's."""
    from vand_ros.learning.diagnostics import copycat

    run_dir, onnx, report = tmp_path / "run", tmp_path / "p.onnx", tmp_path / "copycat.json"
    assert (
        _run("train", str(periodic), "--out", str(run_dir), "--smoke", "--quiet", "--set", "action_chunk=3")
        == 0
    )
    assert (
        _run(
            "export", str(run_dir), "--out", str(onnx), "--execution", "ensemble", "--ensemble-window", "hann"
        )
        == 0
    )
    capsys.readouterr()
    assert _run("copycat", str(onnx), "--dataset", str(periodic), "--json", str(report)) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["mode"] == "deterministic" and line["action"] == "relative x3 ensemble"
    graph = json.loads(report.read_text())["copycat"]

    ds, ckpt = Dataset.load(periodic), Checkpoint.load(run_dir)
    names = list(ds.layout.joint_names)
    shipped = copycat(
        ckpt.with_execution(chunk_execution="ensemble", ensemble_window="hann").build_policy(), ds.val, names
    )
    trained = copycat(ckpt.build_policy(), ds.val, names)
    assert set(graph) == set(shipped) and "all" in graph
    for behaviour, joints in shipped.items():
        for joint, want in joints.items():
            got = graph[behaviour][joint]
            assert got["gain"] == pytest.approx(want["gain"], abs=1e-4), (behaviour, joint)
            assert got["policy_mse"] == pytest.approx(want["policy_mse"], rel=1e-3, abs=1e-9)
    differs = [abs(graph["all"][j]["gain"] - trained["all"][j]["gain"]) for j in names]
    assert max(differs) > 1e-3  # the first-command number the card carries is another number


def test_copycat_refuses_a_dataset_the_model_was_not_trained_for(
    periodic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, onnx = tmp_path / "run", tmp_path / "p.onnx"
    assert _run("train", str(periodic), "--out", str(run_dir), "--smoke", "--quiet") == 0
    assert _run("export", str(run_dir), "--out", str(onnx)) == 0
    slow = synthetic_dataset("periodic", n=3, steps=40, rate=10.0).save(tmp_path / "slow")
    capsys.readouterr()
    assert _run("copycat", str(onnx), "--dataset", str(slow)) == 1
    assert "is sampled at 10.0 Hz" in capsys.readouterr().err
