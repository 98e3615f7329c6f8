"""`vand-ros demo` (`make demo`): the whole pipeline on the built-in simulation, from nothing.

    1. demonstrations   scripted demonstrators drive the MuJoCo robot; one rosbag2 per episode
    2. dataset          bags -> time-aligned episodes at the control rate (train/validation split)
    3. train            a VAND-regularised GRU policy
    4. export           one self-describing ONNX file
    5. robot run        sim_node + controller_node as separate processes over DDS (`vand-ros run`), one
                        run per behaviour, each recorded to a rosbag2 like a demonstration
    6. retrain          dataset from the old and the new bags, train and export again
    7. evaluate         both policies in closed loop (in-process, the node's code path), per behaviour
    8. report           OUT/report.md with the numbers, the training plots and a video of one run

`--quick` does every step at toy size in a few minutes; the default takes about 15-30 minutes on 2 CPU
cores. `--bags DIR` swaps in your own demonstrations (step 1 is skipped; the behaviours are the
instructions found in them). Everything lands in OUT (default runs/demo); a step whose output exists is
not redone, so an interrupted demo resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vand_ros import robot
from vand_ros.errors import VandError
from vand_ros.evaluation.report import pooled_gain

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Plan:
    """Sizes of one demo run."""

    episodes: int  # demonstrations per behaviour
    epochs: int  # maximum training epochs (0: TrainConfig's)
    robot_seconds: float  # wall (= sim) seconds of each DDS robot run
    eval_factor: float  # closed-loop runs last this x the longest demonstration
    smoke: bool
    # Recovery demonstrations per behaviour (`vand-ros demos --perturb dart+push`, other task parameters).
    # Measured (seeds 0-1, 60 s clean runs): 8 clean alone fail everything, as do 16 clean; 8 clean + 16
    # recovery make patrol succeed and wipe keep stroking at the demonstrated frequency. Clean
    # demonstrations alone teach the policy to copy its measured joints (vand_ros/simulation/perturb.py).
    recovery: int = 0
    patience: int = 0  # early-stopping patience (0: TrainConfig's)


FULL = Plan(episodes=8, epochs=0, robot_seconds=30.0, eval_factor=10.0, smoke=False, recovery=16)
QUICK = Plan(episodes=2, epochs=0, robot_seconds=8.0, eval_factor=1.0, smoke=True, recovery=1)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="output directory (default runs/demo)"
    )
    parser.add_argument("--quick", action="store_true", help="every step at toy size (a few minutes)")
    parser.add_argument(
        "--bags", type=Path, nargs="+", help="use these demonstration bags instead of generating"
    )
    parser.add_argument("--behaviours", nargs="+", choices=robot.BEHAVIOURS, default=list(robot.BEHAVIOURS))
    parser.add_argument(
        "--episodes",
        type=int,
        help="clean demonstrations per behaviour (default 8; quick 2), plus recovery ones (16; quick 1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of demonstrations, training and evaluation")
    parser.add_argument("--domain-id", type=int, help="ROS_DOMAIN_ID of the robot run (default: inherited)")


class Steps:
    """Numbered, timed progress lines."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.t0 = total, 0, time.perf_counter()
        self.times: dict[str, float] = {}

    def start(self, name: str) -> float:
        self.n += 1
        print(f"\n[{self.n}/{self.total}] {name}", flush=True)
        return time.perf_counter()

    def done(self, name: str, t0: float, note: str = "") -> None:
        self.times[name] = time.perf_counter() - t0
        print(f"      done in {self.times[name]:.1f} s{': ' + note if note else ''}", flush=True)


def _train(dataset_dir: Path, run_dir: Path, plan: Plan, seed: int) -> dict[str, Any]:
    """Train VAND with the package defaults (plus the plan's epochs); returns the run's summary."""
    summary = run_dir / "summary.json"
    if not summary.is_file():
        import torch

        from vand_ros.data.dataset import Dataset
        from vand_ros.learning.config import TrainConfig
        from vand_ros.learning.train import train

        torch.set_num_threads(1)  # measured fastest for this model size on small CPUs
        cfg = TrainConfig(
            regulariser="vand",
            seed=seed,
            max_epochs=plan.epochs or TrainConfig.max_epochs,
            patience=plan.patience or TrainConfig.patience,
        )
        if plan.smoke:
            cfg = cfg.smoke_version()
        train(Dataset.load(dataset_dir), cfg, run_dir, progress=True)
    return dict(json.loads(summary.read_text(encoding="utf-8")))


