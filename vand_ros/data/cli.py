"""`vand-ros dataset BAG_OR_DIR... --out DIR`: rosbag2 demonstrations -> a training dataset.

Writes DIR/dataset.json + DIR/dataset.npz (see vand_ros.data.dataset) and DIR/data_config.json (the
configuration it was built with), shows a progress bar, and prints a summary table: per bag its episodes,
durations, per-stream rates, invalid ticks and behaviours, and what was skipped and why. A bad bag is
skipped with a warning (`--strict`: fatal, exit status 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from vand_ros.data.builder import BuildSummary, build_dataset
from vand_ros.data.cache import default_cache_dir
from vand_ros.data.config import DataConfig


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "bags",
        nargs="+",
        metavar="BAG_OR_DIR",
        help="rosbag2 directories, .mcap/.db3 files, or folders of them",
    )
    parser.add_argument("--out", required=True, type=Path, help="dataset directory to write")
    parser.add_argument(
        "--strict", action="store_true", help="stop at the first bad bag instead of skipping it"
    )
    parser.add_argument(
        "--config", type=Path, help="data configuration (JSON or YAML; missing fields keep defaults)"
    )
    parser.add_argument("--rate", type=float, help="control rate [Hz] (overrides the configuration)")
    parser.add_argument(
        "--default-instruction", metavar="WORD", help="behaviour of bags without instruction messages"
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help=f"cache directory (default {default_cache_dir()})"
    )
    parser.add_argument("--no-cache", action="store_true", help="read every bag again")
    parser.add_argument(
        "--no-repair", action="store_true", help="skip unfinished recordings instead of repairing them"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    config = DataConfig.load(args.config) if args.config else DataConfig()
    changes: dict[str, Any] = {}
    if args.rate is not None:
        changes["control_rate"] = args.rate
    if args.default_instruction is not None:
        changes["default_instruction"] = args.default_instruction
    if changes:
        config = DataConfig.from_dict({**config.to_dict(), **changes})
    cache = None if args.no_cache else (args.cache or default_cache_dir())
    dataset, summary = build_dataset(
        args.bags,
        config,
        strict=args.strict,
        cache_dir=cache,
        progress=not args.quiet,
        repair=not args.no_repair,
    )
    out = dataset.save(args.out)
    (out / "data_config.json").write_text(config.to_json(), encoding="utf-8")
    print_summary(summary, config)
    n_train, n_val = len(dataset.train), len(dataset.val)
    print(
        f"\nwrote {out}: {n_train} training and {n_val} validation episodes, "
        f"obs {dataset.layout.obs_dim} / act {dataset.layout.act_dim} dims at {config.control_rate:g} Hz "
        f"({summary.seconds:.1f} s, {summary.cached} bag(s) from the cache)"
    )
    return 0


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for j, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)
        if j == 0:
            print("  ".join("-" * w for w in widths), file=out)


def print_summary(summary: BuildSummary, config: DataConfig, out: TextIO | None = None) -> None:
    """The per-bag table, totals and the skipped bags with their reasons."""
    out = out or sys.stdout
    t = config.topics
    streams = [
        ("js", t.joint_states),
        ("odom", t.odom),
        ("feat", t.features),
        ("arm", t.arm_command),
        ("cmd", t.cmd_vel),
    ]
    header = ["bag", "status", "episodes", "bag [s]", "episodes [s]", "ticks", "invalid"]
    header += [f"{label} [Hz]" for label, _ in streams] + ["kind", "behaviours"]
    rows = [header]
    for r in summary.reports:
        name = Path(r.bag).name
        if r.status != "ok":
            rows.append([name, f"skipped ({r.kind})"] + [""] * (len(header) - 2))
            continue
        rows.append(
            [
                name,
                "ok",
                str(r.episodes),
                f"{r.duration_s:.1f}",
                f"{r.episode_s:.1f}",
                str(r.ticks),
                str(r.invalid_ticks),
                *(f"{r.rates.get(topic, 0.0):.1f}" for _, topic in streams),
                r.episode_kind or "-",  # how the demonstration was made, where the bag says
                ", ".join(f"{b} x{n}" for b, n in sorted(r.behaviours.items())),
            ]
        )
    d = summary.to_dict()
    rows.append(
        [
            "TOTAL",
            f"{d['bags_used']}/{d['bags']} used",
            str(d["episodes"]),
            "",
            f"{d['episode_s']:.1f}",
            str(d["ticks"]),
            str(d["invalid_ticks"]),
            *([""] * len(streams)),
            ", ".join(f"{k} x{n}" for k, n in d["episode_kinds"].items()),
            ", ".join(f"{b} x{n}" for b, n in d["behaviours"].items()),
        ]
    )
    print("", file=out)
    _table(rows, out)
    reasons: dict[str, int] = {}
    for r in summary.reports:
        for k, n in r.invalid_reasons.items():
            reasons[k] = reasons.get(k, 0) + n
    if reasons:
        print("\ninvalid ticks by reason:", file=out)
        for k, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:10]:
            print(f"  {n:6d}  {k}", file=out)
    if summary.skipped:
        print(f"\nskipped {len(summary.skipped)} bag(s):", file=out)
        for r in summary.skipped:
            print(f"  [{r.kind}] {r.problem}", file=out)
