"""`vand-ros sweep`: which design learns the behaviours? Candidates x seeds, one budget, validation runs.

    vand-ros sweep --bags bags/demos --train-bags bags/recovery --out sweeps/action --seeds 3 \\
        --candidate absolute \\
        --candidate relative action_representation=relative \\
        --candidate rel_chunk10 action_representation=relative action_chunk=10

A candidate is a name and TrainConfig overrides (`regulariser=...` among them; default vand). Every
candidate gets the same budget: `--seeds` training seeds of at most `--epochs` epochs each, then
`--scenarios` closed-loop runs (default 1) per behaviour x condition (`--conditions`, default clean and
push) x execution mode (`--modes`, default the card's), `--duration-factor` (default 5) x the demonstration
length, on validation scenarios (tuning.VALIDATION_SEED_OFFSET + training seed + seeds x k for the k-th
scenario), never on the test scenarios that
`vand-ros evaluate` reports. It is a campaign (evaluation.campaign): resumable, the same folder layout,
and the same report_validation.md tables. On top, OUT/sweep.md and OUT/sweep.json rank the candidates:

    per candidate (its best mode) and behaviour: success rate over every run, progress score (mean over
    seeds ± their std), and the copycat gain of the trained models (learning.diagnostics)

and, per candidate and mode, the acceptance bar of the comparison (`bar`): per behaviour, successes
pooled over the comparison's conditions (conditions.COMPARISON_CONDITIONS that were run; `latency` is
reported apart) and the training seeds, per seed, and in clean runs; it is met at >= BAR_RATE pooled with
every clean run passing.

A data-scaling curve is a set of candidates that differ in `train_episodes` (training episodes per
behaviour, 0 = all).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from vand_ros import robot
from vand_ros.errors import VandError
from vand_ros.evaluation import conditions as C
from vand_ros.evaluation.campaign import Campaign, Job, log, parse_overrides, variant_name
from vand_ros.evaluation.metrics import SuccessConfig, progress_score

DEFAULT_CONDITIONS = ("clean", "push")
DEFAULT_DURATION_FACTOR = 5.0
BAR_RATE = 0.8  # the bar: this fraction of the runs pooled over the comparison's conditions and seeds


@dataclasses.dataclass(frozen=True)
class Candidate:
    name: str
    regulariser: str
    overrides: tuple[tuple[str, Any], ...]

    @property
    def variant(self) -> str:
        return variant_name(self.regulariser, dict(self.overrides))


def parse_candidates(items: list[list[str]]) -> list[Candidate]:
    """[[NAME, KEY=VALUE, ...], ...] -> candidates; the values are typed and checked against TrainConfig."""
    from vand_ros.learning.config import REGULARISERS

    out: list[Candidate] = []
    for name, *assignments in items:
        if "=" in name:
            raise VandError(
                f"--candidate {name!r}: the first word is the candidate's name, then KEY=VALUE pairs"
            )
        reg = "vand"
        rest = []
        for a in assignments:
            key, _, value = a.partition("=")
            if key == "regulariser":
                if value not in REGULARISERS:
                    raise VandError(
                        f"--candidate {name}: regulariser {value!r}, expected one of {REGULARISERS}"
                    )
                reg = value
            else:
                rest.append(a)
        overrides = parse_overrides(rest, [reg])[reg]
        out.append(Candidate(name, reg, tuple(sorted(overrides.items()))))
    names = [c.name for c in out]
    if len(set(names)) != len(names) or len({c.variant for c in out}) != len(out):
        raise VandError(f"--candidate: names and settings must be unique, found {names}")
    return out


def summarise(
    candidates: list[Candidate], runs: list[dict[str, Any]], cards: dict[str, Any]
) -> dict[str, Any]:
    """Per candidate: per behaviour and mode, success and progress; its best mode; the copycat gains."""
    by_variant = {c.variant: c for c in candidates}
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        if r["variant"] in by_variant:
            cells[(by_variant[r["variant"]].name, r["mode"], r["behaviour"])].append(r)
    summary: dict[str, Any] = {}
    for c in candidates:
        modes: dict[str, Any] = {}
        for (name, mode, behaviour), group in sorted(cells.items()):
            if name != c.name:
                continue
            per_seed: dict[int, list[float]] = defaultdict(list)
            for r in group:
                per_seed[int(r["train_seed"])].append(progress_score(behaviour, r["failures"], r["metrics"]))
            seed_means = np.array([np.mean(v) for v in per_seed.values()])
            modes.setdefault(mode, {})[behaviour] = {
                "success": sum(bool(r["success"]) for r in group),
                "runs": len(group),
                "clean_success": sum(bool(r["success"]) for r in group if r["condition"] == "clean"),
                "clean_runs": sum(r["condition"] == "clean" for r in group),
                "progress_mean": float(seed_means.mean()),
                "progress_seed_std": float(seed_means.std()),
            }
        gains: dict[str, list[float]] = defaultdict(list)
        for model, card in cards.items():
            if model.rpartition("_s")[0] == c.variant.replace(" ", "_"):
                for b, g in (card.get("copycat_gain") or {}).items():
                    gains[b].append(float(g))

        scores = {mode: _score(cells_of_mode) for mode, cells_of_mode in modes.items()}
        best = max(sorted(scores), key=lambda m: scores[m]) if scores else ""
        mine = [r for r in runs if r["variant"] == c.variant]
        summary[c.name] = {
            "bar": {mode: bar([r for r in mine if r["mode"] == mode]) for mode in sorted(modes)},
            "regulariser": c.regulariser,
            "overrides": dict(c.overrides),
            "modes": modes,
            "best_mode": best,
            "score": scores.get(best, (0.0, 0.0)),
            "copycat_gain": {b: [float(np.mean(v)), float(np.std(v))] for b, v in sorted(gains.items())},
        }
    return summary


def bar(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One candidate's runs in one mode -> per behaviour: {"success", "runs"} pooled over the comparison's
    conditions and seeds, "per_seed" {seed: [success, runs]}, "seed_rate" [mean, std] over the seeds of
    each seed's pooled success rate (the spread a difference between candidates is judged against),
    "clean" [success, runs], "latency" [success, runs] (apart), and "met" (>= BAR_RATE pooled and every
    clean run passing)."""
    out: dict[str, dict[str, Any]] = {}
    for behaviour in sorted({r["behaviour"] for r in runs}):
        mine = [r for r in runs if r["behaviour"] == behaviour]
        pooled = [r for r in mine if r["condition"] in C.COMPARISON_CONDITIONS]
        per_seed: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for r in pooled:
            per_seed[int(r["train_seed"])][0] += bool(r["success"])
            per_seed[int(r["train_seed"])][1] += 1

        success, clean = sum(bool(r["success"]) for r in pooled), _count(mine, "clean")
        rates = np.array([won / ran for won, ran in per_seed.values()]) if per_seed else np.zeros(1)
        out[behaviour] = {
            "success": success,
            "runs": len(pooled),
            "per_seed": {seed: per_seed[seed] for seed in sorted(per_seed)},
            "seed_rate": [float(rates.mean()), float(rates.std())],
            "clean": clean,
            "latency": _count(mine, "latency"),
            "met": bool(pooled)
            and success >= BAR_RATE * len(pooled)
            and clean[1] > 0
            and clean[0] == clean[1],
        }
    return out


