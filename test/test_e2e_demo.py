"""The round trip at toy size: bags -> train -> ONNX -> node over DDS -> sim -> bag -> retrain -> report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def test_quick_demo_runs_the_whole_pipeline(tmp_path: Path, ros_domain: int) -> None:
    out = tmp_path / "demo"
    cmd = [str(BIN / "vand-ros"), "demo", "--quick", "--out", str(out), "--behaviours", "wipe", "visit_abc"]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "ROS_DOMAIN_ID": str(ros_domain)}
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for step in range(1, 9):
        assert f"[{step}/8]" in result.stdout
    facts = json.loads((out / "facts.json").read_text())
    # The robot runs went over DDS and were recorded as bags a dataset can use...
    runs = sorted(p.name for p in (out / "bags" / "robot_runs").iterdir() if (p / "metadata.yaml").is_file())
    assert runs == ["visit_abc_policy", "wipe_policy"]
    # ...and the retraining used them on top of the demonstrations.
    first, second = facts["dataset"], facts["dataset2"]
    assert second["skipped"] == [], second["skipped"]
    used = {Path(b).parent.name for b in second["bags_used"]} | {Path(b).name for b in second["bags_used"]}
    assert {"wipe_policy", "visit_abc_policy"} <= used
    assert len(second["bags_used"]) == len(first["bags_used"]) + 2
    assert second["train"] + second["val"] > first["train"] + first["val"]
    assert (out / "policy.onnx").is_file() and (out / "policy_retrained.onnx").is_file()
    assert {r["behaviour"] for r in facts["eval2"]} == {"wipe", "visit_abc"}
    assert {r["behaviour"] for r in facts["robot_runs"]} == {"wipe", "visit_abc"}
    report = (out / "report.md").read_text()
    assert "Closed loop, retrained policy" in report and "Robot runs over DDS" in report
    assert not re.search(r"\bnan\b", report, re.I), "issue 12: the report said MSE nan"
    assert facts["train"]["best_val_mse"] >= 0
