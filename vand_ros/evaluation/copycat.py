"""`vand-ros copycat MODEL.onnx --dataset DIR`: the copycat diagnostic of an exported graph, as it ships.

The diagnostic a training run prints and keeps (learning.diagnostics) is computed with the execution the
model was trained with; an export may change how the graph turns its predictions into the command (a
chunk's first command, or a temporal ensemble of chunks: learning.checkpoint.EXECUTION_FIELDS), and the
card then carries the training run's number, not the shipped graph's. This command steps the ONNX graph
itself (onnxruntime, no torch) over the dataset's held-out episodes, from a reset state per episode, in
one execution mode (default deterministic), and reports the same statistics: per behaviour and arm joint,
the command's error next to "copy the measured joint" and "repeat the last target", and the gain of the
command's offset from the measured joint on the demonstrated one (1 = reproduces it, 0 = copies the joint).

Where the graph carries its previous command as an input (action representation "previous", joint_input
"command"), it sees its own commands here, not the demonstrated ones the training diagnostic feeds it.

    vand-ros copycat models/policy.onnx --dataset data/ds [--split val] [--mode MODE] [--json out.json]

Prints the table, then one JSON line: {"model", "mode", "episodes", "wipe_stroke_gain": {joint: gain},
"wipe_stroke_gain_by_kind": {episode kind: {joint: gain}} (where the wipe's episodes are of several kinds:
clean and recovery demonstrations, from the bags' metadata), "copycat": {key: {joint: {...}}}}.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from vand_ros.data.dataset import Dataset, Episode, check_widths
from vand_ros.errors import VandError
from vand_ros.learning.copycat import copycat_stats, table
from vand_ros.runtime.policy import PolicyRuntime

SPLITS = ("val", "train", "all")
WIPE_STROKE_JOINTS = ("arm_shoulder_pan", "arm_elbow")  # the joints that carry the wipe's stroke


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="exported ONNX policy")
    parser.add_argument(
        "--dataset",
        required=True,
        help="dataset directory (`vand-ros dataset`): the one the model was trained on",
    )
    parser.add_argument("--split", choices=SPLITS, default="val", help="which episodes (default: held out)")
    parser.add_argument(
        "--mode", default="deterministic", help="execution mode (default: deterministic, without draws)"
    )
    parser.add_argument("--json", help="also write the result to this file")


def graph_commands(runtime: PolicyRuntime, episode: Episode) -> np.ndarray:
    """The commands (T, A) the graph sends on the episode's observations, from a reset state."""
    runtime.reset()
    return np.stack([runtime.step(obs) for obs in episode.obs]).astype(np.float64)


def diagnose(runtime: PolicyRuntime, episodes: list[Episode]) -> dict[str, Any]:
    """learning.copycat statistics of the graph over `episodes` (of the model's layout: data.dataset)."""
    if not episodes:
        raise VandError("no episodes to diagnose; choose another --split or record more demonstrations")
    check_widths(runtime.layout, episodes)
    commands = [graph_commands(runtime, ep) for ep in episodes]
    return copycat_stats(episodes, commands, list(runtime.layout.joint_names))


def run(args: argparse.Namespace) -> int:
    dataset = Dataset.load(args.dataset)
    runtime = PolicyRuntime(args.model, mode=args.mode)
    if dataset.layout != runtime.layout:
        raise VandError(
            f"dataset {args.dataset} was built with another layout than model {args.model} (joints, "
            "instructions, features or base axes differ); build the dataset with the model's configuration"
        )
    if not math.isclose(dataset.control_rate, runtime.card.control_rate, rel_tol=1e-6):
        raise VandError(
            f"dataset {args.dataset} is sampled at {dataset.control_rate} Hz, model {args.model} was trained "
            f"at {runtime.card.control_rate} Hz; build the dataset at the model's rate"
        )
    episodes = {"val": dataset.val, "train": dataset.train, "all": [*dataset.train, *dataset.val]}[args.split]
    diag = diagnose(runtime, list(episodes))
    print(table(diag), file=sys.stderr)
    wipe = diag.get("wipe", {})
    result = {
        "model": str(args.model),
        "mode": runtime.mode,
        "action": runtime.card.action.label,
        "episodes": len(episodes),
        "wipe_stroke_gain": {j: wipe[j]["gain"] for j in WIPE_STROKE_JOINTS if j in wipe},
        "wipe_stroke_gain_by_kind": {
            key.split("/", 1)[1]: {j: joints[j]["gain"] for j in WIPE_STROKE_JOINTS if j in joints}
            for key, joints in diag.items()
            if key.startswith("wipe/")
        },
        "copycat": diag,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "copycat"}))
    return 0
