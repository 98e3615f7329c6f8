"""Launch files, checked without launch_ros (not installable here): their AST must declare the documented
arguments, start executables that setup.py installs, and refer only to files the package ships."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPECTED_ARGS = {
    "controller.launch.py": {"model", "config", "use_sim_time", "namespace", "autostart"},
    "sim.launch.py": {"model", "config", "sim_config", "instruction", "real_time_factor", "namespace"},
}
EXPECTED_EXECUTABLES = {
    "controller.launch.py": {"controller_node"},
    "sim.launch.py": {"sim_node", "controller_node"},
}


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == name
    ]


def _installed_executables() -> set[str]:
    text = (ROOT / "setup.py").read_text()
    return set(re.findall(r'"([\w-]+) = vand_ros\.[\w.]+:main"', text))


@pytest.mark.parametrize("name", sorted(EXPECTED_ARGS))
def test_launch_file_declares_its_arguments_and_runs_installed_executables(name: str) -> None:
    tree = ast.parse((ROOT / "launch" / name).read_text())
    funcs = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    assert "generate_launch_description" in funcs
    declared = {c.args[0].value for c in _calls(tree, "DeclareLaunchArgument")}  # type: ignore[attr-defined]
    assert declared == EXPECTED_ARGS[name]
    used = {n.args[0].value for n in _calls(tree, "LaunchConfiguration")}  # type: ignore[attr-defined]
    assert used <= declared, f"uses undeclared arguments {used - declared}"
    executables = set()
    for node in _calls(tree, "Node"):
        kw = {k.arg: k.value for k in node.keywords}
        assert ast.literal_eval(kw["package"]) == "vand_ros"
        executables.add(ast.literal_eval(kw["executable"]))
    assert executables == EXPECTED_EXECUTABLES[name]
    assert executables <= _installed_executables()


@pytest.mark.parametrize("name", sorted(EXPECTED_ARGS))
def test_launch_file_refers_only_to_shipped_files(name: str) -> None:
    tree = ast.parse((ROOT / "launch" / name).read_text())
    for call in _calls(tree, "PathJoinSubstitution"):
        parts = [ast.literal_eval(e) for e in call.args[0].elts[1:]]  # type: ignore[attr-defined]
        path = ROOT.joinpath(*parts)
        assert path.is_file(), (
            f"{name} refers to share/vand_ros/{'/'.join(parts)}, which the package does not ship"
        )
