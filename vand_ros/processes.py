"""Starting and stopping child processes the way a ROS 2 launch does, and so that none outlives its parent.

A child is started in its own process group (a Ctrl-C at the terminal reaches the parent only, which then
stops the children in its own order) and, on Linux, with PR_SET_PDEATHSIG: when the parent dies, even by
SIGKILL, the kernel sends the child SIGINT, so a controller never keeps commanding a robot nobody
supervises and a recorder still finishes its bag. Stopping is a signal, a grace period, then SIGKILL.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_DEATH_SIGNAL = signal.SIGINT  # what rclpy nodes (and the recorder) treat as a clean shutdown


def _child_setup(parent: int) -> Callable[[], None]:
    """preexec_fn for a child of `parent`: ask the kernel to signal the child when the parent exits, and
    let the stop signal through. A process started in the background by a non-interactive shell (`cmd &`,
    as CI scripts do) inherits SIGINT ignored, and an ignored signal stays ignored across exec: its
    Python children would then never see the SIGINT this module stops them with."""

    def setup() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Python installs KeyboardInterrupt at start-up
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(PARENT_DEATH_SIGNAL), 0, 0, 0)
            if os.getppid() != parent:  # the parent died before the request took effect
                os.kill(os.getpid(), PARENT_DEATH_SIGNAL)

    return setup


def start_child(cmd: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `cmd` as a child that does not outlive this process (see the module docstring)."""
    # preexec_fn is unsafe only in a process with threads; callers start their children before any.
    return subprocess.Popen(
        list(cmd),
        env=env,
        start_new_session=True,
        preexec_fn=_child_setup(os.getpid()),  # noqa: PLW1509
    )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0, sig: int = signal.SIGINT) -> str:
    """Send `sig` (SIGINT: as Ctrl-C, so rclpy nodes shut down cleanly) unless `proc` has exited; kill it
    if it has not exited `timeout` seconds later. Returns "exited" (it had already), "stopped" or "killed"."""
    if proc.poll() is not None:
        return "exited"
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return "killed"
    return "stopped"


def describe_exit(code: int) -> str:
    """'status 1' or 'signal SIGKILL' for a Popen return code."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"
