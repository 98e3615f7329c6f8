"""Export a trained policy to one self-describing, stateful ONNX file: one control step per call.

The graph (float32, batch 1; L layers, H units, D = layout.obs_dim, A = layout.act_dim):

    inputs   obs        (1, D)     raw observation in layout order (normalised inside the graph)
             state      (1, L, H)  recurrent state (GRU); for an LSTM two inputs `h` and `c`, each (1, L, H)
             eps        (1, L, H)  standard-normal draws (noise)
             u          (1, L, U)  uniform draws in [0, 1) (masks; U = H, or gates*H for untied Gal masks);
                                   a negative value selects the mask's mean
             u_x        (1, D)     only for Gal with input dropout (gal_p_x > 0)
             chunk      (1, K, A+1) only with temporal ensembling (card `action`): the running sums
    outputs  action     (1, A)     absolute raw command in layout order (de-normalised and decoded from the
                                   action representation inside the graph, vand_ros.runtime.action)
             state_out  (1, L, H)  next state (LSTM: `h_out`, `c_out`); `chunk_out` with ensembling

The state starts at zeros (and returns to zeros on a reset); feed each step's state outputs back as the
next step's state inputs. Every graph has `eps` and `u` (a `none` model ignores them), so the runtime code
is the same for every regulariser. What to feed `eps`/`u` in each execution mode is on the model card
(JSON under metadata_props["vand_ros.card"], schema and a numpy sampler in vand_ros.runtime.card).

Exporter: the TorchScript exporter (`dynamo=False`) at opset 17. Evidence (torch 2.13, onnxruntime 1.32,
this machine, 2-layer H=8 GRU/LSTM VAND, none and gal): both exporters match torch over a 1000-step
fed-back rollout with the same draws to 2.4e-7, and run one step in the same time with one thread (p50
36-38 us). The dynamo exporter writes half the nodes (68 vs 128) but takes 0.8-3 s per export against
0.05-0.2 s, which matters for a parity matrix of 14 models run in every test run; it needs opset >= 18
and `external_data=False` to write one valid file, and it has had silent numerical errors on GRUs (our
cells are hand-written, so no RNN op is involved either way). Both exporters prune inputs the maths does
not use; `_restore_contract_inputs` declares them again so every model has the same inputs. The
TorchScript exporter's deprecation warning is silenced here; `dynamo=True` stays supported and has its
own parity test, so switching is one argument when TorchScript export is removed.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import vand_ros
from vand_ros.data.dataset import NormStats
from vand_ros.errors import VandError
from vand_ros.learning.checkpoint import Checkpoint
from vand_ros.learning.config import TrainConfig
from vand_ros.learning.policy import Draws, Policy
from vand_ros.runtime.action import ENSEMBLE_STATE, FILTER_STATE, PREVIOUS_STATE
from vand_ros.runtime.card import (
    CARD_FORMAT,
    CARD_KEY,
    DEFAULT_MODE_REASONS,
    FORMULATION,
    ModelCard,
    mode_feeds,
)
from vand_ros.runtime.layout import Layout

OPSET = 17
OPSET_DYNAMO = 18
EXPORTER_DYNAMO = False
HEALTH_THRESHOLD = 0.5  # fraction of units with sigma (rho) above this: the regulariser is pruning


# The human-readable part of the card: how to drive the graph from the file alone.
CONTRACT = {
    "step": "call once per control tick at control_rate; batch 1; every input and output is float32",
    "obs": "raw observation (1, D) in layout order and units; normalisation is inside the graph",
    "action": (
        "absolute raw command (1, A) in layout order (joint position targets [rad], then base velocity "
        "command); de-normalised and decoded from the card's action representation inside the graph"
    ),
    "state": "io.state pairs: feed each output back as the next tick's input; zeros at start and on reset",
    "draws": (
        "eps, u (and u_x) as execution.modes[mode] says: normal_per_step = fresh N(0, 1); uniform_per_step "
        "= fresh U(0, 1); uniform_per_episode = U(0, 1) drawn at each reset and held; zeros; constant = "
        "value (-1: a negative u replaces every mask and multiplicative factor by its mean)"
    ),
    "reference": "vand_ros.runtime.card (ModelCard, DrawSampler): numpy + json only",
}


class StepGraph(nn.Module):
    """The policy's `step` with flat tensor inputs and outputs, in the order of the ONNX contract."""

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy
        # the recurrent state, then ensembling sums, previous targets, filter (those the spec has)
        self.n_state = (2 if policy.cfg.cell == "lstm" else 1) + len(policy.exec_slots())
        self.input_mask = policy.cfg.uses_input_mask

    def forward(self, obs: Tensor, *args: Tensor) -> tuple[Tensor, ...]:
        n_state = self.n_state
        state = tuple(args[:n_state])  # init_exec_state's order
        eps, u = args[n_state], args[n_state + 1]
        u_x = args[n_state + 2] if self.input_mask else None
        action, new_state = self.policy.step(obs, state, Draws(eps, u, u_x))  # (1, A)
        return (action, *new_state)


