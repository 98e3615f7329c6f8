"""The evaluation report: report.md (tables and plots) from run records and model cards.

Rows are model variants (regulariser plus any overridden training setting) x execution mode; columns are
behaviours. One summary table pools every condition (success and progress score, mean ± std over training
seeds), then one success table per condition, the learned sigma/rho from the cards, the demonstrations'
reference values, plots and (optionally) videos of the best and worst run.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from vand_ros.evaluation.metrics import BehaviourReference, SuccessConfig, progress_score
from vand_ros.simulation.behaviours import PERIODIC


def pooled_gain(joints: dict[str, dict[str, float]]) -> float:
    """The copycat gain over every joint of one behaviour (learning.diagnostics), each joint weighted by
    how far its demonstrated target is from its measurement (copy_mse): the joints that move count."""
    weight = sum(v["copy_mse"] for v in joints.values())
    return sum(v["gain"] * v["copy_mse"] for v in joints.values()) / weight if weight > 0 else 0.0


def card_summary(model: Path) -> dict[str, Any]:
    """What the report shows of a model's card: regulariser, default mode, beta, sigma/rho, val NLL, the
    action representation and the copycat gain per behaviour."""
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
        "action": card.action.label,
        "copycat_gain": {
            b: pooled_gain(joints)
            for b, joints in (card.raw.get("training", {}).get("copycat") or {}).items()
        },
    }


Runs = list[dict[str, Any]]


def _group(results: Runs) -> dict[tuple[str, str, str, str], Runs]:
    """Runs grouped by (row label, mode, condition, behaviour)."""
    cells: dict[tuple[str, str, str, str], Runs] = defaultdict(list)
    for r in results:
        cells[(_row(r), r["mode"], r["condition"], r["behaviour"])].append(r)
    return cells


def _pooled(cells: dict[tuple[str, str, str, str], Runs]) -> dict[tuple[str, str, str], Runs]:
    """The same runs with every condition pooled: (row label, mode, behaviour)."""
    pooled: dict[tuple[str, str, str], Runs] = defaultdict(list)
    for (row, mode, _, behaviour), runs in cells.items():
        pooled[(row, mode, behaviour)] += runs
    return pooled


def _summary_table(
    pooled: dict[tuple[str, str, str], Runs], rows: list[tuple[str, str]], behaviours: list[str]
) -> list[str]:
    """Success and progress score per row x behaviour, all conditions pooled: mean ± std over seeds."""
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
            for r in pooled.get((row, mode, b), []):
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
    grouped = _group(results)
    pooled = _pooled(grouped)
    lines += _summary_table(pooled, rows, behaviours)
    for cond in conditions:
        lines += [f"## Condition: {cond}", "", "| model / mode | " + " | ".join(behaviours) + " |"]
        lines.append("|---" * (len(behaviours) + 1) + "|")
        for reg, mode in rows:
            cells = []
            for b in behaviours:
                runs = grouped.get((reg, mode, cond, b), [])
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
    plots = _plots(grouped, pooled, rows, conditions, behaviours, out, suffix)
    lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    path = out / f"report{suffix}.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _plots(
    cells: dict[tuple[str, str, str, str], Runs],
    pooled: dict[tuple[str, str, str], Runs],
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
                runs = cells.get((reg, mode, cond, b), [])
                if runs:
                    grid[i, j] = float(np.mean([r["success"] for r in runs]))
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

    periodic = [b for b in behaviours if b in PERIODIC]
    if periodic:
        fig, axes = plt.subplots(1, len(periodic), figsize=(5 * len(periodic), 4), squeeze=False)
        for ax, b in zip(axes[0], periodic, strict=True):
            for k, (reg, mode) in enumerate(rows):
                runs = [r for r in pooled.get((reg, mode, b), []) if "amp_rel_mean" in r["metrics"]]
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


def append_videos(
    report: Path, runs: list[dict[str, Any]], out: Path, refs: dict[str, BehaviourReference]
) -> list[Path]:
    """Re-run the best and the worst of `runs` (tuning.best_and_worst), write the last 30 s of each as
    OUT/best.gif and OUT/worst.gif, and add them to `report`."""
    from vand_ros.evaluation.evaluate import render_run
    from vand_ros.evaluation.tuning import best_and_worst

    lines = ["", "## Videos (the last 30 s of a run, re-run deterministically)", ""]
    gifs = []
    for label, r in zip(("best", "worst"), best_and_worst(runs), strict=True):
        gif = out / f"{label}.gif"
        render_run(r, out / "models" / f"{r['model_name']}.onnx", gif, refs[r["behaviour"]])
        what = f"{r['variant']} (training seed {r['train_seed']}), " + ", ".join(
            r[k] for k in ("behaviour", "condition", "mode")
        )
        verdict = "success" if r["success"] else "fails: " + ", ".join(r["failures"])
        score = progress_score(r["behaviour"], r["failures"], r["metrics"])
        lines += [f"- {label}: {what}; {verdict}; progress {score:.2f}", "", f"![{label}]({gif.name})", ""]
        gifs.append(gif)
    with report.open("a", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return gifs
