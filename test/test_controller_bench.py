"""`vand-ros bench node` prints JSON and a table with the numbers the issue asks for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.e2e
def test_bench_node_under_load_runs_realtime_off_and_on_side_by_side(ros_domain: int) -> None:
    result = subprocess.run(
        [str(BIN / "vand-ros"), "bench", "node", "--ticks", "100", "--hidden", "16", "--rates", "100",
         "--seconds", "3", "--executors", "events", "--load", "1", "--realtime-priority", "20"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads(result.stdout[: result.stdout.index("\n}\n") + 2])
    runs = doc["loop"]
    assert [r["load_processes"] for r in runs] == [1, 1] and doc["load_cpu_percent"] > 0
    assert runs[0]["scheduling"] == "default"
    assert runs[1]["scheduling"] in ("SCHED_FIFO 20", "default")  # "default": the right was refused
    for r in runs:
        assert r["state"] == "running" and r["ticks"] > 0
        assert set(r["period_error_ms"]) == {"p50", "p99", "max"}
    assert f"100 Hz events load 1 {runs[1]['scheduling']} period error p99 [ms]" in result.stdout
