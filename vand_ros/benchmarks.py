"""Shared output format of every `vand-ros bench ...`: one JSON document, then a short table.

Benchmarks print numbers; they never pass or fail on time. Quote medians and ratios measured side by
side in one run: the machines are shared and noisy.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np


def summarise(samples: Sequence[float] | np.ndarray, scale: float = 1.0) -> dict[str, float]:
    """p50/p90/p99/max/mean of `samples` times `scale` (e.g. 1e6 for seconds -> microseconds)."""
    x = np.asarray(samples, dtype=np.float64) * scale
    if x.size == 0:
        return {"n": 0}
    return {
        "n": int(x.size),
        "p50": float(np.percentile(x, 50)),
        "p90": float(np.percentile(x, 90)),
        "p99": float(np.percentile(x, 99)),
        "max": float(x.max()),
        "mean": float(x.mean()),
    }


def machine() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}


def report(name: str, results: dict[str, Any], rows: list[dict[str, Any]], out: Any = None) -> None:
    """Print `results` as JSON (with machine info) and `rows` as an aligned table."""
    out = out or sys.stdout
    doc = {"benchmark": name, "machine": machine(), **results}
    print(json.dumps(doc, indent=1, default=float), file=out)
    if rows:
        cols = list(rows[0])
        cells = [[_fmt(r.get(c, "")) for c in cols] for r in rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        print("", file=out)
        print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)), file=out)
        print("  ".join("-" * w for w in widths), file=out)
        for row in cells:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)), file=out)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
