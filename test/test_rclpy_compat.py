"""The spin wrapper both nodes use, against a real rclpy executor and context."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def executor() -> Iterator[Any]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    yield ex
    ex.shutdown()
    rclpy.try_shutdown(context=ctx)


class _Logger:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, text: str, **_: Any) -> None:
        self.errors.append(text)


def test_a_shutdown_that_races_the_spin_is_a_clean_shutdown(executor: Any) -> None:
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from vand_ros.rclpy_compat import spin_once

    spin_once(executor, 0.01, _Logger())  # a live context spins quietly
    rclpy.shutdown(context=executor.context)  # as SIGINT does, between two spins
    with pytest.raises(ExternalShutdownException):
        spin_once(executor, 0.01, _Logger())


def test_other_errors_propagate_and_conversion_errors_are_dropped(executor: Any) -> None:
    from vand_ros.rclpy_compat import CONVERSION_ERROR, spin_once

    class Failing:
        context = executor.context

        def __init__(self, message: str) -> None:
            self.message = message

        def spin_once(self, timeout_sec: float | None) -> None:
            raise RuntimeError(self.message)

    log = _Logger()
    spin_once(Failing(f"{CONVERSION_ERROR} '0' to Python object"), 0.01, log)
    assert len(log.errors) == 1 and "rclpy#848" in log.errors[0]
    with pytest.raises(RuntimeError, match="something else"):
        spin_once(Failing("something else"), 0.01, log)
