"""The controller's parameter contract: validation messages name the parameter; the YAML documents it all."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vand_ros.controller.params import PARAMETERS, ControllerConfig
from vand_ros.errors import VandError

ROOT = Path(__file__).resolve().parents[1]


def test_config_yaml_lists_every_parameter_with_its_default() -> None:
    doc = yaml.safe_load((ROOT / "config" / "controller.yaml").read_text())
    values = doc["/**"]["ros__parameters"]
    assert set(values) == {p.name for p in PARAMETERS}
    for p in PARAMETERS:
        assert values[p.name] == p.default, p.name


def test_defaults_with_a_model_validate() -> None:
    cfg = ControllerConfig.from_values({"model": "/tmp/p.onnx"})
    assert cfg.limits.n_joints == len(cfg.joint_names)
    assert cfg.execution_mode == ""


@pytest.mark.parametrize(
    "values,names",
    [
        ({}, "model"),
        ({"control_rate": -1.0}, "control_rate"),
        ({"control_rate": float("nan")}, "control_rate"),
        ({"execution_mode": "wild"}, "execution_mode"),
        ({"seed": 1.5}, "seed"),
        ({"autostart": "yes"}, "autostart"),
        ({"joint_lower": [0.0]}, "joint_lower"),
        ({"joint_names": ["a", "a"], "joint_lower": [0.0, 0.0]}, "joint_names"),
        ({"base_max_velocity": [1.0, 1.0]}, "base_max_velocity"),
        ({"base_max_acceleration": [1.0, 0.0, 1.0]}, "base_max_acceleration"),
        ({"max_age_joints": 0.0}, "max_age_joints"),
        ({"arm_command_type": "effort"}, "arm_command_type"),
        ({"no_such_parameter": 1}, "no_such_parameter"),
    ],
)
def test_bad_values_are_refused_naming_the_parameter(values: dict, names: str) -> None:
    base = {"model": "/tmp/p.onnx"} if names != "model" else {}
    with pytest.raises(VandError, match=names):
        ControllerConfig.from_values({**base, **values})


def test_lower_above_upper_is_refused() -> None:
    with pytest.raises(VandError, match="joint_lower"):
        ControllerConfig.from_values({"model": "m", "joint_lower": [3.0] * 6})
