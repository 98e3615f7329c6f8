"""`vand-ros bench eval`: how fast the comparison's closed-loop runs go, in simulated seconds per CPU second.

A `make results` is mostly closed-loop runs (evaluation.closed_loop: MuJoCo stepping, the node's
assembler, ONNX step and safety filter, in one process), so their throughput per core sets its wall time.
Side by side, interleaved run by run on one thread:

- policy: an untrained policy of the default size (GRU, H = 64; cost does not depend on the weights) in
  noise mode, the comparison's usual mode;
- script: the scripted demonstrator in the same closed loop, i.e. the simulation and the loop without the
  policy and the controller: the floor that any speed-up of the controller side can approach.

Throughput is simulated seconds / process CPU seconds (per core: the campaign runs one run per process
and core). Medians over `--repeats` runs of each behaviour.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from vand_ros import robot
from vand_ros.benchmarks import report, summarise


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=60.0, help="simulated seconds per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per behaviour and kind")
    parser.add_argument("--behaviours", nargs="+", default=list(robot.BEHAVIOURS))


def _throughput(model: Path | None, behaviour: str, ref: Any, seconds: float, seed: int) -> float:
    from vand_ros.evaluation.evaluate import run_one

    cpu = time.process_time()
    run_one(model, behaviour, "clean", ref, "noise" if model else None, seed, duration=seconds)
    return seconds / (time.process_time() - cpu)


def run(args: argparse.Namespace) -> int:
    import torch

    from vand_ros.evaluation.evaluate import reference_from_demonstrator
    from vand_ros.learning.export import export_untrained_policy
    from vand_ros.runtime.layout import default_layout

    torch.set_num_threads(1)
    refs = reference_from_demonstrator(args.behaviours, episodes=1)
    results: dict[str, Any] = {"seconds_per_run": args.seconds, "repeats": args.repeats, "behaviours": {}}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        model = export_untrained_policy(Path(tmp) / "bench.onnx", default_layout(), robot.RATES.control)
        for behaviour in args.behaviours:
            kinds: dict[str, list[float]] = {"policy": [], "script": []}
            for i in range(args.repeats):
                kinds["policy"].append(_throughput(model, behaviour, refs[behaviour], args.seconds, i))
                kinds["script"].append(_throughput(None, behaviour, refs[behaviour], args.seconds, i))
            stats = {k: summarise(v) for k, v in kinds.items()}
            ratio = stats["script"]["p50"] / stats["policy"]["p50"]
            results["behaviours"][behaviour] = {**stats, "script_over_policy_p50": ratio}
            rows.append({
                "behaviour": behaviour,
                "policy [sim s / CPU s]": stats["policy"]["p50"],
                "script [sim s / CPU s]": stats["script"]["p50"],
                "script / policy": ratio,
            })  # fmt: skip
    report("eval", results, rows)
    return 0