def io_spec(policy: Policy) -> dict[str, Any]:
    """Names, shapes and dtypes of the graph's inputs and outputs, and the state pairs."""
    cfg = policy.cfg
    L, H = cfg.num_layers, cfg.hidden_size
    pairs = [("h", "h_out"), ("c", "c_out")] if cfg.cell == "lstm" else [("state", "state_out")]
    shapes = {i: [1, L, H] for i, _ in pairs}
    if policy.action.ensembles:
        pairs.append(ENSEMBLE_STATE)
        shapes[ENSEMBLE_STATE[0]] = [1, policy.action.chunk, policy.act_dim + 1]
    if policy.action.feeds_previous:
        pairs.append(PREVIOUS_STATE)
        shapes[PREVIOUS_STATE[0]] = [1, policy.joints.stop + 1]
    if policy.action.filters_joints:
        pairs.append(FILTER_STATE)
        shapes[FILTER_STATE[0]] = [1, policy.joints.stop + 1]
    inputs = [{"name": "obs", "shape": [1, policy.obs_dim], "dtype": "float32"}]
    inputs += [{"name": i, "shape": shapes[i], "dtype": "float32"} for i, _ in pairs]
    inputs += [
        {"name": "eps", "shape": [1, L, H], "dtype": "float32"},
        {"name": "u", "shape": [1, L, cfg.u_size], "dtype": "float32"},
    ]
    if cfg.uses_input_mask:
        inputs.append({"name": "u_x", "shape": [1, policy.obs_dim], "dtype": "float32"})
    outputs = [{"name": "action", "shape": [1, policy.act_dim], "dtype": "float32"}]
    outputs += [{"name": o, "shape": shapes[i], "dtype": "float32"} for i, o in pairs]
    return {
        "inputs": inputs,
        "outputs": outputs,
        "state": [{"input": i, "output": o, "shape": shapes[i], "init": "zeros"} for i, o in pairs],
    }


def _scale_summary(values: np.ndarray) -> dict[str, Any]:
    """values (L, H) -> per-unit lists plus mean/min/max and the health fraction > 0.5."""
    return {
        "per_unit": [[float(x) for x in row] for row in values],
        "mean": float(values.mean()),
        "min": float(values.min()),
        "max": float(values.max()),
        "frac_gt_0_5": float((values > HEALTH_THRESHOLD).mean()),
    }


