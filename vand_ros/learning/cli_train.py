"""`vand-ros train DATASET --regulariser NAME --out RUN_DIR`: train a policy (see vand_ros.learning.train)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from vand_ros.errors import VandError
from vand_ros.learning.config import CELLS, REGULARISERS, TrainConfig

# Common fields with their own flags; every other config field is reachable with --set FIELD=VALUE.
FLAGS = {
    "cell": "cell",
    "hidden": "hidden_size",
    "layers": "num_layers",
    "beta": "beta",
    "epochs": "max_epochs",
    "patience": "patience",
    "seq_len": "seq_len",
    "batch_size": "batch_size",
    "lr": "lr",
    "execution_mode": "execution_mode",
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="dataset directory (from `vand-ros dataset`)")
    parser.add_argument("--regulariser", choices=REGULARISERS, default="vand", help="default: vand")
    parser.add_argument("--out", required=True, help="run directory (checkpoint, plots, TensorBoard logs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--smoke", action="store_true", help="a tiny run that finishes in seconds")
    parser.add_argument("--cell", choices=CELLS)
    parser.add_argument("--hidden", type=int, help="hidden units per layer (default 64)")
    parser.add_argument("--layers", type=int, choices=(1, 2))
    parser.add_argument("--beta", type=float, help="VAND regulariser weight (default 0.05)")
    parser.add_argument("--epochs", type=int, help="maximum epochs (default 400)")
    parser.add_argument("--patience", type=int, help="early-stopping patience in epochs (default 60)")
    parser.add_argument("--seq-len", type=int, help="truncated-BPTT window in steps (default 64)")
    parser.add_argument("--batch-size", type=int, help="episodes per batch (default 16)")
    parser.add_argument("--lr", type=float, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--execution-mode", help="execution mode recorded as the default on the card")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any TrainConfig field, e.g. --set beta_warmup=0 --set gal_p_x=0.1 (repeatable)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0 = torch's default; 1 is often fastest)"
    )
    parser.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="data-parallel processes here (starts torchrun; gloo on CPU, NCCL with --device cuda)",
    )


def _parse_value(field: dataclasses.Field[Any], text: str) -> Any:
    kind: Any = type(field.default)
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise VandError(f"--set {field.name}: expected true/false, found {text!r}")
        return text.lower() in ("true", "1")
    try:
        return kind(text)
    except ValueError:
        raise VandError(f"--set {field.name}: expected a {kind.__name__}, found {text!r}") from None


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values: dict[str, Any] = {"regulariser": args.regulariser, "seed": args.seed, "device": args.device}
    for flag, name in FLAGS.items():
        if getattr(args, flag) is not None:
            values[name] = getattr(args, flag)
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep or key not in fields:
            raise VandError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {sorted(fields)}")
        values[key] = _parse_value(fields[key], text)
    cfg = TrainConfig(**values)
    return cfg.smoke_version() if args.smoke else cfg


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """The torchrun command line that runs `vand-ros train ARGV` in `nproc` processes on this machine."""
    exe = shutil.which("vand-ros") or str(Path(sys.executable).parent / "vand-ros")
    # Without --nproc (the ranks must not start torchrun again, and torchrun would take it for its own).
    argv = [a for i, a in enumerate(argv) if not a.startswith("--nproc") and argv[i - 1 : i] != ["--nproc"]]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            exe, "train", *argv]  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import torch

    from vand_ros.data.dataset import Dataset
    from vand_ros.learning import distributed
    from vand_ros.learning.copycat import table
    from vand_ros.learning.train import train

    cfg = config_from_args(args)
    if args.nproc < 1:
        raise VandError(f"--nproc {args.nproc}: expected 1 or more processes")
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:  # not yet under torchrun: start it
        return subprocess.call(torchrun_command(args.nproc, args.argv))
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = Dataset.load(args.dataset)
    dist = distributed.from_environment(cfg.device)
    try:
        result = train(dataset, cfg, args.out, progress=not args.quiet, dist=dist)
    finally:
        distributed.shutdown()
    if not dist.main:
        return 0
    summary = json.loads((result.run_dir / "summary.json").read_text(encoding="utf-8"))
    print(
        "copycat diagnostic on the validation episodes (learning.diagnostics; gain 1 = reproduces the "
        "demonstrated offset from the measured joint, 0 = copies the joint):",
        file=sys.stderr,
    )
    print(table(summary["copycat"]), file=sys.stderr)
    print(
        json.dumps(
            {
                "run_dir": str(result.run_dir),
                "regulariser": cfg.regulariser,
                "cell": cfg.cell,
                "epochs": result.epochs,
                "best_epoch": result.best_epoch,
                "best_val_loss": result.best_val_loss,
                "best_val_mse": result.history[result.best_epoch - 1]["val_mse"],
                "sigma_mean": result.history[result.best_epoch - 1]["sigma_mean"],
                "rho_mean": result.history[result.best_epoch - 1]["rho_mean"],
            }
        )
    )
    return 0