def _count(runs: list[dict[str, Any]], condition: str) -> list[int]:
    """[successes, runs] of `runs` in `condition`."""
    group = [r for r in runs if r["condition"] == condition]
    return [sum(bool(r["success"]) for r in group), len(group)]


def _score(cells: dict[str, Any]) -> tuple[float, float]:
    """(success rate over every run, mean progress) of one candidate's mode, all behaviours."""
    rows = cells.values()
    return (
        sum(v["success"] for v in rows) / max(1, sum(v["runs"] for v in rows)),
        float(np.mean([v["progress_mean"] for v in rows])),
    )


def write_sweep(
    out: Path, summary: dict[str, Any], behaviours: list[str], seeds: int, cfg: SuccessConfig
) -> Path:
    """OUT/sweep.md and OUT/sweep.json: candidates ranked by success, then progress, in their best mode."""
    (out / "sweep.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    ranked = sorted(summary, key=lambda n: summary[n]["score"], reverse=True)
    lines = [
        "# Learnability sweep (validation scenarios)",
        "",
        f"{seeds} training seeds per candidate, the same epochs and runs for each; runs last "
        f"{cfg.duration_factor:g} x the longest demonstration. Each candidate is shown in its best execution "
        "mode. Cell: successes / runs (clean successes / clean runs); progress score, mean over seeds ± "
        "their std (periodic: fraction of the six checks passed; sequential: stations in order / 3). "
        "Copycat gain: the trained models' gain on each behaviour's validation episodes (1 = they reproduce "
        "the demonstrated offset of the target from the measured joints, 0 = they copy the joints), mean ± "
        "std over seeds.",
        "",
        "| candidate | settings | mode | " + " | ".join(behaviours) + " | copycat gain (wipe) |",
        "|---" * (len(behaviours) + 4) + "|",
    ]
    for name in ranked:
        s = summary[name]
        mode = s["best_mode"]
        cells = []
        for b in behaviours:
            v = s["modes"].get(mode, {}).get(b)
            cells.append(
                "n/a"
                if v is None
                else f"{v['success']}/{v['runs']} ({v['clean_success']}/{v['clean_runs']}); "
                f"{v['progress_mean']:.2f} ± {v['progress_seed_std']:.2f}"
            )
        gain = s["copycat_gain"].get("wipe")
        settings = ", ".join(f"{k}={v}" for k, v in s["overrides"].items()) or "defaults"
        lines.append(
            f"| {name} | {s['regulariser']}: {settings} | {mode} | " + " | ".join(cells)
            + f" | {'-' if gain is None else f'{gain[0]:.2f} ± {gain[1]:.2f}'} |"
        )  # fmt: skip
    lines += _bar_table(summary, ranked, behaviours)
    lines += ["", "Every mode of every candidate: report_validation.md (same folder).", ""]
    path = out / "sweep.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _bar_table(summary: dict[str, Any], ranked: list[str], behaviours: list[str]) -> list[str]:
    """sweep.md's second table: every candidate and mode against the bar (`bar`)."""
    lines = [
        "",
        f"## Against the bar: >= {BAR_RATE:.0%} of the runs pooled over the comparison's conditions "
        f"({', '.join(C.COMPARISON_CONDITIONS)}, those run) and seeds, and every clean run",
        "",
        "Cell: pooled successes / runs [per seed] {mean ± std over the seeds of each seed's success rate} "
        "(clean successes / clean runs; latency, reported apart); a tick where the behaviour meets the bar. "
        "all: the pooled successes summed over the behaviours.",
        "",
        "| candidate | mode | " + " | ".join(behaviours) + " | all |",
        "|---" * (len(behaviours) + 3) + "|",
    ]
    for name in ranked:
        for mode, cells_of_mode in summary[name]["bar"].items():
            row, total = [], [0, 0]
            for b in behaviours:
                v = cells_of_mode.get(b)
                if v is None:
                    row.append("n/a")
                    continue
                by_seed = ", ".join(f"{won}/{ran}" for won, ran in v["per_seed"].values())
                mean, std = v["seed_rate"]
                row.append(
                    f"{'✓ ' if v['met'] else ''}{v['success']}/{v['runs']} [{by_seed}] "
                    f"{{{mean:.2f} ± {std:.2f}}} "
                    f"({v['clean'][0]}/{v['clean'][1]}; latency {v['latency'][0]}/{v['latency'][1]})"
                )
                total = [total[0] + v["success"], total[1] + v["runs"]]
            lines.append(f"| {name} | {mode} | " + " | ".join(row) + f" | {total[0]}/{total[1]} |")
    return lines


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bags", nargs="+", required=True, help="demonstration bags (the reference)")
    parser.add_argument("--train-bags", nargs="+", default=[], help="more bags for training only")
    parser.add_argument("--out", required=True, type=Path, help="output directory (resumable)")
    parser.add_argument(
        "--candidate",
        nargs="+",
        action="append",
        required=True,
        metavar="NAME [KEY=VALUE ...]",
        help="a design to try: a name, then TrainConfig overrides (regulariser=... too; default vand)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per candidate")
    parser.add_argument(
        "--scenarios",
        type=int,
        default=1,
        help="validation scenarios per model and condition (seeds 1000 + training seed + SEEDS x k)",
    )
    parser.add_argument("--epochs", type=int, default=80, help="maximum training epochs (the same for all)")
    parser.add_argument("--behaviours", nargs="+", default=list(robot.BEHAVIOURS), choices=robot.BEHAVIOURS)
    parser.add_argument(
        "--conditions",
        nargs="+",
        default=list(DEFAULT_CONDITIONS),
        choices=C.CONDITIONS,
        help="validation conditions (default: clean push; 'latency' runs the clean start with commands "
        "applied after a DDS-like delay)",
    )
    parser.add_argument("--modes", nargs="+", help="execution modes (default: each card's default mode)")
    parser.add_argument("--duration-factor", type=float, default=DEFAULT_DURATION_FACTOR)
    parser.add_argument("--jobs", type=int, default=1, help="models trained and run in parallel (processes)")
    parser.add_argument("--quick", action="store_true", help="smoke-sized training (tests)")


def run(args: argparse.Namespace) -> int:
    from vand_ros.evaluation.report import write_report

    if min(args.seeds, args.jobs, args.epochs, args.scenarios) < 1:
        raise VandError(
            f"--seeds {args.seeds} --jobs {args.jobs} --epochs {args.epochs} --scenarios {args.scenarios}: "
            "expected >= 1 each"
        )
    candidates = parse_candidates(args.candidate)
    cfg = dataclasses.replace(SuccessConfig(), duration_factor=args.duration_factor)
    train: dict[str, Any] = {"max_epochs": args.epochs, "smoke": bool(args.quick)}
    campaign = Campaign(
        args.out, tuple(args.behaviours), tuple(args.conditions), tuple(args.modes) if args.modes else None,
        cfg, train, scenarios=args.scenarios, scenario_stride=args.seeds,
    )  # fmt: skip
    refs = campaign.prepare(args.bags, args.train_bags)
    behaviours = [b for b in args.behaviours if b in refs]
    jobs = [
        Job(c.regulariser, c.overrides, seed, validation=True)
        for c in candidates
        for seed in range(args.seeds)
    ]
    log(f"sweep: {len(candidates)} candidates x {args.seeds} seeds = {len(jobs)} models")
    runs, cards = campaign.run(jobs, args.jobs)
    write_report(runs, cards, refs, cfg, args.out, list(args.conditions), behaviours, validation=True)
    path = write_sweep(args.out, summarise(candidates, runs, cards), behaviours, args.seeds, cfg)
    log(f"wrote {path}")
    return 0
