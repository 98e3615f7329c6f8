"""The `vand-ros` entry point: ROS arguments after `--ros-args` go to the node, not to argparse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vand_ros.cli import main, split_ros_args

BIN = Path(sys.executable).parent


def test_ros_arguments_are_split_off_before_argparse_sees_them() -> None:
    assert split_ros_args(["--duration", "1", "--ros-args", "-p", "clock:=system"]) == (
        ["--duration", "1"],
        ["--ros-args", "-p", "clock:=system"],
    )
    assert split_ros_args(["--duration", "1"]) == (["--duration", "1"], [])


def test_a_subcommand_without_a_node_refuses_ros_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["dataset", "bags", "--out", "ds", "--ros-args", "-p", "x:=1"])
    assert "starts no ROS node" in capsys.readouterr().err


def test_sim_takes_ros_parameters_after_its_own_arguments(ros_domain: int) -> None:
    """Used to fail with "unrecognized arguments: --ros-args -p" although --help advertised it."""
    cmd = [
        str(BIN / "vand-ros"),
        "sim",
        "--duration",
        "0.5",
        "--rtf",
        "1",
        "--ros-args",
        "-p",
        "clock:=system",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "unrecognized" not in result.stderr
