"""`vand-ros evaluate --bags DIR --out DIR`: train each regulariser on the same bags, run it in closed loop.

Steps, each resumable (a finished step's output in OUT is reused, not redone):
1. OUT/dataset: the dataset built once from the bags; OUT/reference.json: what the demonstrations did
   (measured from the bags with vand_ros.evaluation.metrics).
2. OUT/runs/<reg>_s<seed>: training (vand_ros.learning.train; `--quick`: the smoke-sized config);
   OUT/models/<reg>_s<seed>.onnx: the export.
3. OUT/results/<reg>_s<seed>/<behaviour>/<condition>/<mode>_s<seed>.json: one closed-loop run per
   behaviour x condition x execution mode the model supports, in process without DDS
   (vand_ros.evaluation.closed_loop, the node's assembler, tick logic, runtime and safety filter).
4. OUT/results.json (every run), OUT/report.md (tables regulariser/mode x behaviour per condition: success
   rate mean +- std over seeds; learned sigma/rho from the cards), OUT/*.png plots.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from vand_ros import robot
from vand_ros.errors import VandError
from vand_ros.evaluation import conditions as C
from vand_ros.evaluation.metrics import SuccessConfig, load_references, save_references


def configure(parser: argparse.ArgumentParser) -> None:
    from vand_ros.learning.config import REGULARISERS

    parser.add_argument(
        "--bags",
        nargs="+",
        help="demonstration bags (directories or folders); the reference runs are judged by",
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
    parser.add_argument("--conditions", nargs="+", default=list(C.CONDITIONS), choices=C.CONDITIONS)
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per regulariser")
    parser.add_argument(
        "--modes", nargs="+", help="execution modes (default: every mode each model supports)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke-sized training and 2x-demo runs")
    parser.add_argument(
        "--duration-factor", type=float, help="run length in demonstration lengths (default 10)"
    )
    parser.add_argument("--beta", type=float, help="VAND beta (default: the training config's)")
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
        "--videos",
        action="store_true",
        help="with --report-only: re-run the best and the worst run and write the last 30 s of each as "
        "best.gif / worst.gif",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train and run nothing: regroup every run stored in OUT (from several invocations) into "
        "report.md, or with --validation into report_validation.md and tuning.md (the chosen settings)",
    )


def _log(text: str) -> None:
    print(f"[evaluate {time.strftime('%H:%M:%S')}] {text}", flush=True)


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    cfg = SuccessConfig()
    if args.duration_factor is not None:
        cfg = dataclasses.replace(cfg, duration_factor=args.duration_factor)
    elif args.quick:
        cfg = dataclasses.replace(cfg, duration_factor=2.0)
    if args.seeds < 1:
        raise VandError(f"--seeds {args.seeds}: expected at least 1")
    if args.report_only:
        return _report_only(out, cfg, args.validation, args.videos)
    if not args.bags:
        raise VandError("--bags: give the demonstration bags (or --report-only)")

    # 1. dataset and reference, once
    from vand_ros.data.dataset import Dataset

    ds_dir = out / "dataset"
    if (ds_dir / "dataset.json").is_file():
        dataset = Dataset.load(ds_dir)
        _log(f"dataset: reusing {ds_dir}")
    else:
        from vand_ros.data.builder import build_dataset
        from vand_ros.data.config import DataConfig

        _log("dataset: building from the bags")
        dataset, _ = build_dataset([*args.bags, *args.train_bags], DataConfig())
        dataset.save(ds_dir)
    ref_path = out / "reference.json"
    if ref_path.is_file():
        refs = load_references(ref_path)
    else:
        from vand_ros.evaluation.evaluate import reference_from_bags

        _log("reference: measuring the demonstrations")
        refs = reference_from_bags(args.bags)
        save_references(refs, ref_path)
    behaviours = [b for b in args.behaviours if b in refs]
    missing = sorted(set(args.behaviours) - set(behaviours))
    if missing:
        _log(f"no demonstrations of {missing}: left out")
    if not behaviours:
        raise VandError(f"the bags hold none of the behaviours {args.behaviours}; record demonstrations")

    # 2. train and export each regulariser x seed; 3. closed loop
    from vand_ros.evaluation.evaluate import evaluate_model

    results: list[dict[str, Any]] = []
    cards: dict[str, Any] = {}
    overrides = parse_overrides(args.set, args.regularisers)
    suffix = "_validation" if args.validation else ""
    for reg in args.regularisers:
        variant = variant_name(reg, overrides[reg])
        for seed in range(args.seeds):
            name = f"{variant.replace(' ', '_')}_s{seed}"
            model = _train_and_export(dataset, reg, overrides[reg], seed, args, out, name)
            cards[name] = _card_summary(model)
            _log(f"closed loop{' (validation scenarios)' if args.validation else ''}: {name}")
            runs = evaluate_model(
                model,
                refs,
                behaviours,
                args.conditions,
                args.modes,
                seeds=(VALIDATION_SEED_OFFSET + seed if args.validation else seed,),
                cfg=cfg,
                out_dir=out / "results" / name / ("validation" if args.validation else ""),
                save_trajectories=args.save_trajectories,
                progress=lambda text: _log("  " + text),
                tags={"regulariser": reg, "variant": variant, "train_seed": seed, "model_name": name},
            )
            results += runs

    # 4. report
    (out / f"results{suffix}.json").write_text(
        json.dumps({"config": cfg.to_dict(), "cards": cards, "runs": results}, indent=1), encoding="utf-8"
    )
    report = write_report(
        results, cards, refs, cfg, out, args.conditions, behaviours, validation=args.validation
    )
    _log(f"wrote {report} and {out / f'results{suffix}.json'}")
    return 0


# Validation scenarios (tuning) are drawn from these run seeds; the test runs use the training seeds 0..N-1.
VALIDATION_SEED_OFFSET = 1000


def _report_only(out: Path, cfg: SuccessConfig, validation: bool, videos: bool = False) -> int:
    from vand_ros.evaluation.tuning import best_and_worst, load_runs, write_tuning

    runs = load_runs(out, validation)
    if not runs:
        raise VandError(f"no stored {'validation ' if validation else ''}runs under {out / 'results'}")
    if not (out / "reference.json").is_file():
        raise VandError(f"{out / 'reference.json'} is missing: run evaluate with --bags first")
    refs = load_references(out / "reference.json")
    cards = {r["model_name"]: _card_summary(out / "models" / f"{r['model_name']}.onnx") for r in runs}
    cfg = dataclasses.replace(
        cfg, duration_factor=max(r["duration"] / refs[r["behaviour"]].demo_duration for r in runs)
    )
    conditions = [c for c in C.CONDITIONS if any(r["condition"] == c for r in runs)]
    behaviours = [b for b in robot.BEHAVIOURS if any(r["behaviour"] == b for r in runs)]
    report = write_report(runs, cards, refs, cfg, out, conditions, behaviours, validation=validation)
    _log(f"wrote {report} from {len(runs)} stored runs")
    if videos:
        from vand_ros.evaluation.evaluate import render_run

        lines = ["", "## Videos (the last 30 s of a run, re-run deterministically)", ""]
        for label, r in zip(("best", "worst"), best_and_worst(runs), strict=True):
            gif = out / f"{label}.gif"
            render_run(r, out / "models" / f"{r['model_name']}.onnx", gif, refs[r["behaviour"]])
            what = f"{r['variant']} (training seed {r['train_seed']}), " + ", ".join(
                r[k] for k in ("behaviour", "condition", "mode")
            )
            verdict = "success" if r["success"] else "fails: " + ", ".join(r["failures"])
            lines += [
                f"- {label}: {what}; {verdict}; progress {r['score']:.2f}",
                "",
                f"![{label}]({gif.name})",
                "",
            ]
            _log(f"wrote {gif}")
        with report.open("a", encoding="utf-8") as f:
            f.write("\n".join(lines))
    if validation:
        _log(f"wrote {write_tuning(runs, out)}")
    return 0


def parse_overrides(items: list[str], regularisers: list[str]) -> dict[str, dict[str, Any]]:
    """`[REG:]KEY=VALUE` strings -> {regulariser: {field: typed value}}, checked against TrainConfig."""
    from vand_ros.learning.config import TrainConfig

    types = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    out: dict[str, dict[str, Any]] = {reg: {} for reg in regularisers}
    for item in items:
        target, _, assignment = item.rpartition(":")
        key, eq, text = assignment.partition("=")
        if not eq or key not in types or key in ("regulariser", "seed"):
            allowed = sorted(set(types) - {"regulariser", "seed"})
            raise VandError(f"--set {item!r}: expected [REG:]KEY=VALUE with KEY one of {allowed}")
        if target and target not in out:
            raise VandError(f"--set {item!r}: {target!r} is not among --regularisers {regularisers}")
        kind = str(types[key])
        value: Any = (
            float(text) if kind == "float" else int(text) if kind == "int" else
            text.lower() in ("1", "true", "yes") if kind == "bool" else text
        )  # fmt: skip
        for reg in [target] if target else regularisers:
            out[reg][key] = value
    return out


def variant_name(reg: str, overrides: dict[str, Any]) -> str:
    """'vand' or 'vand beta=0.2': the row label and (spaces as _) the model's file name."""
    return " ".join(
        [reg, *(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(overrides.items()))]
    )


