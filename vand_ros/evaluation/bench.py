"""`vand-ros bench {sim,data,train,node,eval}`: each layer owns its benchmark (its module `bench*`)."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {
    "sim": ("vand_ros.simulation.bench", "simulation real-time factor and message rates"),
    "data": ("vand_ros.data.bench", "dataset builder throughput vs a bare rosbags read loop"),
    "train": ("vand_ros.learning.bench", "training step time per regulariser; ONNX step latency"),
    "node": ("vand_ros.evaluation.bench_node", "controller tick compute and loop period error"),
    "eval": ("vand_ros.evaluation.bench_eval", "closed-loop runs: simulated seconds per CPU second"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, (module_name, summary) in BENCHMARKS.items():
        p = sub.add_parser(name, help=summary, description=summary)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            p.set_defaults(bench_module=None)
            continue
        module.configure(p)
        p.set_defaults(bench_module=module)


def run(args: argparse.Namespace) -> int:
    if args.bench_module is None:
        print(f"vand-ros bench {args.benchmark}: not part of this version yet")
        return 2
    return int(args.bench_module.run(args))
