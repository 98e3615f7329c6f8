"""`vand-ros export RUN_DIR --out policy.onnx`: the single-step ONNX graph with its model card."""

from __future__ import annotations

import argparse
import json

from vand_ros.runtime.action import ENSEMBLE_WINDOWS, EXECUTIONS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="run directory from `vand-ros train` (or its checkpoint.pt)")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    parser.add_argument("--mode", help="default execution mode on the card (default: the regulariser's)")
    parser.add_argument("--dynamo", action="store_true", help="use torch's dynamo exporter (opset 18)")
    parser.add_argument(
        "--execution",
        choices=EXECUTIONS,
        help="how a chunked policy picks this tick's command (default: as trained); no retraining needed",
    )
    parser.add_argument(
        "--ensemble-decay",
        type=float,
        help="temporal-ensembling weight decay [1/tick] (< 0: older predictions weigh more)",
    )
    parser.add_argument(
        "--ensemble-window",
        choices=ENSEMBLE_WINDOWS,
        help="temporal-ensembling weight over a prediction's age (hann: small for the newest and oldest)",
    )
    parser.add_argument(
        "--ensemble-horizon",
        type=int,
        help="temporal ensembling over the newest H predictions for a tick (1..chunk; 0 = all)",
    )
    parser.add_argument(
        "--base-deadband", type=float, help="linear base commands below this [m/s] are sent as 0"
    )
    parser.add_argument(
        "--base-deadband-angular", type=float, help="angular base commands below this [rad/s] are sent as 0"
    )


def run(args: argparse.Namespace) -> int:
    from vand_ros.learning.checkpoint import Checkpoint
    from vand_ros.learning.export import export_policy

    ckpt = Checkpoint.load(args.run_dir)
    execution = {
        "chunk_execution": args.execution,
        "ensemble_decay": args.ensemble_decay,
        "ensemble_window": args.ensemble_window,
        "ensemble_horizon": args.ensemble_horizon,
        "base_deadband": args.base_deadband,
        "base_deadband_angular": args.base_deadband_angular,
    }
    ckpt = ckpt.with_execution(**{k: v for k, v in execution.items() if v is not None})
    card = export_policy(ckpt, args.out, mode=args.mode, dynamo=args.dynamo)
    reg = card.raw["regulariser"]
    print(
        json.dumps(
            {
                "onnx": args.out,
                "regulariser": reg["name"],
                "cell": reg["cell"],
                "default_mode": card.default_mode,
                "supported_modes": sorted(card.modes),
                "inputs": [[t.name, list(t.shape)] for t in card.inputs],
                "outputs": [[t.name, list(t.shape)] for t in card.outputs],
                "sigma_mean": reg["sigma"]["mean"],
                "rho_mean": reg["rho"]["mean"],
                "best_val_loss": card.raw["training"]["best_val_loss"],
            }
        )
    )
    return 0