def _train_and_export(
    dataset: Any,
    reg: str,
    overrides: dict[str, Any],
    seed: int,
    args: argparse.Namespace,
    out: Path,
    name: str,
) -> Path:
    model = out / "models" / f"{name}.onnx"
    if model.is_file():
        return model
    import torch

    from vand_ros.learning.checkpoint import CHECKPOINT_NAME, Checkpoint
    from vand_ros.learning.config import TrainConfig
    from vand_ros.learning.export import export_policy
    from vand_ros.learning.train import train

    run_dir = out / "runs" / name
    if not (run_dir / "summary.json").is_file():
        values: dict[str, Any] = {"regulariser": reg, "seed": seed, "smoke": bool(args.quick)}
        if args.beta is not None:
            values["beta"] = args.beta
        if args.epochs is not None:
            values["max_epochs"] = args.epochs
        values.update(overrides)
        if args.threads:
            torch.set_num_threads(args.threads)
        t0 = time.perf_counter()
        _log(f"train: {name}")
        train(dataset, TrainConfig(**values), run_dir, progress=False)
        _log(f"train: {name} done in {time.perf_counter() - t0:.0f} s")
    export_policy(Checkpoint.load(run_dir / CHECKPOINT_NAME), model)
    return model


def _card_summary(model: Path) -> dict[str, Any]:
    from vand_ros.runtime.policy import PolicyRuntime

    card = PolicyRuntime(model).card
    reg = card.raw.get("regulariser", {})

    def stats(key: str) -> dict[str, Any]:
        s = reg.get(key) or {}
        return {k: s.get(k) for k in ("mean", "min", "max", "frac_gt_0_5")}

    return {
        "regulariser": card.regulariser,
        "default_mode": card.default_mode,
        "beta": reg.get("beta"),
        "sigma": stats("sigma"),
        "rho": stats("rho"),
        "best_val_loss": card.raw.get("training", {}).get("best_val_loss"),
    }


