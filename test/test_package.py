"""The package as a user and a ROS build see it: one version, declared ROS dependencies, the CLI."""

from __future__ import annotations

import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

import vand_ros
from vand_ros.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REQUIRED_ROS_DEPS = {
    "rclpy",
    "std_msgs",
    "sensor_msgs",
    "nav_msgs",
    "geometry_msgs",
    "std_srvs",
    "trajectory_msgs",
    "diagnostic_msgs",
    "rosgraph_msgs",
    "lifecycle_msgs",
}


def _package_xml() -> ET.Element:
    return ET.parse(ROOT / "package.xml").getroot()


def test_one_version_everywhere() -> None:
    xml_version = _package_xml().findtext("version")
    assert xml_version, "package.xml has no <version>"
    assert version("vand_ros") == xml_version, (
        "setup.py's version (installed metadata) differs from package.xml"
    )
    assert vand_ros.__version__ == xml_version


def test_package_xml_is_format_3_ament_python() -> None:
    root = _package_xml()
    assert root.get("format") == "3"
    assert root.findtext("name") == "vand_ros"
    assert root.findtext("export/build_type") == "ament_python"


def test_package_xml_declares_the_ros_dependencies_the_code_uses() -> None:
    root = _package_xml()
    declared = {e.text for tag in ("depend", "exec_depend") for e in root.iter(tag)}
    assert declared >= REQUIRED_ROS_DEPS, f"missing: {REQUIRED_ROS_DEPS - declared}"
    assert "launch_ros" in {e.text for e in root.iter("exec_depend")}
    # Every ROS interface package imported anywhere in the code is declared.
    used = set()
    for path in (ROOT / "vand_ros").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top == "rclpy" or top.endswith(("_msgs", "_srvs")):
                    used.add(top)
    assert used <= declared, f"imported but not in package.xml: {sorted(used - declared)}"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "vand-ros"), *args], capture_output=True, text=True, timeout=120)


def test_cli_lists_every_subcommand_and_version() -> None:
    top = _cli("--help")
    assert top.returncode == 0, top.stderr
    for name in ("sim", "demos", "record", "dataset", "train", "export", "run", "evaluate", "bench", "demo"):
        assert name in COMMANDS
        assert f"  {name} " in top.stdout, f"`vand-ros --help` does not list {name}"
    ver = _cli("--version")
    assert ver.returncode == 0 and ver.stdout.strip() == f"vand-ros {vand_ros.__version__}"


def test_cli_help_of_each_subcommand() -> None:
    for name in COMMANDS:
        result = _cli(name, "--help")
        assert result.returncode == 0, f"vand-ros {name} --help failed:\n{result.stderr}"
        assert f"vand-ros {name}" in result.stdout


def test_cli_rejects_an_unknown_subcommand() -> None:
    result = _cli("fly")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
