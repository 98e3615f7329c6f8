"""The shipped policy performs its behaviours on the simulated robot, with every part real:
models/policy.onnx, controller_node and sim_node as separate processes over DDS, each run recorded to a
rosbag2 and scored from the bag with the evaluation's metrics against recorded demonstrations.

`vand-ros run --model models/policy.onnx --sim --instruction B --duration 60 --record DIR` runs for every
behaviour the shipped model performs over DDS (models/README.md lists them, with what they measured), one
after another, each in its own ROS domain: a robot runs one policy on its own computer. Since 2026-12-07 that
is all four (the wipe thanks to the assembler's joint time alignment: before it, 0-10 ms of jitter in the
joints' age at a tick made this model's wipe shake 3.3x the demonstrations' over DDS). The runs use the
node's defaults, so the execution mode is the card's: since 2026-12-08 `noise`, VAND's learned noise on (a
model trained with beta 0.03; models/README.md). The test also checks that the in-process closed loop
used for bulk evaluation measures the same as the run over DDS.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODEL = ROOT / "models" / "policy.onnx"
DURATION = 60.0
PERFORMED = ("wipe", "patrol", "visit_abc", "visit_cba")  # models/README.md: what it does over DDS


def test_shipped_policy_performs_its_behaviours_over_dds(
    tmp_path: Path, new_ros_domain: Callable[[], int]
) -> None:
    from vand_ros.data.recording import episode_kind
    from vand_ros.evaluation import conditions as C
    from vand_ros.evaluation.closed_loop import trajectory_from_bag
    from vand_ros.evaluation.evaluate import reference_from_bags
    from vand_ros.evaluation.metrics import SuccessConfig, evaluate_trajectory
    from vand_ros.simulation.cli_demos import write_episode

    # The reference is measured the way the runs are: from recorded demonstration bags (seed 0).
    for behaviour in PERFORMED:
        for ep in range(8):
            write_episode(behaviour, 0, ep, tmp_path / "demos" / f"{behaviour}_{ep:03d}")
    refs = reference_from_bags([tmp_path / "demos"])

    def run(behaviour: str, attempt: int) -> tuple[bool, list[str], dict[str, Any]]:
        start = C.scenario("clean", behaviour, 0, DURATION).start_base
        record = tmp_path / f"{behaviour}_run{attempt}"
        cmd = [
            str(BIN / "vand-ros"), "run", "--model", str(MODEL), "--sim", "--instruction", behaviour,
            "--duration", f"{DURATION:.0f}", "--record", str(record),
            "--initial-pose", *(f"{v:.4f}" for v in start),
        ]  # fmt: skip
        env = {**os.environ, "ROS_DOMAIN_ID": str(new_ros_domain())}
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=DURATION + 120
        )
        assert proc.returncode == 0, f"{behaviour}: {proc.stdout[-3000:]}"
        traj = trajectory_from_bag(record)
        assert traj.t[-1] > DURATION - 5, f"{behaviour}: the recording covers the run"
        assert episode_kind(record) == "policy"  # the bag says the policy drove (for retraining)
        metrics = evaluate_trajectory(traj, refs[behaviour], SuccessConfig())
        return metrics.success, metrics.failures, metrics.values

    # A behaviour that fails gets one more run: on a shared 2-core machine a stall of the node over DDS
    # can spike one window's shake (CI 2026-12-07: the noise-off model's wipe failed on shake once in about
    # five CI runs, passing the rerun). With its noise on the wipe shakes 2.4-2.7x the demonstrations'
    # (limit 3x; 8 of 8 DDS runs passed, models/README.md). Both attempts are in the message, so a
    # behaviour that fails twice shows both.
    outcomes: dict[str, tuple[bool, list[str], dict[str, Any]]] = {}
    failed: dict[str, dict[str, Any]] = {}
    for behaviour in PERFORMED:
        outcomes[behaviour] = run(behaviour, 0)
        if not outcomes[behaviour][0]:
            failed[behaviour] = {k: outcomes[behaviour][2].get(k) for k in ("shake", "drift", "amp_rel_min")}
            outcomes[behaviour] = run(behaviour, 1)
    assert all(ok for ok, _, _ in outcomes.values()), {"first attempts that failed": failed, **outcomes}
    for behaviour, order in (("visit_abc", "abc"), ("visit_cba", "cba")):
        if behaviour not in outcomes:
            continue
        touched = [name for _, name in outcomes[behaviour][2]["touches"]]
        assert touched == [f"station_{s}" for s in order], (behaviour, touched)

    # The bulk evaluation runs in-process (same assembler, core and safety code, no DDS): from the same
    # start (sim_node starts the arm at home) with the same mode and seed it must measure the same loop.
    from vand_ros import robot
    from vand_ros.evaluation.closed_loop import run_closed_loop

    home = np.array([j.home for j in robot.ARM_JOINTS])
    scenario = replace(C.scenario("clean", "patrol", 0, DURATION), start_arm=home)
    inproc = evaluate_trajectory(run_closed_loop(scenario, DURATION, MODEL), refs["patrol"], SuccessConfig())
    assert inproc.success, (inproc.failures, inproc.values)
    for key in ("amp_rel_mean", "freq_rel_mean"):
        assert inproc.values[key] == pytest.approx(outcomes["patrol"][2][key], rel=0.03), key
