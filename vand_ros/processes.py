"""Stopping child processes the way a ROS 2 launch does: a signal, a grace period, then SIGKILL."""

from __future__ import annotations

import signal
import subprocess


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0, sig: int = signal.SIGINT) -> None:
    """Send `sig` (SIGINT: as Ctrl-C, so rclpy nodes shut down cleanly) unless `proc` has exited; kill it
    if it has not exited `timeout` seconds later."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
