"""ONNX export: torch/onnxruntime parity over fed-back rollouts, the model card, the runtime's card reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from parity import onnx_rollout_error

import vand_ros
from vand_ros.data.dataset import NormStats
from vand_ros.errors import VandError
from vand_ros.learning.checkpoint import Checkpoint
from vand_ros.learning.config import REGULARISERS, TrainConfig
from vand_ros.learning.export import export_policy
from vand_ros.learning.policy import Policy
from vand_ros.runtime.card import CARD_KEY, DEFAULT_MODE_REASONS, DrawSampler, ModelCard
from vand_ros.runtime.layout import Layout, default_layout

pytestmark = pytest.mark.usefixtures("torch_one_thread")


LAYOUT = Layout(("j0", "j1", "j2"), ("vx", "wz"), ("box.x", "box.visible"), ("wipe", "visit"))
D, A = LAYOUT.obs_dim, LAYOUT.act_dim


def _stats() -> NormStats:
    rng = np.random.default_rng(5)
    return NormStats(
        rng.normal(size=D).astype(np.float32),
        rng.uniform(0.5, 2, D).astype(np.float32),
        rng.normal(size=A).astype(np.float32),
        rng.uniform(0.5, 2, A).astype(np.float32),
    )


def _checkpoint(reg: str, cell: str, layers: int = 2, **kw: object) -> Checkpoint:
    cfg = TrainConfig(regulariser=reg, cell=cell, hidden_size=6, encoder_size=6, num_layers=layers, **kw)  # type: ignore[arg-type]
    torch.manual_seed(1)
    policy = Policy(cfg, D, A, _stats(), joints=3, base_axes=("vx", "wz"))
    if cfg.chunk_normalisation == "per_offset":  # a scale per chunk offset and entry, as training sets
        policy.offset_scale.copy_(torch.linspace(0.3, 1.5, policy.offset_scale.numel()).reshape(-1, A))
    with torch.no_grad():  # learned scales away from their initial values, different per unit, in the
        for layer in policy.layers:  # range VAND.md reports after training (sigma 0.005-0.6)
            if cfg.is_vand:
                layer.s.copy_(torch.log(torch.expm1(torch.linspace(0.005, 0.6, 6))))
                layer.r.copy_(torch.randn(6))
    return Checkpoint.from_policy(
        policy,
        LAYOUT,
        20.0,
        _stats(),
        {"episodes": 3},
        training={"epochs": 4, "best_epoch": 2, "best_val_loss": 0.5},
    )


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("reg", REGULARISERS)
def test_onnx_matches_torch_over_a_fed_back_rollout(reg: str, cell: str, tmp_path: Path) -> None:
    extra = {"gal_p_x": 0.2, "gal_untied": cell == "lstm"} if reg == "gal" else {}
    ckpt = _checkpoint(reg, cell, **extra)
    path = tmp_path / "p.onnx"
    card = export_policy(ckpt, path)
    assert card.raw["execution"]["default_mode_reason"] == DEFAULT_MODE_REASONS[reg]
    for mode in sorted(card.modes):
        assert onnx_rollout_error(ckpt, path, mode) < 1e-5, mode


ACTIONS = {
    "relative": {"action_representation": "relative"},
    "relative_chunk_first": {"action_representation": "relative", "action_chunk": 5},
    "relative_chunk_ensemble": {
        "action_representation": "relative",
        "action_chunk": 5,
        "chunk_execution": "ensemble",
        "ensemble_decay": 0.3,
    },
    "absolute_chunk_ensemble": {"action_chunk": 4, "chunk_execution": "ensemble"},
    "relative_chunk_hann": {
        "action_representation": "relative",
        "action_chunk": 5,
        "chunk_execution": "ensemble",
        "ensemble_window": "hann",
    },
    "relative_chunk_ensemble_horizon": {
        "action_representation": "relative",
        "action_chunk": 5,
        "chunk_execution": "ensemble",
        "ensemble_horizon": 3,
    },
    "relative_chunk_per_offset_older_first": {  # per-offset scales, older predictions weighing more
        "action_representation": "relative",
        "action_chunk": 5,
        "chunk_execution": "ensemble",
        "ensemble_decay": -0.3,
        "chunk_normalisation": "per_offset",
    },
    "relative_without_twist": {"action_representation": "relative", "base_twist_input": "none"},
    "previous": {"action_representation": "previous"},
    "previous_anchored": {"action_representation": "previous", "previous_weight": 0.8},
    "previous_chunk_ensemble": {
        "action_representation": "previous",
        "action_chunk": 3,
        "chunk_execution": "ensemble",
        "ensemble_decay": 0.3,
    },
    "absolute_command_input": {"action_representation": "absolute", "joint_input": "command"},
    "relative_command_blend": {
        "action_representation": "relative",
        "joint_input": "command",
        "command_weight": 0.7,
    },
    "previous_command_input_chunk_ensemble": {
        "action_representation": "previous",
        "joint_input": "command",
        "action_chunk": 3,
        "chunk_execution": "ensemble",
        "ensemble_decay": 0.3,
    },
    "relative_filtered": {
        "action_representation": "relative",
        "joint_input": "filtered",
        "joint_filter": 0.8,
    },
    "previous_filtered_chunk_ensemble": {  # every extra state pair at once: sums, previous, filter
        "action_representation": "previous",
        "joint_input": "filtered",
        "joint_filter": 0.6,
        "action_chunk": 3,
        "chunk_execution": "ensemble",
        "ensemble_decay": 0.3,
    },
    "relative_deadband": {
        "action_representation": "relative",
        "base_deadband": 0.3,
        "base_deadband_angular": 0.2,
    },
}


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_every_action_representation_matches_torch_over_a_fed_back_rollout(
    action: str, cell: str, tmp_path: Path
) -> None:
    """Decoding (relative to the measured joints) and temporal ensembling happen inside the graph."""
    ckpt = _checkpoint("vand", cell, **ACTIONS[action])
    path = tmp_path / "p.onnx"
    card = export_policy(ckpt, path)
    assert card.action == ckpt.config.action_spec
    if card.action.ensembles:
        assert ("chunk", "chunk_out") in card.state
    assert (("previous", "previous_out") in card.state) == card.action.feeds_previous
    assert (("joint_filter", "joint_filter_out") in card.state) == card.action.filters_joints
    for mode in sorted(card.modes):
        assert onnx_rollout_error(ckpt, path, mode) < 1e-5, mode


def _base_commands(ckpt: Checkpoint, path: Path, ticks: int = 200) -> np.ndarray:
    """The base commands (ticks, 2) the exported graph sends on a fixed stream of random observations."""
    card = export_policy(ckpt, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    sampler = DrawSampler(card, "deterministic", seed=0)
    state = card.initial_state()
    rng = np.random.default_rng(3)
    sent = []
    for _ in range(ticks):
        obs = rng.normal(size=(1, D)).astype(np.float32)
        result = session.run(None, {"obs": obs, **state, **sampler()})
        state = {name: result[1 + k] for k, (name, _) in enumerate(card.state)}
        sent.append(result[0][0, 3:])
    return np.array(sent)


def test_an_ensembled_graph_applies_the_deadband_to_the_command_it_sends(tmp_path: Path) -> None:
    """With temporal ensembling the deadband acts on the ensemble's mean, the command sent: before round 17
    it zeroed each chunk entry, and the mean of a few entries above it and many zeros reached the robot as
    a small residue (the parked base turned)."""
    fields = {"action_representation": "relative", "action_chunk": 5, "chunk_execution": "ensemble"}
    raw = _base_commands(_checkpoint("vand", "gru", **fields), tmp_path / "raw.onnx")  # no deadband
    band = np.median(np.abs(raw), axis=0)  # (vx, wz): half the ticks on each side
    ckpt = _checkpoint(
        "vand", "gru", base_deadband=float(band[0]), base_deadband_angular=float(band[1]), **fields
    )
    sent = _base_commands(ckpt, tmp_path / "banded.onnx")
    np.testing.assert_allclose(sent, np.where(np.abs(raw) < band, 0.0, raw), rtol=0, atol=1e-6)


def test_dynamo_exporter_matches_too(tmp_path: Path) -> None:
    ckpt = _checkpoint("vand", "gru", layers=1)
    export_policy(ckpt, tmp_path / "d.onnx", dynamo=True)
    assert onnx_rollout_error(ckpt, tmp_path / "d.onnx", "stochastic") < 1e-5


def test_the_card_says_what_the_runtime_needs(tmp_path: Path) -> None:
    ckpt = _checkpoint("vand", "lstm", layers=2)
    card = export_policy(ckpt, tmp_path / "p.onnx", mode="stochastic")
    meta = ort.InferenceSession(str(tmp_path / "p.onnx")).get_modelmeta().custom_metadata_map
    raw = json.loads(meta[CARD_KEY])
    assert raw == card.raw
    assert raw["card_format"] == 2 and raw["formulation"] == "vand_ros/1"
    assert (
        raw["action"]
        == TrainConfig().action_spec.to_dict()
        == {
            "representation": "relative",
            "chunk": 1,
            "execution": "first",
            "ensemble_decay": 0.0,
            "base_deadband": 0.02,
            "base_deadband_angular": 0.05,
            "joint_input": "measured",
            "command_weight": 1.0,
            "joint_filter": 0.0,
            "previous_weight": 1.0,
            "ensemble_window": "exponential",
            "ensemble_horizon": 0,
        }
    )
    assert raw["package_version"] == vand_ros.__version__
    assert Layout.from_dict(raw["layout"]) == LAYOUT
    assert raw["joint_names"] == ["j0", "j1", "j2"] and raw["vocabulary"] == ["wipe", "visit"]
    assert raw["control_rate"] == 20.0
    reg = raw["regulariser"]
    assert (reg["name"], reg["cell"], reg["hidden_size"], reg["num_layers"], reg["beta"]) == (
        "vand",
        "lstm",
        6,
        2,
        0.05,
    )
    policy = ckpt.build_policy()
    np.testing.assert_allclose(reg["sigma"]["per_unit"], policy.sigma().detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(reg["rho"]["per_unit"], policy.rho().detach().numpy(), rtol=1e-6)
    sig = np.asarray(reg["sigma"]["per_unit"])
    assert reg["sigma"]["mean"] == pytest.approx(sig.mean()) and reg["sigma"]["max"] == pytest.approx(
        sig.max()
    )
    assert reg["sigma"]["frac_gt_0_5"] == pytest.approx((sig > 0.5).mean())
    exe = raw["execution"]
    assert exe["default_mode"] == "stochastic" and set(exe["supported_modes"]) == {
        "stochastic",
        "noise",
        "deterministic",
    }
    assert exe["default_mode_reason"] == "given at export"
    assert exe["modes"]["noise"] == {
        "eps": {"kind": "normal_per_step", "value": 0.0},
        "u": {"kind": "constant", "value": -1.0},
    }
    assert [x["name"] for x in raw["io"]["inputs"]] == ["obs", "h", "c", "eps", "u"]
    assert [x["name"] for x in raw["io"]["outputs"]] == ["action", "h_out", "c_out"]
    assert raw["dataset"] == {"episodes": 3}
    assert raw["training"]["best_val_loss"] == 0.5 and raw["training"]["config"]["regulariser"] == "vand"
    assert card.initial_state()["h"].shape == (1, 2, 6)


def test_every_model_has_the_same_draw_inputs(tmp_path: Path) -> None:
    """Exporters prune unused inputs; the contract keeps eps and u on every graph."""
    for reg in ("none", "vand_noise", "vand_dropout"):
        export_policy(_checkpoint(reg, "gru", layers=1), tmp_path / f"{reg}.onnx")
        names = [i.name for i in ort.InferenceSession(str(tmp_path / f"{reg}.onnx")).get_inputs()]
        assert names == ["obs", "state", "eps", "u"], reg


def test_card_reader_refuses_bad_cards(tmp_path: Path) -> None:
    card = export_policy(_checkpoint("gal", "gru", layers=1), tmp_path / "p.onnx")
    good = card.raw
    assert ModelCard.from_dict(json.loads(json.dumps(good))).regulariser == "gal"
    for key, value, match in (
        ("formulation", "vand_ros/2", "formulation"),
        ("card_format", 99, "format"),
        ("joint_names", ["a", "b", "c"], "joint_names"),
    ):
        with pytest.raises(VandError, match=match):
            ModelCard.from_dict({**good, key: value})
    broken = json.loads(json.dumps(good))
    broken["io"]["inputs"][0]["shape"] = [1, D + 1]
    with pytest.raises(VandError, match="input obs"):
        ModelCard.from_dict(broken)
    with pytest.raises(VandError, match="no model card"):
        ModelCard.from_metadata({})
    with pytest.raises(VandError, match="not supported"):
        DrawSampler(card, "stochastic")
    mc = DrawSampler(card, "mc", seed=0)
    first = mc()["u"]
    assert np.array_equal(first, mc()["u"])  # per episode
    mc.reset()
    assert not np.array_equal(first, mc()["u"])
    det = DrawSampler(card, "deterministic")()
    assert np.all(det["u"] == -1.0) and np.all(det["eps"] == 0.0)


def test_card_reader_refuses_a_stateful_action_without_its_state(tmp_path: Path) -> None:
    """A card whose representation keeps the previous target (or ensembling sums) as state, but whose io
    lacks that state pair, would run with a wrong command on the first tick: refused, saying what."""
    for action, pair in (
        ({"action_representation": "previous"}, "previous"),
        ({"action_chunk": 3, "chunk_execution": "ensemble"}, "chunk"),
        (
            {"action_representation": "relative", "joint_input": "filtered", "joint_filter": 0.5},
            "joint_filter",
        ),
    ):
        good = export_policy(_checkpoint("vand", "gru", layers=1, **action), tmp_path / "p.onnx").raw
        assert ModelCard.from_dict(json.loads(json.dumps(good))).action == ModelCard.from_dict(good).action
        broken = json.loads(json.dumps(good))
        broken["io"]["state"] = [s for s in broken["io"]["state"] if s["input"] != pair]
        with pytest.raises(VandError, match=f"state pair \\('{pair}'"):
            ModelCard.from_dict(broken)


def test_default_layout_model_exports(tmp_path: Path) -> None:
    layout = default_layout()
    cfg = TrainConfig(hidden_size=8, encoder_size=8)
    stats = NormStats(*(np.ones(n, np.float32) for n in (layout.obs_dim,) * 2 + (layout.act_dim,) * 2))
    policy = Policy(cfg, layout.obs_dim, layout.act_dim, stats, len(layout.joint_names), layout.base_axes)
    ckpt = Checkpoint.from_policy(policy, layout, 20.0, stats, {})
    card = export_policy(ckpt, tmp_path / "p.onnx")
    assert card.layout == layout and card.input_shape("obs") == (1, 37)


def test_the_card_names_bags_without_the_training_machines_paths() -> None:
    from vand_ros.learning.export import portable_summary

    summary = {
        "episodes": 2,
        "per_bag": [{"bag": "/home/me/data/bags/wipe_003", "status": "ok"}],
        "skipped": [{"bag": "/tmp/x/bad_bag", "kind": "corrupt", "problem": "no footer"}],
    }
    out = portable_summary(summary)
    assert out["per_bag"] == [{"bag": "wipe_003", "status": "ok"}] and out["skipped"][0]["bag"] == "bad_bag"
    assert summary["per_bag"][0]["bag"] == "/home/me/data/bags/wipe_003"  # the checkpoint keeps its paths