def _export(run_dir: Path, out: Path) -> dict[str, Any]:
    if not out.is_file():
        from vand_ros.learning.checkpoint import CHECKPOINT_NAME, Checkpoint
        from vand_ros.learning.export import export_policy

        export_policy(Checkpoint.load(run_dir / CHECKPOINT_NAME), out)
    from vand_ros.runtime.policy import PolicyRuntime

    card = PolicyRuntime(out).card
    reg = card.raw["regulariser"]
    return {"mode": card.default_mode, "sigma": reg.get("sigma", {}), "rho": reg.get("rho", {})}


def _dataset(bags: list[Path], out: Path, cache: Path) -> dict[str, Any]:
    from vand_ros.data.builder import build_dataset
    from vand_ros.data.config import DataConfig
    from vand_ros.data.dataset import Dataset

    if not (out / "dataset.json").is_file():
        dataset, _ = build_dataset(bags, DataConfig(), cache_dir=cache, progress=True)
        dataset.save(out)
    ds = Dataset.load(out)
    seconds = sum(len(e) for e in ds.episodes) / ds.control_rate
    used = [r["bag"] for r in ds.summary.get("per_bag", []) if r["status"] == "ok"]
    skipped = ds.summary.get("skipped", [])
    return {
        "train": len(ds.train),
        "val": len(ds.val),
        "seconds": seconds,
        "bags_used": used,
        "skipped": skipped,
    }


def _robot_run(
    model: Path, behaviour: str, seconds: float, out: Path, seed: int, env: dict[str, str]
) -> Path:
    """sim_node + controller_node (+ recorder) over DDS via `vand-ros run`; the recorded bag."""
    from vand_ros.evaluation.conditions import scenario

    bag = out / f"{behaviour}_policy"
    if (bag / "metadata.yaml").is_file():
        return bag
    if bag.exists():
        shutil.rmtree(bag)  # an interrupted recording
    start = scenario("clean", behaviour, seed, seconds).start_base
    cmd = [
        str(BIN / "vand-ros"), "run", "--model", str(model), "--sim", "--instruction", behaviour,
        "--duration", str(seconds), "--record", str(bag), "--initial-pose", *(f"{v:.4f}" for v in start),
    ]  # fmt: skip
    log = out / f"{behaviour}_policy.log"
    with log.open("wb") as f:
        code = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, check=False).returncode
    if code != 0 or not (bag / "metadata.yaml").is_file():
        raise VandError(f"the robot run for {behaviour} failed (status {code}); see {log}")
    return bag


def _evaluate(
    model: Path, refs: dict[str, Any], behaviours: list[str], plan: Plan, out: Path
) -> list[dict[str, Any]]:
    from vand_ros.evaluation.evaluate import evaluate_model
    from vand_ros.evaluation.metrics import SuccessConfig

    cfg = SuccessConfig(duration_factor=plan.eval_factor)
    return evaluate_model(
        model,
        refs,
        behaviours,
        conditions=("clean",),
        cfg=cfg,
        out_dir=out,
        progress=lambda s: print("      " + s),
    )


def _score_bags(bags: list[Path], refs: dict[str, Any]) -> list[dict[str, Any]]:
    """Metrics of the DDS robot runs, measured from their bags like a demonstration."""
    from vand_ros.evaluation.closed_loop import trajectory_from_bag
    from vand_ros.evaluation.metrics import SuccessConfig, evaluate_trajectory

    rows = []
    for bag in bags:
        behaviour = bag.name.removesuffix("_policy")
        m = evaluate_trajectory(trajectory_from_bag(bag), refs[behaviour], SuccessConfig())
        rows.append(
            {"behaviour": behaviour, "success": m.success, "failures": m.failures, "metrics": m.values}
        )
    return rows


