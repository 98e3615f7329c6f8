"""Data-parallel training with torchrun: 2 CPU processes (gloo) against one process on the same global batch.

Every rank draws the same shuffle and the same VAND noise for the whole global batch and the gradients are
summed across ranks, so the two runs take the same optimiser steps; only floating-point summation order
differs. Tolerance: 1e-5 relative on every epoch's training and validation loss (measured: about 1e-8 on
the training loss, identical validation losses). The batch size (3) does not divide the training episodes,
so ranks get unequal shares and the last batch leaves one rank without episodes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from parity import onnx_rollout_error

from vand_ros.learning.synthetic import synthetic_dataset

BIN = Path(sys.executable).parent
TRAIN = ["--hidden", "16", "--epochs", "3", "--batch-size", "3", "--seq-len", "32", "--quiet",
         "--set", "beta_warmup=0"]  # fmt: skip


def _train(ds: Path, out: Path, *extra: str) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(BIN / "vand-ros"), "train", str(ds), "--out", str(out), *TRAIN, *extra],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return list(json.loads((out / "history.json").read_text()))


@pytest.mark.slow
def test_two_processes_match_one_on_the_same_global_batch(tmp_path: Path) -> None:
    ds = synthetic_dataset("periodic", n=9, steps=120).save(tmp_path / "ds")
    single = _train(ds, tmp_path / "one", "--threads", "1")
    double = _train(ds, tmp_path / "two", "--nproc", "2")
    assert len(single) == len(double) == 3
    for a, b in zip(single, double, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)
        assert b["steps"] == a["steps"]
    assert single[-1]["train_loss"] < single[0]["train_loss"], "it trains"
    # Rank 0 alone wrote the run directory; the exported model is as exact as any other.
    assert not list((tmp_path / "two").glob("rank*"))
    from vand_ros.learning.checkpoint import Checkpoint
    from vand_ros.learning.export import export_policy

    ckpt = Checkpoint.load(tmp_path / "two" / "checkpoint.pt")
    export_policy(ckpt, tmp_path / "two.onnx")
    for mode in ("deterministic", "noise"):
        assert onnx_rollout_error(ckpt, tmp_path / "two.onnx", mode) < 1e-5, mode


def test_cuda_ranks_skip_cleanly_without_a_gpu(tmp_path: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here; with one, 2 ranks train with NCCL")
    ds = synthetic_dataset("periodic", n=9, steps=120).save(tmp_path / "ds")
    history = _train(ds, tmp_path / "cuda", "--nproc", "2", "--device", "cuda")
    assert len(history) == 3
