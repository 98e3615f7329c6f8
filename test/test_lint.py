"""One formatter, one linter and a strict type check, run as tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGETS = ["vand_ros", "test", "launch", "setup.py"]


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_ruff_check() -> None:
    result = _run(str(BIN / "ruff"), "check", *TARGETS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = _run(str(BIN / "ruff"), "format", "--check", *TARGETS)
    assert result.returncode == 0, "run `.venv/bin/ruff format`:\n" + result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = _run(str(BIN / "mypy"))  # files and strictness from pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr
