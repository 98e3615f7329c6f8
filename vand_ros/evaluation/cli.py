"""`vand-ros evaluate --bags DIR --out DIR`: train each regulariser on the same bags, run it in closed loop.

The folder layout and the jobs are vand_ros.evaluation.campaign's; the report is evaluation.report's.

1. OUT/dataset and OUT/reference.json, once (`--train-bags` train but are not the reference).
2. `--tune`: each regulariser's settings of tuning.GRID trained once and run on validation scenarios;
   OUT/report_validation.md and OUT/tuning.md say what was tried and chosen; the table uses the choice.
3. Each regulariser x training seed: train, export, run every behaviour x condition x supported mode.
4. OUT/results.json, OUT/report.md, OUT/*.png; `--videos`: OUT/best.gif and OUT/worst.gif.

`--report-only` regroups every run stored in OUT (several invocations) into the report.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from vand_ros import robot
from vand_ros.errors import VandError
from vand_ros.evaluation import conditions as C
from vand_ros.evaluation.campaign import log
from vand_ros.evaluation.metrics import SuccessConfig, load_references


def configure(parser: argparse.ArgumentParser) -> None:
    from vand_ros.learning.config import REGULARISERS

    parser.add_argument(
        "--bags",
        nargs="+",
        help="demonstration bags (bag folders or folders of them); runs are judged against what they show",
    )
    parser.add_argument(
        "--train-bags",
        nargs="+",
        default=[],
        help="more bags for training only (e.g. recovery demonstrations): not measured as the reference",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory (resumable)")
    parser.add_argument("--regularisers", nargs="+", default=list(REGULARISERS), choices=REGULARISERS)
    parser.add_argument("--behaviours", nargs="+", default=list(robot.BEHAVIOURS), choices=robot.BEHAVIOURS)
    parser.add_argument(
        "--conditions",
        nargs="+",
        default=list(C.COMPARISON_CONDITIONS),
        choices=C.CONDITIONS,
        help=f"default: {' '.join(C.COMPARISON_CONDITIONS)} ('latency': commands applied "
        f"{C.LATENCY * 1000:.0f} ms after their tick, as over DDS)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per regulariser")
    parser.add_argument(
        "--modes", nargs="+", help="execution modes (default: every mode each model supports)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke-sized training and 2x-demo runs")
    parser.add_argument(
        "--duration-factor", type=float, help="run length in demonstration lengths (default 10)"
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="[REG:]KEY=VALUE",
        help="training config overrides, for every regulariser or only REG (e.g. vand:beta=0.2 "
        "gal:gal_p_h=0.1); a model trained with overrides is named after them",
    )
    parser.add_argument(
        "--validation",
        action="store_true",
        help="run on validation scenarios (other starts, pushes and noise than the test runs) and write "
        "report_validation.md: for tuning, so the test runs never choose a setting",
    )
    parser.add_argument("--epochs", type=int, help="maximum training epochs")
    parser.add_argument(
        "--save-trajectories", action="store_true", help="also keep each run's trajectory (.npz)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for training")
    parser.add_argument(
        "--tune",
        action="store_true",
        help="first choose each regulariser's setting (vand_ros.evaluation.tuning.GRID) on validation "
        "scenarios, then run the table with the chosen settings",
    )
    parser.add_argument("--jobs", type=int, default=1, help="models trained and run in parallel (processes)")
    parser.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local: a process pool of --jobs; ray: every training and run as a task on a Ray cluster",
    )
    parser.add_argument(
        "--address", default="auto", help="with --backend ray: the cluster (auto, or HOST:PORT of its head)"
    )
    parser.add_argument(
        "--videos",
        action="store_true",
        help="re-run the best and the worst run and write the last 30 s of each as best.gif / worst.gif",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train and run nothing: regroup every run stored in OUT (from several invocations) into "
        "report.md, or with --validation into report_validation.md and tuning.md (the chosen settings)",
    )


def run(args: argparse.Namespace) -> int:
    from vand_ros.evaluation.backends import LocalBackend, RayBackend
    from vand_ros.evaluation.campaign import Campaign, Job, chosen_overrides, parse_overrides, tuning_jobs
    from vand_ros.evaluation.report import append_videos, write_report
    from vand_ros.evaluation.tuning import VALIDATION_CONDITIONS, VALIDATION_DURATION_FACTOR, write_tuning

    out: Path = args.out
    cfg = SuccessConfig()
    if args.duration_factor is not None:
        cfg = dataclasses.replace(cfg, duration_factor=args.duration_factor)
    elif args.quick:
        cfg = dataclasses.replace(cfg, duration_factor=2.0)
    if args.seeds < 1 or args.jobs < 1:
        raise VandError(f"--seeds {args.seeds} --jobs {args.jobs}: expected at least 1 each")
    if args.report_only:
        return _report_only(out, cfg, args.validation, args.videos)
    if not args.bags:
        raise VandError("--bags: give the demonstration bags (or --report-only)")
    train: dict[str, Any] = {"smoke": bool(args.quick)}
    if args.epochs is not None:
        train["max_epochs"] = args.epochs
    campaign = Campaign(
        out, tuple(args.behaviours), tuple(args.conditions), tuple(args.modes) if args.modes else None,
        cfg, train, args.threads, args.save_trajectories,
    )  # fmt: skip
    refs = campaign.prepare(args.bags, args.train_bags)
    behaviours = [b for b in args.behaviours if b in refs]
    if not behaviours:
        raise VandError(f"the bags hold none of the behaviours {args.behaviours}; record demonstrations")
    if len(behaviours) < len(args.behaviours):
        log(f"no demonstrations of {sorted(set(args.behaviours) - set(behaviours))}: left out")
    overrides = parse_overrides(args.set, args.regularisers)
    backend = RayBackend(args.address) if args.backend == "ray" else LocalBackend(args.jobs)

    if args.tune:
        factor = min(VALIDATION_DURATION_FACTOR, cfg.duration_factor)
        vcfg = dataclasses.replace(cfg, duration_factor=factor)
        tuning = dataclasses.replace(campaign, conditions=VALIDATION_CONDITIONS, modes=None, cfg=vcfg)
        jobs = tuning_jobs(args.regularisers, overrides)
        log(f"tune: {len(jobs)} settings on validation scenarios")
        vruns, vcards = tuning.run(jobs, args.jobs, backend)
        write_report(vruns, vcards, refs, vcfg, out, list(VALIDATION_CONDITIONS), behaviours, validation=True)
        log(f"tune: wrote {write_tuning(vruns, out)}")
        overrides = chosen_overrides(vruns, jobs)

    jobs = [
        Job(reg, tuple(sorted(overrides[reg].items())), seed, args.validation)
        for reg in args.regularisers
        for seed in range(args.seeds)
    ]
    runs, cards = campaign.run(jobs, args.jobs, backend)
    suffix = "_validation" if args.validation else ""
    (out / f"results{suffix}.json").write_text(
        json.dumps({"config": cfg.to_dict(), "cards": cards, "runs": runs}, indent=1), encoding="utf-8"
    )
    report = write_report(
        runs, cards, refs, cfg, out, args.conditions, behaviours, validation=args.validation
    )
    if args.videos:
        append_videos(report, runs, out, refs)
    log(f"wrote {report} and {out / f'results{suffix}.json'}")
    return 0


def _report_only(out: Path, cfg: SuccessConfig, validation: bool, videos: bool) -> int:
    from vand_ros.evaluation.report import append_videos, card_summary, write_report
    from vand_ros.evaluation.tuning import load_runs, write_tuning

    runs = load_runs(out, validation)
    if not runs:
        raise VandError(f"no stored {'validation ' if validation else ''}runs under {out / 'results'}")
    if not (out / "reference.json").is_file():
        raise VandError(f"{out / 'reference.json'} is missing: run evaluate with --bags first")
    refs = load_references(out / "reference.json")
    cards = {r["model_name"]: card_summary(out / "models" / f"{r['model_name']}.onnx") for r in runs}
    cfg = dataclasses.replace(
        cfg, duration_factor=max(r["duration"] / refs[r["behaviour"]].demo_duration for r in runs)
    )
    conditions = [c for c in C.CONDITIONS if any(r["condition"] == c for r in runs)]
    behaviours = [b for b in robot.BEHAVIOURS if any(r["behaviour"] == b for r in runs)]
    report = write_report(runs, cards, refs, cfg, out, conditions, behaviours, validation=validation)
    log(f"wrote {report} from {len(runs)} stored runs")
    if videos:
        log(f"wrote {', '.join(map(str, append_videos(report, runs, out, refs)))}")
    if validation:
        log(f"wrote {write_tuning(runs, out)}")
    return 0
