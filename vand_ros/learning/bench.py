"""`vand-ros bench train`: training-step time of VAND vs `none` vs torch's nn.GRU; ONNX step latency.

Measured side by side in one run, round-robin (one step of each variant in turn), so that a noisy shared
machine slows all variants alike. A training step is what `train` does per window: draws, forward over
`seq_len` steps of a (batch, seq_len, D) window with carried state, NLL (+ beta R), backward, gradient
clipping and an Adam step. `nn.GRU` is the same encoder/head around torch's fused GRU (no regulariser):
the reference for what the hand-written loop costs. ONNX latency is one `session.run` of the exported
single-step graph with one intra-op thread (and, separately, including the numpy glue a node needs: drawing
eps/u with runtime.card.DrawSampler and feeding the state back). Dimensions default to the built-in robot's
layout (D = 37, A = 9).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vand_ros.benchmarks import report, summarise
from vand_ros.data.dataset import NormStats
from vand_ros.learning.checkpoint import Checkpoint
from vand_ros.learning.config import CELLS, TrainConfig
from vand_ros.learning.policy import DrawMaker, Policy
from vand_ros.runtime.layout import default_layout


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cell", choices=CELLS, default="gru")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, choices=(1, 2), default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=30, help="timed training steps per variant")
    parser.add_argument("--onnx-steps", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")


class _TorchGRU(nn.Module):
    """Encoder + torch.nn.GRU + Gaussian head: the fused-kernel reference of the same size."""

    def __init__(self, obs_dim: int, act_dim: int, enc: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.encoder = nn.Linear(obs_dim, enc)
        self.rnn = nn.GRU(enc, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, act_dim)
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        y, h = self.rnn(torch.tanh(self.encoder(x)), h)  # (B, T, H), (L, B, H)
        return self.head(y), h


def _policy_step(cfg: TrainConfig, x: Tensor, y: Tensor) -> Callable[[], None]:
    D, A = x.shape[-1], y.shape[-1]
    torch.manual_seed(0)
    layout = default_layout()
    policy = Policy(cfg, D, A, joints=len(layout.joint_names), base_axes=layout.base_axes)
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    drawer = DrawMaker(cfg, D, "train", 0)
    B, T = x.shape[:2]
    drawer.reset(B)
    state = policy.init_state(B)

    def step() -> None:
        nonlocal state
        out = policy(x, state, drawer.window(B, T), hard=False)
        loss = policy.nll(out.mean, y[:, :, None]).mean() + cfg.beta * out.reg.mean()  # chunk of 1
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        state = tuple(s.detach() for s in out.state)

    return step


def _torch_gru_step(cfg: TrainConfig, x: Tensor, y: Tensor) -> Callable[[], None]:
    torch.manual_seed(0)
    model = _TorchGRU(x.shape[-1], y.shape[-1], cfg.encoder_size, cfg.hidden_size, cfg.num_layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    h = torch.zeros(cfg.num_layers, x.shape[0], cfg.hidden_size)

    def step() -> None:
        nonlocal h
        mean, h_new = model(x, h)
        z = (y - mean) * torch.exp(-model.log_std)
        loss = (0.5 * z**2 + model.log_std).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        h = h_new.detach()

    return step


def _onnx_latency(cfg: TrainConfig, steps: int, tmp: Path) -> dict[str, Any]:
    import onnxruntime as ort

    from vand_ros.learning.export import export_policy
    from vand_ros.runtime.card import DrawSampler

    layout = default_layout()
    D, A = layout.obs_dim, layout.act_dim
    stats = NormStats(
        np.zeros(D, np.float32), np.ones(D, np.float32), np.zeros(A, np.float32), np.ones(A, np.float32)
    )
    torch.manual_seed(0)
    policy = Policy(cfg, D, A, stats, len(layout.joint_names), layout.base_axes)
    ckpt = Checkpoint.from_policy(policy, layout, 20.0, stats, {})
    path = tmp / f"{cfg.regulariser}.onnx"
    card = export_policy(ckpt, path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    sampler = DrawSampler(card, seed=0)
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((1, D)).astype(np.float32)
    feeds: dict[str, np.ndarray] = {"obs": obs, **card.initial_state(), **sampler()}
    outputs = [o for _, o in card.state]
    for _ in range(200):  # warm-up
        session.run(None, feeds)
    bare = []
    for _ in range(steps):
        t0 = time.perf_counter()
        session.run(None, feeds)
        bare.append(time.perf_counter() - t0)
    glue = []
    state = card.initial_state()
    names = ["action", *outputs]
    for _ in range(steps):
        t0 = time.perf_counter()
        result = session.run(names, {"obs": obs, **state, **sampler()})
        state = {i: result[1 + k] for k, (i, _) in enumerate(card.state)}
        glue.append(time.perf_counter() - t0)
    return {"run_us": summarise(bare, 1e6), "with_glue_us": summarise(glue, 1e6), "mode": card.default_mode}


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    layout = default_layout()
    D, A = layout.obs_dim, layout.act_dim
    base = {
        "cell": args.cell,
        "hidden_size": args.hidden,
        "encoder_size": args.hidden,
        "num_layers": args.layers,
    }
    cfgs = {name: TrainConfig(regulariser=name, **base) for name in ("vand", "none")}
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, args.seq_len, D, generator=gen)  # (B, T, D)
    y = torch.randn(args.batch, args.seq_len, A, generator=gen)  # (B, T, A)
    steps: dict[str, Callable[[], None]] = {
        f"vand ({args.cell})": _policy_step(cfgs["vand"], x, y),
        f"none ({args.cell})": _policy_step(cfgs["none"], x, y),
        "torch nn.GRU": _torch_gru_step(cfgs["none"], x, y),
    }
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(3):  # warm-up
        for fn in steps.values():
            fn()
    for _ in range(args.repeats):
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    train_ms = {k: summarise(v, 1e3) for k, v in times.items()}
    vand_ms, none_ms, gru_ms = (train_ms[k]["p50"] for k in steps)
    with tempfile.TemporaryDirectory() as tmp:
        onnx = {name: _onnx_latency(cfg, args.onnx_steps, Path(tmp)) for name, cfg in cfgs.items()}
    results = {
        "config": {
            **base,
            "batch": args.batch,
            "seq_len": args.seq_len,
            "D": D,
            "A": A,
            "torch_threads": torch.get_num_threads(),
            "repeats": args.repeats,
        },
        "train_step_ms": train_ms,
        "ratio_vand_over_none": vand_ms / none_ms,
        "ratio_vand_over_torch_gru": vand_ms / gru_ms,
        "onnx_step": onnx,
    }

    def row(what: str, stats: dict[str, float]) -> dict[str, Any]:
        return {"what": what, **{k: stats[k] for k in ("p50", "p90", "p99", "max")}}

    rows = [row(f"train step {k} [ms]", v) for k, v in train_ms.items()]
    for name, r in onnx.items():
        rows.append(row(f"onnx step {name} run() [us]", r["run_us"]))
        rows.append(row(f"onnx step {name} incl. draws+state [us]", r["with_glue_us"]))
    report("train", results, rows)
    print(
        f"\nVAND / none: {vand_ms / none_ms:.2f}x   VAND / nn.GRU: {vand_ms / gru_ms:.2f}x "
        "(p50 training step)"
    )
    return 0
