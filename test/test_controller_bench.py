"""`vand-ros bench node` prints JSON and a table with the numbers the issue asks for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_bench_node_compute_comparison_prints_json_and_table() -> None:
    result = subprocess.run(
        [str(BIN / "vand-ros"), "bench", "node", "--skip-loop", "--ticks", "300", "--hidden", "16"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout[: result.stdout.index("\n}\n") + 2])
    assert doc["benchmark"] == "node"
    cmp = doc["compute"]
    assert cmp["node_tick_us"]["n"] == 300 and cmp["bare_onnx_us"]["n"] == 300
    assert cmp["ratio_p50"] == cmp["node_tick_us"]["p50"] / cmp["bare_onnx_us"]["p50"]
    assert "ratio of p50 (goal <= 3)" in result.stdout