def run(args: argparse.Namespace) -> int:
    plan = QUICK if args.quick else FULL
    if args.episodes:
        plan = replace(plan, episodes=args.episodes, recovery=2 * args.episodes if plan.recovery else 0)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if args.domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(args.domain_id)
    behaviours = list(args.behaviours)
    steps = Steps(8)
    facts: dict[str, Any] = {"plan": plan.__dict__, "behaviours": behaviours, "seed": args.seed}

    t = steps.start("demonstrations: scripted demonstrators drive the simulated robot, one rosbag2 each")
    train_bags: list[Path] = []  # beyond demo_bags: recovery demonstrations (trained on, not the reference)
    if args.bags:
        demo_bags = [Path(p) for p in args.bags]
        steps.done("demonstrations", t, f"using your bags {', '.join(map(str, demo_bags))}")
    else:
        from vand_ros.simulation.cli_demos import write_episode
        from vand_ros.simulation.perturb import Perturbation

        demo_dir, recovery_dir = out / "bags" / "demos", out / "bags" / "recovery"
        perturb = Perturbation.preset("dart+push")
        n = 0
        for behaviour in behaviours:
            # Recovery episodes continue the episode index: other task parameters than the clean ones.
            todo: list[tuple[Path, int, Perturbation | None]] = [
                (demo_dir, ep, None) for ep in range(plan.episodes)
            ]
            todo += [(recovery_dir, plan.episodes + i, perturb) for i in range(plan.recovery)]
            for folder, ep, how in todo:
                path = folder / f"{behaviour}_{ep:03d}"
                if not (path / "metadata.yaml").is_file():
                    if path.exists():
                        shutil.rmtree(path)
                    write_episode(behaviour, args.seed, ep, path, perturbation=how)
                n += 1
        demo_bags = [demo_dir]
        if plan.recovery:
            train_bags.append(recovery_dir)
        steps.done("demonstrations", t, f"{n} bags in {demo_dir.parent} ({plan.recovery} recovery each)")

    t = steps.start("dataset: bags -> episodes at the control rate")
    facts["dataset"] = _dataset([*demo_bags, *train_bags], out / "dataset", out / "cache")
    d = facts["dataset"]
    steps.done("dataset", t, f"{d['train']} training / {d['val']} validation episodes, {d['seconds']:.0f} s")

    t = steps.start("train: VAND-regularised GRU policy")
    facts["train"] = _train(out / "dataset", out / "train", plan, args.seed)
    steps.done("train", t, f"best validation loss {facts['train']['best_val_loss']:.3f}")

    t = steps.start("export: one ONNX file with its model card")
    model = out / "policy.onnx"
    facts["export"] = _export(out / "train", model)
    steps.done("export", t, f"{model} (execution mode {facts['export']['mode']})")

    t = steps.start("robot run: sim_node + controller_node over DDS, recorded to rosbag2")
    run_dir = out / "bags" / "robot_runs"
    run_dir.mkdir(parents=True, exist_ok=True)
    run_bags = []
    for behaviour in behaviours:
        run_bags.append(_robot_run(model, behaviour, plan.robot_seconds, run_dir, args.seed, env))
        print(f"      {behaviour}: {run_bags[-1]}", flush=True)
    steps.done("robot run", t, f"{len(run_bags)} bags in {run_dir}")

    t = steps.start("retrain: dataset from the demonstrations and the recorded runs")
    facts["dataset2"] = _dataset([*demo_bags, *train_bags, run_dir], out / "dataset2", out / "cache")
    facts["train2"] = _train(out / "dataset2", out / "train2", plan, args.seed)
    model2 = out / "policy_retrained.onnx"
    facts["export2"] = _export(out / "train2", model2)
    steps.done("retrain", t, f"{model2}, best validation loss {facts['train2']['best_val_loss']:.3f}")

    t = steps.start("evaluate: closed loop in the simulation, per behaviour")
    from vand_ros.evaluation.evaluate import reference_from_bags

    refs = reference_from_bags(demo_bags)
    facts["eval"] = _evaluate(model, refs, behaviours, plan, out / "eval" / "policy")
    facts["eval2"] = _evaluate(model2, refs, behaviours, plan, out / "eval" / "policy_retrained")
    facts["robot_runs"] = _score_bags(run_bags, refs)
    steps.done("evaluate", t)

    t = steps.start("report")
    facts["times"] = steps.times
    report = write_report(out, facts)
    steps.done("report", t, str(report))
    print(f"\nDone in {time.perf_counter() - steps.t0:.0f} s. Report: {report}")
    return 0