def portable_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The dataset summary with each bag named by its folder name, not by a path on the training machine
    (the card travels to the robot, where those paths say nothing)."""
    out = dict(summary)
    for key in ("per_bag", "skipped"):
        if isinstance(out.get(key), list):
            out[key] = [
                {**r, "bag": Path(str(r["bag"])).name} if isinstance(r, dict) and "bag" in r else r
                for r in out[key]
            ]
    return out


def build_card(
    ckpt: Checkpoint, policy: Policy, mode: str | None, exporter: dict[str, Any]
) -> dict[str, Any]:
    cfg = policy.cfg
    if mode:
        reason = "given at export"
    elif cfg.execution_mode:
        reason = "set in the training config (execution_mode)"
    else:
        reason = DEFAULT_MODE_REASONS[cfg.regulariser]
    mode = mode or cfg.default_mode
    if mode not in cfg.supported_modes:
        raise VandError(
            f"execution mode {mode!r} is not supported by {cfg.regulariser} "
            f"(expected one of {list(cfg.supported_modes)})"
        )
    with torch.no_grad():
        sigma = policy.sigma().cpu().numpy().astype(np.float64)  # (L, H)
        rho = policy.rho().cpu().numpy().astype(np.float64)
    params: dict[str, Any] = {}
    if cfg.is_vand:
        params = {
            k: getattr(cfg, k)
            for k in ("beta", "beta_warmup", "sigma_init", "rho_init", "rho_max", "temperature")
        }
        params.update(noise=cfg.uses_noise, dropout=cfg.uses_dropout, learned=cfg.learns_scales)
    elif cfg.regulariser == "nrnn":
        params = {"sigma_add": cfg.nrnn_sigma_add, "mult": cfg.nrnn_mult}
    elif cfg.regulariser == "gal":
        params = {
            "p_h": cfg.gal_p_h,
            "p_x": cfg.gal_p_x,
            "untied": cfg.gal_untied,
            "weight_decay": cfg.gal_weight_decay,
        }
    layout = ckpt.layout
    return {
        "card_format": CARD_FORMAT,
        "formulation": FORMULATION,
        "package_version": vand_ros.__version__,
        "layout": layout.to_dict(),
        "joint_names": list(layout.joint_names),
        "vocabulary": list(layout.vocabulary),
        "control_rate": ckpt.control_rate,
        "action": policy.action.to_dict(),
        "regulariser": {
            "name": cfg.regulariser,
            "cell": cfg.cell,
            "hidden_size": cfg.hidden_size,
            "num_layers": cfg.num_layers,
            "beta": cfg.beta if cfg.is_vand else 0.0,
            "params": params,
            "sigma": _scale_summary(sigma),
            "rho": _scale_summary(rho),
        },
        "execution": {
            "default_mode": mode,
            "default_mode_reason": reason,
            "supported_modes": list(cfg.supported_modes),
            "modes": {
                m: {k: v.to_dict() for k, v in mode_feeds(cfg.regulariser, m, cfg.uses_input_mask).items()}
                for m in cfg.supported_modes
            },
        },
        "io": io_spec(policy),
        "contract": CONTRACT,
        "normalisation": ckpt.stats.to_dict(),
        "dataset": portable_summary(ckpt.dataset_summary),
        "training": {
            "epochs": ckpt.training.get("epochs"),
            "best_epoch": ckpt.training.get("best_epoch"),
            "best_val_loss": ckpt.training.get("best_val_loss"),
            "val_source": ckpt.training.get("val_source"),
            "copycat": ckpt.training.get("copycat"),
            "seed": cfg.seed,
            "config": cfg.to_dict(),
        },
        "exporter": exporter,
    }


def _restore_contract_inputs(model: Any, inputs: list[dict[str, Any]]) -> None:
    """Put every contract input on the graph, in contract order.

    Both exporters prune inputs the maths does not use (eps for `gal` and `vand_dropout`, u for
    `vand_noise`, both for `none`). ONNX allows unused graph inputs, so they are declared again: the
    runtime feeds the same names to every model, and the unused ones cost nothing.
    """
    import onnx

    present = {vi.name: vi for vi in model.graph.input}
    unknown = set(present) - {x["name"] for x in inputs}
    if unknown:
        raise VandError(f"exported graph has inputs {sorted(unknown)} outside the contract; report a bug")
    ordered = [
        present.get(x["name"])
        or onnx.helper.make_tensor_value_info(x["name"], onnx.TensorProto.FLOAT, x["shape"])
        for x in inputs
    ]
    del model.graph.input[:]
    model.graph.input.extend(ordered)


def export_policy(
    ckpt: Checkpoint, out: str | Path, mode: str | None = None, dynamo: bool = EXPORTER_DYNAMO
) -> ModelCard:
    """Write the single-step graph of `ckpt`'s policy with its card to `out`; return the parsed card."""
    import onnx

    policy = ckpt.build_policy().cpu().eval()
    graph = StepGraph(policy).eval()
    spec = io_spec(policy)
    example = tuple(torch.zeros(x["shape"]) for x in spec["inputs"])
    in_names = [x["name"] for x in spec["inputs"]]
    out_names = [x["name"] for x in spec["outputs"]]
    opset = OPSET_DYNAMO if dynamo else OPSET
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        if dynamo:
            program = torch.onnx.export(
                graph,
                example,
                input_names=in_names,
                output_names=out_names,
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
            assert program is not None
            model = program.model_proto
        else:
            torch.onnx.export(
                graph,
                example,
                buf,  # type: ignore[arg-type]
                input_names=in_names,
                output_names=out_names,
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
            model = onnx.load_from_string(buf.getvalue())
    exporter = {"name": "torch.onnx.export", "dynamo": dynamo, "opset": opset, "torch": torch.__version__}
    card_dict = build_card(ckpt, policy, mode, exporter)
    card = ModelCard.from_dict(json.loads(json.dumps(card_dict)))  # validate before writing
    _restore_contract_inputs(model, spec["inputs"])
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_KEY, json.dumps(card_dict, sort_keys=True)
    model.producer_name = "vand_ros"
    model.producer_version = vand_ros.__version__
    onnx.checker.check_model(model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(out))
    return card


def export_untrained_policy(
    out: str | Path,
    layout: Layout,
    control_rate: float,
    cfg: TrainConfig | None = None,
    act_mean: np.ndarray | None = None,
    act_std: float = 0.01,
    seed: int = 0,
) -> Path:
    """Export an untrained policy: for benchmarks and plumbing tests, never for a robot task.

    Observations are taken as already normalised (mean 0, std 1); actions are de-normalised with
    `act_mean` (default zeros) and a small `act_std`, so the output stays near `act_mean` whatever comes in
    (with the default config: absolute targets, no deadband). Cost per step is that of a trained model of
    the same size.
    """
    torch.manual_seed(seed)
    cfg = cfg or TrainConfig(action_representation="absolute", base_deadband=0.0, base_deadband_angular=0.0)
    mean = np.zeros(layout.act_dim, np.float32) if act_mean is None else np.asarray(act_mean, np.float32)
    stats = NormStats(
        obs_mean=np.zeros(layout.obs_dim, np.float32),
        obs_std=np.ones(layout.obs_dim, np.float32),
        act_mean=mean,
        act_std=np.full(layout.act_dim, act_std, np.float32),
    )
    policy = Policy(cfg, layout.obs_dim, layout.act_dim, stats, len(layout.joint_names), layout.base_axes)
    ckpt = Checkpoint.from_policy(policy, layout, control_rate, stats, {"note": "untrained policy"})
    export_policy(ckpt, out)
    return Path(out)
