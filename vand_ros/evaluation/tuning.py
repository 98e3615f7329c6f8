"""Choose each method's setting (and VAND's execution mode) from runs on validation scenarios.

`vand-ros evaluate --validation --set REG:KEY=VALUE` stores one run record per (setting, behaviour,
condition, mode) under OUT/results/<model>/validation/. This module regroups every stored record and
applies one rule, the same for every method:

    rank (setting, mode) pairs by mean success over the validation runs, ties broken by the mean
    progress score (metrics.progress_score), then in favour of the default setting, then by name; a
    setting's rank is that of its best mode.

For the VAND family the default execution mode, the one the card records, is the best mode of the chosen
setting among those that keep the learned noise on (NOISE_ON_MODES): the mission keeps the noise on while
the robot runs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from vand_ros.evaluation.metrics import progress_score

NOISE_ON_MODES = ("stochastic", "noise")

# Validation runs: other scenarios than the test runs (seeds VALIDATION_SEED_OFFSET + training seed), one
# training seed, two conditions, half the test length. Every method gets the same budget: three settings
# of its regularisation strength (its default and one weaker, one stronger), except `none`, which has none.
VALIDATION_SEED_OFFSET = 1000
VALIDATION_CONDITIONS = ("clean", "push")
VALIDATION_DURATION_FACTOR = 5.0
GRID: dict[str, tuple[dict[str, Any], ...]] = {
    "none": ({},),
    "nrnn": ({}, {"nrnn_sigma_add": 0.02}, {"nrnn_sigma_add": 0.15}),
    "gal": ({}, {"gal_p_h": 0.1}, {"gal_p_h": 0.4}),
    "vand": ({}, {"beta": 0.01}, {"beta": 0.25}),
    "vand_noise": ({}, {"beta": 0.01}, {"beta": 0.25}),
    "vand_dropout": ({}, {"beta": 0.01}, {"beta": 0.25}),
    "vand_fixed": ({}, {"sigma_init": 0.03, "rho_init": 0.03}, {"sigma_init": 0.3, "rho_init": 0.3}),
}


def load_runs(out: Path, validation: bool) -> list[dict[str, Any]]:
    """Every stored run record under OUT/results (validation runs or test runs)."""
    runs = []
    for path in sorted((out / "results").glob("*/**/*_s*.json")):
        if ("validation" in path.relative_to(out / "results").parts) != validation:
            continue
        r = json.loads(path.read_text(encoding="utf-8"))
        if "variant" not in r:  # written before records carried their tags: the folder names the model
            continue
        runs.append(r)
    return runs


def _score(run: dict[str, Any]) -> float:
    return progress_score(run["behaviour"], run["failures"], run["metrics"])


def best_and_worst(runs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The best run (success, then progress, then closeness to the demonstrations: amplitude and frequency
    ratios near 1, or the quickest completion) and the worst (lowest progress, then most failures)."""

    def closeness(r: dict[str, Any]) -> float:
        m = r["metrics"]
        if "amp_rel_mean" in m:
            return -abs(float(m["amp_rel_mean"]) - 1.0) - abs(float(m.get("freq_rel_mean", 0.0)) - 1.0)
        return -float(m.get("time_rel") or 1e9)

    best = max(runs, key=lambda r: (r["success"], _score(r), closeness(r)))
    worst = min(runs, key=lambda r: (_score(r), -len(r["failures"])))
    return best, worst


def summarise(runs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, float]]:
    """{(regulariser, variant, mode): {"success", "score", "runs"}} means over all runs of that pair."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        groups[(r["regulariser"], r["variant"], r["mode"])].append(r)
    return {
        key: {
            "success": float(np.mean([r["success"] for r in rs])),
            "score": float(np.mean([_score(r) for r in rs])),
            "runs": float(len(rs)),
        }
        for key, rs in groups.items()
    }


def choose(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{regulariser: {"variant", "mode", "noise_on_mode", "success", "score"}} by the module's rule."""
    table = summarise(runs)
    chosen: dict[str, dict[str, Any]] = {}
    for reg in sorted({k[0] for k in table}):
        # sorted first, so that ties go to the first of equals; then the default setting wins a tie
        pairs = dict(sorted((k, v) for k, v in table.items() if k[0] == reg))
        (_, variant, mode), best = max(
            pairs.items(), key=lambda kv: (kv[1]["success"], kv[1]["score"], kv[0][1] == reg)
        )
        noise_on = {k: v for k, v in pairs.items() if k[1] == variant and k[2] in NOISE_ON_MODES}
        noise_mode = (
            max(noise_on.items(), key=lambda kv: (kv[1]["success"], kv[1]["score"]))[0][2]
            if noise_on
            else None
        )
        chosen[reg] = {"variant": variant, "mode": mode, "noise_on_mode": noise_mode, **best}
    return chosen


def write_tuning(runs: list[dict[str, Any]], out: Path) -> Path:
    """OUT/tuning.md: every (setting, mode) tried per method, its validation scores, and the choice."""
    table = summarise(runs)
    chosen = choose(runs)
    n_settings = {reg: len({k[1] for k in table if k[0] == reg}) for reg in chosen}
    lines = [
        "# Tuning on validation scenarios",
        "",
        "Validation runs use other starts, pushes and noise than the test runs (run seeds 1000+). Rule: the "
        "(setting, mode) pair with the highest mean success, ties broken by the mean progress score "
        "(periodic: fraction of the six checks passed; sequential: stations in order / 3; 0 on divergence).",
        "",
        "| method | setting | mode | success | progress | runs | chosen |",
        "|---|---|---|---|---|---|---|",
    ]
    for (reg, variant, mode), v in sorted(table.items()):
        mark = (
            "**setting + mode**" if (variant, mode) == (chosen[reg]["variant"], chosen[reg]["mode"]) else ""
        )
        if chosen[reg]["noise_on_mode"] == mode and variant == chosen[reg]["variant"] and not mark:
            mark = "noise-on default"
        cells = [reg, variant, mode, f"{v['success']:.2f}", f"{v['score']:.2f}", f"{v['runs']:.0f}", mark]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Settings tried per method: " + ", ".join(f"{r} {n}" for r, n in sorted(n_settings.items())),
        "",
    ]
    path = out / "tuning.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    (out / "tuning.json").write_text(json.dumps(chosen, indent=1), encoding="utf-8")
    return path
