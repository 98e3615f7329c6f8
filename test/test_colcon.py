"""The robot path: `colcon build` of the package in a fresh workspace installs what `ros2 run/launch` need."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PACKAGE_FILES = [
    "package.xml",
    "setup.py",
    "setup.cfg",
    "README.md",
    "resource",
    "vand_ros",
    "launch",
    "config",
    "models",
]
EXECUTABLES = ["controller_node", "sim_node", "recorder_node", "vand-ros"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("ws")
    pkg = ws / "src" / "vand_ros"
    pkg.mkdir(parents=True)
    for name in PACKAGE_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, pkg / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, pkg / name)
    result = subprocess.run(
        [str(BIN / "colcon"), "build", "--base-paths", "src", "--event-handlers", "console_direct-"],
        cwd=ws,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return ws


def test_executables_land_in_lib(workspace: Path) -> None:
    lib = workspace / "install" / "vand_ros" / "lib" / "vand_ros"
    for exe in EXECUTABLES:
        assert (lib / exe).is_file(), f"{exe} not installed to {lib}"
        assert os.access(lib / exe, os.X_OK)


def test_data_files_land_in_share(workspace: Path) -> None:
    share = workspace / "install" / "vand_ros" / "share" / "vand_ros"
    assert (share / "package.xml").is_file()
    assert (
        workspace
        / "install"
        / "vand_ros"
        / "share"
        / "ament_index"
        / "resource_index"
        / "packages"
        / "vand_ros"
    ).is_file()
    for folder in ("launch", "config", "models"):
        expected = {
            p.name
            for p in (ROOT / folder).iterdir()
            if p.is_file() and p.suffix in {".py", ".yaml", ".onnx", ".md"}
        }
        installed = {p.name for p in (share / folder).iterdir()} if (share / folder).is_dir() else set()
        assert expected, f"{folder}/ ships nothing"
        assert expected <= installed, f"{folder}: not installed {sorted(expected - installed)}"


def test_installed_tree_runs_and_is_found_by_ament_index(workspace: Path) -> None:
    script = (
        "source install/setup.bash && cd / && "
        "vand-ros --version && "
        "python3 -c 'from ament_index_python.packages import get_package_share_directory as g; "
        'print(g("vand_ros"))\''
    )
    lib = workspace / "install" / "vand_ros" / "lib" / "vand_ros"
    env = {**os.environ, "PATH": f"{lib}:{BIN}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", script], cwd=workspace, capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("vand-ros ")
    assert lines[-1] == str(workspace / "install" / "vand_ros" / "share" / "vand_ros")
