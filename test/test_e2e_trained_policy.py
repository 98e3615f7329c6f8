"""A trained policy performs its behaviour on the simulated robot, with every part real: the shipped model,
controller_node and sim_node as separate processes over DDS, the run recorded to a rosbag2 and scored
with the evaluation's metrics against demonstrations.

It also checks that the in-process closed loop used for bulk evaluation measures the same as the run
over DDS. The shipped models/policy.onnx performs `patrol` (a base loop; see models/README.md for what
it does and does not do yet). The run uses the node's defaults, so the execution mode is the card's
(noise on).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_shipped_policy_patrols_over_dds(tmp_path: Path, ros_domain: int) -> None:
    from vand_ros.evaluation import conditions as C
    from vand_ros.evaluation.closed_loop import trajectory_from_bag
    from vand_ros.evaluation.evaluate import reference_from_bags
    from vand_ros.evaluation.metrics import SuccessConfig, evaluate_trajectory

    start = C.scenario("clean", "patrol", 0, 30.0).start_base
    bag = tmp_path / "patrol_run"
    cmd = [
        str(BIN / "vand-ros"), "run", "--model", str(ROOT / "models" / "policy.onnx"), "--sim",
        "--instruction", "patrol", "--duration", "30", "--record", str(bag),
        "--initial-pose", *(f"{v:.4f}" for v in start),
    ]  # fmt: skip
    env = {**os.environ, "ROS_DOMAIN_ID": str(ros_domain)}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    traj = trajectory_from_bag(bag)
    assert traj.t[-1] > 25.0, "the recording covers the run"
    # The reference is measured the same way as the run: from recorded demonstration bags.
    from vand_ros.simulation.cli_demos import write_episode

    for ep in range(8):  # the demonstrations the shipped policy was trained on (seed 0)
        write_episode("patrol", 0, ep, tmp_path / "demos" / f"patrol_{ep:03d}")
    refs = reference_from_bags([tmp_path / "demos"])
    metrics = evaluate_trajectory(traj, refs["patrol"], SuccessConfig())
    assert metrics.success, (metrics.failures, metrics.values)

    # The bulk evaluation runs in-process (same assembler, core and safety code, no DDS): from the same
    # start (sim_node starts the arm at home) with the same mode and seed it must measure the same loop.
    import numpy as np

    from vand_ros import robot
    from vand_ros.evaluation.closed_loop import run_closed_loop

    home = np.array([j.home for j in robot.ARM_JOINTS])
    scenario = replace(C.scenario("clean", "patrol", 0, 30.0), start_arm=home)
    inproc = evaluate_trajectory(
        run_closed_loop(scenario, 30.0, ROOT / "models" / "policy.onnx"), refs["patrol"], SuccessConfig()
    )
    assert inproc.success, (inproc.failures, inproc.values)
    for key in ("amp_rel_mean", "freq_rel_mean"):
        assert inproc.values[key] == pytest.approx(metrics.values[key], rel=0.03), key
