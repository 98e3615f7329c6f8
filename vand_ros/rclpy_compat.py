"""Work-arounds for rclpy behaviour that a long-running robot node must survive. Needs rclpy.

`spin_once(executor, timeout_sec, logger)`:
- rclpy can fail to convert a received message whose float fields hold NaN ("Unable to convert call
  argument ... to Python object", ros2/rclpy#848; seen here with the Kilted wheels, intermittently).
  Unhandled, that exception ends the node, so one bad message from someone else would stop the robot's
  controller or simulation. This wrapper drops that one message with a throttled error and goes on.
- A Ctrl-C (SIGINT) shuts the context down; when that lands while the executor is between its own checks,
  rclpy raises RCLError ("the given context is not valid") instead of ExternalShutdownException, and the
  node would exit with a traceback and status 1. The wrapper turns that into ExternalShutdownException,
  which the nodes treat as a clean shutdown.
Every other exception propagates.
"""

from __future__ import annotations

from typing import Any

from rclpy.executors import ExternalShutdownException

CONVERSION_ERROR = "Unable to convert call argument"


def spin_once(executor: Any, timeout_sec: float | None, logger: Any) -> None:
    """`executor.spin_once(timeout_sec)`, surviving rclpy's failure to convert a received message and
    reporting a shutdown that races the spin as ExternalShutdownException."""
    try:
        executor.spin_once(timeout_sec=timeout_sec)
    except RuntimeError as err:
        if not executor.context.ok():
            raise ExternalShutdownException() from err
        if CONVERSION_ERROR not in str(err):
            raise
        logger.error(
            f"dropped a received message rclpy could not convert (NaN values? ros2/rclpy#848): {err}",
            throttle_duration_sec=2.0,
        )