def _summary_table(
    results: list[dict[str, Any]], rows: list[tuple[str, str]], behaviours: list[str]
) -> list[str]:
    """Success and progress score per row x behaviour, all conditions pooled: mean ± std over seeds."""
    from vand_ros.evaluation.metrics import progress_score

    lines = [
        "## Summary: every condition pooled",
        "",
        "Cell: success rate / progress score, each the mean over training seeds ± their std (a seed's "
        "value is its mean over the conditions). Progress score: periodic, the fraction of the six checks "
        "passed; sequential, stations touched in the instructed order / 3; 0 on divergence.",
        "",
        "| model / mode | " + " | ".join(behaviours) + " |",
        "|---" * (len(behaviours) + 1) + "|",
    ]
    for row, mode in rows:
        cells = []
        for b in behaviours:
            per_seed: dict[int, list[tuple[float, float]]] = {}
            for r in results:
                if (_row(r), r["mode"], r["behaviour"]) == (row, mode, b):
                    score = progress_score(b, r["failures"], r["metrics"])
                    per_seed.setdefault(int(r.get("train_seed", 0)), []).append((float(r["success"]), score))
            if not per_seed:
                cells.append("n/a")
                continue
            means = np.array([np.mean(v, axis=0) for v in per_seed.values()])  # (seeds, 2)
            mu, sd = means.mean(axis=0), means.std(axis=0)
            cells.append(f"{mu[0]:.2f} ± {sd[0]:.2f} / {mu[1]:.2f} ± {sd[1]:.2f}")
        lines.append(f"| {row} / {mode} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _row(run: dict[str, Any]) -> str:
    return str(run.get("variant", run["regulariser"]))


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    a = np.asarray(values, dtype=np.float64)
    return f"{a.mean():.2f} ± {a.std():.2f} (n={len(a)})"


def write_report(
    results: list[dict[str, Any]],
    cards: dict[str, Any],
    refs: dict[str, Any],
    cfg: SuccessConfig,
    out: Path,
    conditions: list[str],
    behaviours: list[str],
    validation: bool = False,
) -> Path:
    """report.md (report_validation.md) with one table per condition (rows: model variant / mode, columns:
    behaviours), plus plots."""
    lines = [
        "# Closed-loop evaluation" + (" on validation scenarios (tuning)" if validation else ""),
        "",
        "All numbers below come from in-process closed-loop runs (vand_ros.evaluation.closed_loop: the "
        "node's assembler, tick logic, ONNX runtime and safety filter stepping the MuJoCo simulation, "
        "without DDS).",
        f"Runs last {cfg.duration_factor:g} x the longest demonstration of each behaviour. Cell: success "
        "rate over training seeds, mean ± std (n seeds); one run per seed.",
        "",
        "Success thresholds (SuccessConfig): " + ", ".join(f"{k}={v}" for k, v in cfg.to_dict().items()),
        "",
    ]
    rows = sorted({(_row(r), r["mode"]) for r in results})
    lines += _summary_table(results, rows, behaviours)
    for cond in conditions:
        lines += [f"## Condition: {cond}", "", "| model / mode | " + " | ".join(behaviours) + " |"]
        lines.append("|---" * (len(behaviours) + 1) + "|")
        for reg, mode in rows:
            cells = []
            for b in behaviours:
                runs = [
                    r
                    for r in results
                    if (_row(r), r["mode"], r["condition"], r["behaviour"]) == (reg, mode, cond, b)
                ]
                fails: dict[str, int] = {}
                for r in runs:
                    for f in r["failures"]:
                        fails[f] = fails.get(f, 0) + 1
                why = (" " + ", ".join(f"{k} x{n}" for k, n in sorted(fails.items()))) if fails else ""
                cells.append(_fmt([float(r["success"]) for r in runs]) + why if runs else "n/a")
            lines.append(f"| {reg} / {mode} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## Learned sigma / rho (model cards)",
        "",
        "| model | default mode | beta | sigma mean [min, max] | rho mean [min, max] | val NLL |",
        "|---|---|---|---|---|---|",
    ]
    for name, c in sorted(cards.items()):
        s, r = c["sigma"], c["rho"]

        def f(x: Any) -> str:
            return "-" if x is None else f"{x:.3g}"

        lines.append(
            f"| {name} | {c['default_mode']} | {f(c['beta'])} | "
            f"{f(s['mean'])} [{f(s['min'])}, {f(s['max'])}] | "
            f"{f(r['mean'])} [{f(r['min'])}, {f(r['max'])}] | {f(c['best_val_loss'])} |"
        )
    lines += [
        "",
        "## Demonstrations (reference)",
        "",
        "```",
        json.dumps({b: vars(v) for b, v in refs.items()}, indent=1, default=list),
        "```",
        "",
    ]
    suffix = "_validation" if validation else ""
    plots = _plots(results, rows, conditions, behaviours, out, suffix)
    lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    path = out / f"report{suffix}.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _plots(
    results: list[dict[str, Any]],
    rows: list[tuple[str, str]],
    conditions: list[str],
    behaviours: list[str],
    out: Path,
    suffix: str = "",
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, axes = plt.subplots(
        1, len(conditions), figsize=(4 * len(conditions), 0.35 * len(rows) + 2), squeeze=False
    )
    for ax, cond in zip(axes[0], conditions, strict=True):
        grid = np.full((len(rows), len(behaviours)), np.nan)
        for i, (reg, mode) in enumerate(rows):
            for j, b in enumerate(behaviours):
                runs = [
                    r["success"]
                    for r in results
                    if (_row(r), r["mode"], r["condition"], r["behaviour"]) == (reg, mode, cond, b)
                ]
                if runs:
                    grid[i, j] = float(np.mean(runs))
        ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
        ax.set_xticks(range(len(behaviours)), behaviours, rotation=45, ha="right")
        ax.set_yticks(
            range(len(rows)), [f"{r}/{m}" for r, m in rows] if cond == conditions[0] else [""] * len(rows)
        )
        ax.set_title(cond)
    fig.suptitle("success rate over seeds")
    fig.tight_layout()
    p = out / f"success{suffix}.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    paths.append(p)

    periodic = [b for b in behaviours if b in robot.PERIODIC_BEHAVIOURS]
    if periodic:
        fig, axes = plt.subplots(1, len(periodic), figsize=(5 * len(periodic), 4), squeeze=False)
        for ax, b in zip(axes[0], periodic, strict=True):
            for k, (reg, mode) in enumerate(rows):
                runs = [
                    r
                    for r in results
                    if (_row(r), r["mode"], r["behaviour"]) == (reg, mode, b)
                    and "amp_rel_mean" in r["metrics"]
                ]
                xs = [r["metrics"]["amp_rel_mean"] for r in runs]
                ys = [r["metrics"].get("freq_rel_mean", np.nan) for r in runs]
                ax.scatter(xs, ys, s=14, label=f"{reg}/{mode}", color=plt.cm.tab10(k % 10))
            ax.axvspan(0.9, 1.1, alpha=0.1)
            ax.axhspan(0.9, 1.1, alpha=0.1)
            ax.set_xlabel("amplitude / demonstrated")
            ax.set_ylabel("frequency / demonstrated")
            ax.set_title(b)
        axes[0][-1].legend(fontsize=6)
        fig.tight_layout()
        p = out / f"periodic{suffix}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths.append(p)
    return paths
