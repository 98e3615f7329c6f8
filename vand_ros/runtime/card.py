"""The ONNX model card: what a vand_ros policy file says about itself, read and checked without torch.

The card is one JSON document stored in the ONNX file's `metadata_props` under the key `vand_ros.card`
(read it with `onnxruntime.InferenceSession(path).get_modelmeta().custom_metadata_map`). Schema, format 2
(format 1 is still read: it had no `action` block and meant absolute targets, one per tick):

    card_format       2
    formulation       "vand_ros/1" (../shared/VAND.md)
    package_version   vand_ros.__version__ of the exporter
    layout            Layout.to_dict(): names and slices of the observation and action vectors
    joint_names       arm joints in action/observation order (= layout.joint_names)
    vocabulary        instruction words in one-hot order (= layout.vocabulary)
    control_rate      [Hz] the rate the policy was trained at; step the model at this rate
    action            ActionSpec.to_dict() (vand_ros.runtime.action): representation ("absolute" |
                      "relative" | "previous"), chunk K, execution ("first" | "ensemble"), ensemble_decay,
                      ensemble_window ("exponential" | "hann"), ensemble_horizon (0 = chunk),
                      base deadbands, joint_input ("measured" | "command" | "filtered"), command_weight,
                      joint_filter. Decoded inside the graph: the
                      output `action` is always the absolute command
    regulariser       name, cell ("gru"|"lstm"), hidden_size, num_layers, beta, params (the preset's knobs),
                      sigma / rho: {"per_unit": [[...] per layer], "mean", "min", "max", "frac_gt_0_5"}
                      (zeros where the regulariser has no learned noise / dropout)
    execution         default_mode, supported_modes, modes: {mode: {input: DrawSpec}} (what to feed)
    contract          a plain-words version of this docstring's io and draw rules, for humans
    io                inputs / outputs: [{"name", "shape", "dtype"}], state: [{"input", "output", "shape"}]
                      (every state input starts at zeros and after a reset; feed back the matching output)
    normalisation     obs/act mean and std (informational: normalisation is inside the graph)
    dataset           the dataset summary
    training          epochs, best_epoch, best_val_loss, seed, config (the full training config)
    exporter          which torch.onnx exporter and opset wrote the file

Draws. Every graph has the inputs `eps` (1, L, H) and `u` (1, L, U) (U = H, or gates*H for untied Gal
masks), and `u_x` (1, D) where Gal input masks are on. The graph is deterministic; the caller draws:

    normal_per_step       fresh standard normal numbers every step
    zeros                 all zeros
    uniform_per_step      fresh U(0, 1) every step
    uniform_per_episode   U(0, 1) drawn once at each reset, then held (Gal's per-sequence masks)
    constant              every element = u_value (-1.0: any negative u means "replace the random mask /
                          multiplicative noise by its mean": VAND m = 1 - rho, Gal inverted scaling 1,
                          NRNN factor 1)

`DrawSampler` implements exactly this with numpy; the node should use it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vand_ros.errors import VandError
from vand_ros.runtime.action import ENSEMBLE_STATE, FILTER_STATE, PREVIOUS_STATE, ActionSpec
from vand_ros.runtime.layout import Layout

CARD_KEY = "vand_ros.card"
CARD_FORMAT = 2
READABLE_CARD_FORMATS = (1, 2)  # 1: before the action block (absolute targets, one per tick)
FORMULATION = "vand_ros/1"
MEAN_U = -1.0  # a negative u selects the mean of the mask (see the module docstring)

EPS_KINDS = ("zeros", "normal_per_step")
U_KINDS = ("constant", "uniform_per_step", "uniform_per_episode")


@dataclass(frozen=True)
class DrawSpec:
    """How the caller fills one draw input (`eps`, `u` or `u_x`) in one execution mode."""

    kind: str
    value: float = 0.0  # for kind "constant" (and "zeros")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DrawSpec:
        kind = d.get("kind")
        if kind not in EPS_KINDS + U_KINDS:
            raise VandError(f"model card: draw kind {kind!r} unknown (expected one of {EPS_KINDS + U_KINDS})")
        return cls(str(kind), float(d.get("value", 0.0)))


_Z = DrawSpec("zeros")
_N = DrawSpec("normal_per_step")
_MEAN = DrawSpec("constant", MEAN_U)
_US = DrawSpec("uniform_per_step")
_UE = DrawSpec("uniform_per_episode")

# regulariser -> mode -> (eps, u). "train" is how training draws (gal's u per sequence = per episode).
MODE_DRAWS: dict[str, dict[str, tuple[DrawSpec, DrawSpec]]] = {
    "none": {"deterministic": (_Z, _MEAN), "train": (_Z, _MEAN)},
    "nrnn": {"deterministic": (_Z, _MEAN), "noise": (_N, _US), "train": (_N, _US)},
    "gal": {"deterministic": (_Z, _MEAN), "mc": (_Z, _UE), "train": (_Z, _UE)},
    "vand": {"stochastic": (_N, _US), "noise": (_N, _MEAN), "deterministic": (_Z, _MEAN), "train": (_N, _US)},
    "vand_noise": {"noise": (_N, _MEAN), "deterministic": (_Z, _MEAN), "train": (_N, _MEAN)},
    "vand_dropout": {"stochastic": (_Z, _US), "deterministic": (_Z, _MEAN), "train": (_Z, _US)},
    "vand_fixed": {
        "stochastic": (_N, _US),
        "noise": (_N, _MEAN),
        "deterministic": (_Z, _MEAN),
        "train": (_N, _US),
    },
}
# (supported execution modes, default). The default of the VAND family keeps the learned noise on.
EXECUTION_MODES: dict[str, tuple[tuple[str, ...], str]] = {
    "none": (("deterministic",), "deterministic"),
    "nrnn": (("deterministic", "noise"), "deterministic"),
    "gal": (("deterministic", "mc"), "deterministic"),
    "vand": (("stochastic", "noise", "deterministic"), "noise"),
    "vand_noise": (("noise", "deterministic"), "noise"),
    "vand_dropout": (("stochastic", "deterministic"), "stochastic"),
    "vand_fixed": (("stochastic", "noise", "deterministic"), "noise"),
}
# Why each default: export writes it to the card (execution.default_mode_reason) unless a mode is given.
DEFAULT_MODE_REASONS: dict[str, str] = {
    "none": "the only mode",
    "nrnn": "noise off at execution, as in the NRNN paper",
    "gal": "dropout replaced by its expectation (weight scaling), as in Gal & Ghahramani",
    "vand": "the noise-on mode that ranked best on closed-loop validation runs (noise ties stochastic; "
    "docs/results.md)",
    "vand_noise": "its only mode with the learned noise on",
    "vand_dropout": "its only mode with the learned dropout on",
    "vand_fixed": "as VAND",
}


def mode_feeds(regulariser: str, mode: str, input_mask: bool) -> dict[str, DrawSpec]:
    """What to feed `eps`, `u` (and `u_x` when Gal input masks are on) in `mode`."""
    try:
        eps, u = MODE_DRAWS[regulariser][mode]
    except KeyError:
        modes = sorted(MODE_DRAWS.get(regulariser, {}))
        raise VandError(
            f"execution mode {mode!r} is not defined for regulariser {regulariser!r} "
            f"(expected one of {modes})"
        ) from None
    feeds = {"eps": eps, "u": u}
    if input_mask:
        feeds["u_x"] = u
    return feeds


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorSpec:
        return cls(str(d["name"]), tuple(int(x) for x in d["shape"]), str(d.get("dtype", "float32")))


@dataclass(frozen=True)
class ModelCard:
    """The parsed card. `raw` keeps the whole JSON document (dataset and training summaries included)."""

    formulation: str
    package_version: str
    layout: Layout
    control_rate: float  # [Hz]
    regulariser: str
    cell: str
    hidden_size: int
    num_layers: int
    default_mode: str
    modes: dict[str, dict[str, DrawSpec]]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    state: tuple[tuple[str, str], ...]  # (input name, output name) pairs, zeros at reset
    raw: dict[str, Any]
    action: ActionSpec = field(default_factory=ActionSpec)

    # -- reading ----------------------------------------------------------------------------------------
    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as err:
            raise VandError(f"model card is not valid JSON ({err}); re-export the model") from None
        if not isinstance(d, dict):
            raise VandError("model card: expected a JSON object; re-export the model")
        return cls.from_dict(d)

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> ModelCard:
        """From an ONNX file's metadata_props (e.g. `session.get_modelmeta().custom_metadata_map`)."""
        if CARD_KEY not in metadata:
            raise VandError(
                f"the ONNX file has no model card (expected metadata key {CARD_KEY!r}, found "
                f"{sorted(metadata)}); export it with `vand-ros export`"
            )
        return cls.from_json(metadata[CARD_KEY])

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        if d.get("card_format") not in READABLE_CARD_FORMATS:
            raise VandError(
                f"model card format: expected one of {list(READABLE_CARD_FORMATS)}, found "
                f"{d.get('card_format')!r}; re-export the model with this version of vand_ros"
            )
        if d.get("formulation") != FORMULATION:
            raise VandError(
                f"model card formulation: expected {FORMULATION!r}, found {d.get('formulation')!r}; "
                "this runtime implements only that formulation"
            )
        try:
            reg, exe, io = d["regulariser"], d["execution"], d["io"]
            card = cls(
                formulation=str(d["formulation"]),
                package_version=str(d["package_version"]),
                layout=Layout.from_dict(d["layout"]),
                control_rate=float(d["control_rate"]),
                regulariser=str(reg["name"]),
                cell=str(reg["cell"]),
                hidden_size=int(reg["hidden_size"]),
                num_layers=int(reg["num_layers"]),
                default_mode=str(exe["default_mode"]),
                modes={
                    str(m): {str(k): DrawSpec.from_dict(v) for k, v in feeds.items()}
                    for m, feeds in exe["modes"].items()
                },
                inputs=tuple(TensorSpec.from_dict(x) for x in io["inputs"]),
                outputs=tuple(TensorSpec.from_dict(x) for x in io["outputs"]),
                state=tuple((str(s["input"]), str(s["output"])) for s in io["state"]),
                raw=d,
                action=ActionSpec.from_dict(d["action"]) if d["card_format"] >= 2 else ActionSpec(),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise VandError(
                f"model card is missing or has a malformed field ({err!r}); re-export the model"
            ) from None
        card.validate()
        return card

    def validate(self) -> None:
        """Internal consistency: names, shapes, modes, rate. Raises VandError saying what differs."""
        problems: list[str] = []
        if self.d_joint_names != list(self.layout.joint_names):
            problems.append(f"joint_names {self.d_joint_names} != layout {list(self.layout.joint_names)}")
        if not (math.isfinite(self.control_rate) and self.control_rate > 0):
            problems.append(f"control_rate {self.control_rate} is not a positive rate")
        if self.default_mode not in self.modes:
            problems.append(f"default_mode {self.default_mode!r} not among modes {sorted(self.modes)}")
        ins = {t.name: t for t in self.inputs}
        outs = {t.name: t for t in self.outputs}
        D, A, L, H = self.layout.obs_dim, self.layout.act_dim, self.num_layers, self.hidden_size
        expect_in = {"obs": (1, D), "eps": (1, L, H)}
        expect_out = {"action": (1, A)}
        for name, shape in expect_in.items():
            if name not in ins or ins[name].shape != shape:
                found = ins[name].shape if name in ins else "missing"
                problems.append(f"input {name}: expected shape {shape}, found {found}")
        for name, shape in expect_out.items():
            if name not in outs or outs[name].shape != shape:
                found = outs[name].shape if name in outs else "missing"
                problems.append(f"output {name}: expected shape {shape}, found {found}")
        if "u" not in ins:
            problems.append("input u is missing")
        for i, o in self.state:
            if i not in ins or o not in outs or ins[i].shape != outs[o].shape:
                problems.append(f"state pair {i} -> {o} is not an input/output pair of equal shape")
        if self.action.ensembles:
            sums = ins.get(ENSEMBLE_STATE[0])
            expected = (1, self.action.chunk, A + 1)
            if ENSEMBLE_STATE not in self.state or sums is None or sums.shape != expected:
                found = sums.shape if sums is not None else "missing"
                problems.append(
                    f"temporal ensembling needs the state pair {ENSEMBLE_STATE} of shape {expected}, "
                    f"found {found}"
                )
        held_shape = (1, len(self.layout.joint_names) + 1)
        for needed, pair, what in (
            (self.action.feeds_previous, PREVIOUS_STATE, "the previous targets'"),
            (self.action.filters_joints, FILTER_STATE, "the filtered joints'"),
        ):
            held = ins.get(pair[0])
            if needed and (pair not in self.state or held is None or held.shape != held_shape):
                problems.append(
                    f"{self.action.label} needs {what} state pair {pair} of shape "
                    f"{held_shape}, found {held.shape if held is not None else 'missing'}"
                )
        for mode, feeds in self.modes.items():
            missing = {n for n in ins if n not in {"obs"} | {i for i, _ in self.state}} - set(feeds)
            if missing:
                problems.append(f"mode {mode!r} does not say how to feed {sorted(missing)}")
        if problems:
            raise VandError("model card is inconsistent: " + "; ".join(problems) + "; re-export the model")

    @property
    def d_joint_names(self) -> list[str]:
        return [str(x) for x in self.raw.get("joint_names", [])]

    # -- checks against a running session ---------------------------------------------------------------
    def check_io(self, session_inputs: list[tuple[str, list[Any]]], session_outputs: list[str]) -> None:
        """Compare the card's io with an onnxruntime session's (name, shape) inputs and output names."""
        problems = []
        card_in = {t.name: t.shape for t in self.inputs}
        found_in = {name: tuple(shape) for name, shape in session_inputs}
        if set(card_in) != set(found_in):
            problems.append(f"inputs: card {sorted(card_in)} != graph {sorted(found_in)}")
        else:
            problems += [
                f"input {n}: card shape {card_in[n]} != graph {found_in[n]}"
                for n in card_in
                if card_in[n] != found_in[n]
            ]
        if {t.name for t in self.outputs} != set(session_outputs):
            problems.append(f"outputs: card {[t.name for t in self.outputs]} != graph {session_outputs}")
        if problems:
            raise VandError("model card and graph disagree: " + "; ".join(problems) + "; re-export the model")

    def initial_state(self) -> dict[str, np.ndarray]:
        """Zero recurrent state, keyed by state input name."""
        shapes = {t.name: t.shape for t in self.inputs}
        return {i: np.zeros(shapes[i], dtype=np.float32) for i, _ in self.state}

    def input_shape(self, name: str) -> tuple[int, ...]:
        for t in self.inputs:
            if t.name == name:
                return t.shape
        raise VandError(f"model card has no input {name!r} (inputs: {[t.name for t in self.inputs]})")


class DrawSampler:
    """Draws `eps`, `u` (and `u_x`) for one execution mode, exactly as the card says, from a seed."""

    def __init__(self, card: ModelCard, mode: str | None = None, seed: int = 0) -> None:
        self.mode = mode or card.default_mode
        if self.mode not in card.modes:
            raise VandError(
                f"execution mode {self.mode!r} is not supported by this model "
                f"(expected one of {sorted(card.modes)}); pick a supported mode"
            )
        self.feeds = card.modes[self.mode]
        self.shapes = {name: card.input_shape(name) for name in self.feeds}
        self.rng = np.random.default_rng(seed)
        self._episode: dict[str, np.ndarray] = {}
        self.reset()

    def reset(self) -> None:
        """Start of an episode: redraw the per-episode draws."""
        self._episode = {
            n: self.rng.random(self.shapes[n], dtype=np.float32)
            for n, spec in self.feeds.items()
            if spec.kind == "uniform_per_episode"
        }
        # Buffers filled in place every step (no allocation on the control path); constant ones are
        # filled once here.
        self._buffers: dict[str, np.ndarray] = {}
        for name, spec in self.feeds.items():
            if spec.kind == "uniform_per_episode":
                self._buffers[name] = self._episode[name]
            elif spec.kind == "zeros":
                self._buffers[name] = np.zeros(self.shapes[name], dtype=np.float32)
            elif spec.kind == "constant":
                self._buffers[name] = np.full(self.shapes[name], spec.value, dtype=np.float32)
            else:
                self._buffers[name] = np.empty(self.shapes[name], dtype=np.float32)

    def __call__(self) -> dict[str, np.ndarray]:
        """The draw inputs for the next step. The arrays are reused (refilled in place) on the next call;
        the dict is new, so replacing one of its entries does not touch the sampler."""
        for name, spec in self.feeds.items():
            if spec.kind == "normal_per_step":
                self.rng.standard_normal(dtype=np.float32, out=self._buffers[name])
            elif spec.kind == "uniform_per_step":
                self.rng.random(dtype=np.float32, out=self._buffers[name])
        return dict(self._buffers)
