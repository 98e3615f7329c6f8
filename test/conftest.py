"""Shared fixtures: ROS isolation for tests that use DDS, and small exported policies.

Every test process talks DDS on loopback only, in its own domain: `ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`
is set here before anything initialises rclpy, and `ros_domain` hands out a fresh `ROS_DOMAIN_ID` per test
from a per-run block, so parallel runs and consecutive tests never see each other's topics.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MUJOCO_GL", "egl")

_DOMAIN_BASE = 1 + (os.getpid() % 9) * 10  # a block of 10 domains per run: 1-10, 11-20, ..., 81-90
_domains = itertools.cycle(range(_DOMAIN_BASE, _DOMAIN_BASE + 10))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-long", action="store_true", help="also run the tests marked long (minutes each)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-long"):
        return
    skip = pytest.mark.skip(reason="long: run with `python -m pytest --run-long -m long`")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def ros_domain(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A fresh ROS_DOMAIN_ID for this test, exported to the environment (and so to child processes)."""
    domain = next(_domains)
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    yield domain


@pytest.fixture
def new_ros_domain() -> Callable[[], int]:
    """Hands out fresh ROS_DOMAIN_IDs, for a test that runs several ROS graphs side by side."""
    return lambda: next(_domains)


@pytest.fixture
def torch_one_thread() -> Iterator[None]:
    """Small models on a shared 2-core machine: one intra-op thread is faster and steadier."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def export_tiny_policy(path: Path, regulariser: str = "vand", cell: str = "gru") -> Path:
    """An untrained policy for the built-in robot whose actions stay near the home pose (with the base
    still): for plumbing and safety tests, not for behaviour."""
    from vand_ros import robot
    from vand_ros.learning.config import TrainConfig
    from vand_ros.learning.export import export_untrained_policy
    from vand_ros.runtime.layout import default_layout

    layout = default_layout()
    home = np.array([j.home for j in robot.ARM_JOINTS] + [0.0] * len(layout.base_axes), dtype=np.float32)
    cfg = TrainConfig(
        regulariser=regulariser,
        cell=cell,
        hidden_size=16,
        encoder_size=16,
        action_representation="absolute",
        base_deadband=0.0,
        base_deadband_angular=0.0,
    )  # fmt: skip  (absolute targets: the output is its action mean whatever comes in)
    return export_untrained_policy(path, layout, robot.RATES.control, cfg, act_mean=home)


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_policy(tmp_path_factory.mktemp("models") / "tiny_vand.onnx")