KEY_METRICS = (
    "amp_rel_mean", "freq_rel_mean", "drift", "shake",  # periodic: relative to the demonstrations
    "stations_in_order", "time_rel", "base_excursion",  # sequential
    "hold_fraction",
)  # fmt: skip


def _table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| behaviour | mode | success | failures | key metrics |", "|---|---|---|---|---|"]
    for r in rows:
        m = r["metrics"]
        metrics = ", ".join(f"{k} {m[k]:.3g}" for k in KEY_METRICS if isinstance(m.get(k), (int, float)))
        lines.append(
            f"| {r['behaviour']} | {r.get('mode', 'node')} | {'yes' if r['success'] else 'no'} | "
            f"{', '.join(r['failures']) or '-'} | {metrics} |"
        )
    return lines


def write_report(out: Path, facts: dict[str, Any]) -> Path:
    plan, d, tr, ex = facts["plan"], facts["dataset"], facts["train"], facts["export"]
    sigma, rho = ex.get("sigma", {}), ex.get("rho", {})
    lines = [
        "# vand_ros demo report",
        "",
        f"Behaviours: {', '.join(facts['behaviours'])}. Seed {facts['seed']}. Plan: {plan}.",
        "",
        "## Data and training",
        "",
        f"- Demonstrations: {d['train']} training and {d['val']} validation episodes, "
        f"{d['seconds']:.0f} s in all.",
        f"- VAND GRU: {tr['epochs']} epochs, best validation loss {tr['best_val_loss']:.4f} "
        f"(epoch {tr['best_epoch']}), validation MSE {tr['best_val_mse']:.4f} (normalised units).",
        "- Copycat diagnostic (validation episodes; 1 = the policy reproduces the demonstrated offset of "
        "the target from the measured joints, 0 = it copies the joints), pooled over the joints: "
        + ", ".join(
            f"{b} {pooled_gain(j):.2f}" for b, j in tr["copycat"].items() if b != "all" and "/" not in b
        )  # per behaviour; the rows per episode kind are in the run's summary.json
        + ".",
        f"- Learned noise sigma: mean {sigma.get('mean', float('nan')):.4f} "
        f"(min {sigma.get('min', float('nan')):.4f}, max {sigma.get('max', float('nan')):.4f}); "
        f"dropout rho: mean {rho.get('mean', float('nan')):.4f}. Execution mode: {ex['mode']}.",
        f"- Retrained on demonstrations + robot runs ({facts['dataset2']['train']} training episodes): "
        f"best validation loss {facts['train2']['best_val_loss']:.4f}.",
        "",
        "![losses](train/losses.png) ![sigma and rho](train/sigma_rho.png)",
        "",
        "![open loop](train/open_loop.png)",
        "",
        f"## Closed loop, first policy (in-process, {plan['eval_factor']:g}x the longest demonstration)",
        "",
        *_table(facts["eval"]),
        "",
        "## Closed loop, retrained policy",
        "",
        *_table(facts["eval2"]),
        "",
        f"## Robot runs over DDS (sim_node + controller_node, {plan['robot_seconds']:g} s each, "
        "scored from their bags)",
        "",
        *_table(facts["robot_runs"]),
        "",
        "## Step times [s]",
        "",
        "| step | seconds |",
        "|---|---|",
        *(f"| {k} | {v:.1f} |" for k, v in facts["times"].items()),
        "",
    ]
    (out / "facts.json").write_text(json.dumps(facts, indent=1, default=str), encoding="utf-8")
    report = out / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report
