"""`vand-ros bench train` runs end to end and reports the numbers it promises."""

from __future__ import annotations

import json

import pytest

from vand_ros.cli import main


def test_bench_train_reports_json_and_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "train", "--hidden", "8", "--seq-len", "8", "--batch", "2", "--repeats", "2"]
    assert main([*argv, "--onnx-steps", "50", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out[: out.index("\n\n")])
    assert doc["benchmark"] == "train"
    assert set(doc["train_step_ms"]) == {"vand (gru)", "none (gru)", "torch nn.GRU"}
    assert all(v["n"] == 2 and v["p50"] > 0 for v in doc["train_step_ms"].values())
    assert doc["ratio_vand_over_none"] > 0 and doc["ratio_vand_over_torch_gru"] > 0
    for name in ("vand", "none"):
        assert doc["onnx_step"][name]["run_us"]["n"] == 50 and doc["onnx_step"][name]["run_us"]["p99"] > 0
    assert "train step vand (gru) [ms]" in out and "VAND / none" in out
