"""The dependency arrows of DESIGN.md: the robot side (runtime, controller) never reaches torch.

Two checks: a static import graph over the source (catches an import on any code path, even one not
executed at import time), and a real import in a fresh interpreter (catches what the graph cannot see).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "vand_ros"
LAYERS = ("learning", "data", "runtime", "controller", "simulation", "evaluation")
# Which other layers each layer may import (top-level modules such as vand_ros.robot are open to all).
ALLOWED = {
    "runtime": set(),
    "data": {"runtime"},
    "learning": {"runtime", "data"},
    "controller": {"runtime"},
    "simulation": {"runtime", "data"},
    "evaluation": set(LAYERS),
}
FORBIDDEN_ON_ROBOT = {"torch", "rosbags", "mujoco", "matplotlib", "tensorboard", "onnx", "onnxscript"}


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, root: Path = ROOT) -> set[str]:
    """Absolute names of every module `path` imports (module-level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{a.name}" for a in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PKG.rglob("*.py")}


def _closure(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        mod = todo.pop()
        for dep in graph.get(mod, ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_layers_import_only_what_they_may() -> None:
    graph = _graph()
    bad = []
    for module, deps in graph.items():
        parts = module.split(".")
        if len(parts) < 2 or parts[1] not in LAYERS:
            continue
        layer = parts[1]
        for dep in deps:
            dparts = dep.split(".")
            other = dparts[1] if dparts[0] == "vand_ros" and len(dparts) > 1 else None
            if other in LAYERS and other != layer and other not in ALLOWED[layer]:
                bad.append(f"{module} imports {dep}")
    assert not bad, "layer arrows broken:\n" + "\n".join(sorted(bad))


def test_runtime_and_controller_never_reach_torch_statically() -> None:
    graph = _graph()
    bad = []
    for module in graph:
        if module.startswith(("vand_ros.runtime", "vand_ros.controller")):
            reached = {d.split(".")[0] for d in _closure(graph, module)}
            if hit := reached & FORBIDDEN_ON_ROBOT:
                bad.append(f"{module} reaches {sorted(hit)}")
    assert not bad, "\n".join(bad)


def test_runtime_and_controller_never_load_torch_when_imported() -> None:
    modules = sorted(
        m for m in _graph() if m.startswith(("vand_ros.runtime", "vand_ros.controller")) and m != "vand_ros"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({sorted(FORBIDDEN_ON_ROBOT)!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


def test_the_graph_check_would_catch_a_torch_import(tmp_path: Path) -> None:
    """Guard the guard: the parser sees function-level and relative imports."""
    src = tmp_path / "vand_ros" / "runtime" / "x.py"
    src.parent.mkdir(parents=True)
    src.write_text("def f():\n    import torch\n\nfrom ..learning import policy\n")
    deps = _imports(src, root=tmp_path)
    assert "torch" in deps
    assert "vand_ros.learning.policy" in deps
