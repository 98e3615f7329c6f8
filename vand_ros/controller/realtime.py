"""Realtime scheduling for the control thread, as ros2_control's controller manager offers it.

Three independent requests, each applied to the calling thread (the one that spins the controller's
executor) and each reported, never fatal: a robot computer without the rights still runs the controller,
with a warning that says what to grant.

- SCHED_FIFO at `priority` (1-99; 0 = leave the default scheduler): the control thread then preempts every
  normal process, so a busy computer no longer delays its ticks. Needs CAP_SYS_NICE or an rtprio limit
  (`/etc/security/limits.conf`: `@realtime - rtprio 98`, the user in group realtime).
- CPU affinity (`cpus`, e.g. (3,) for an isolated core; empty = all).
- Memory locking (mlockall(MCL_CURRENT | MCL_FUTURE)): no page of the process is swapped out or faulted in
  mid-tick. Needs a memlock limit (`ulimit -l`, limits.conf `memlock unlimited`) or CAP_IPC_LOCK.
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass, field

MCL_CURRENT, MCL_FUTURE = 1, 2  # <sys/mman.h>


@dataclass(frozen=True)
class RealtimeRequest:
    priority: int = 0  # SCHED_FIFO priority, 0 = off
    cpus: tuple[int, ...] = ()  # CPU affinity, () = unchanged
    lock_memory: bool = False

    @property
    def wanted(self) -> bool:
        return bool(self.priority or self.cpus or self.lock_memory)


@dataclass
class RealtimeOutcome:
    scheduling: str = "default"  # what the thread runs with, e.g. "SCHED_FIFO 80"
    affinity: str = "all"
    memory: str = "not locked"
    warnings: list[str] = field(default_factory=list)

    def as_values(self) -> dict[str, str]:
        return {"scheduling": self.scheduling, "cpu affinity": self.affinity, "memory": self.memory}


def parse_cpus(text: str) -> tuple[int, ...]:
    """'2,3' or '0-3' or '' -> CPU numbers. Raises ValueError on anything else."""
    cpus: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        first, last = int(lo), int(hi or lo)
        if first < 0 or last < first:
            raise ValueError(f"bad CPU range {part!r}")
        cpus += range(first, last + 1)
    return tuple(sorted(set(cpus)))


def apply(request: RealtimeRequest) -> RealtimeOutcome:
    """Apply what `request` asks for to the calling thread; what failed is in `warnings`."""
    out = RealtimeOutcome()
    if not request.wanted:
        return out
    if not sys.platform.startswith("linux"):
        out.warnings.append(f"realtime scheduling is implemented for Linux only, not {sys.platform}")
        return out
    if request.priority:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(request.priority))
            out.scheduling = f"SCHED_FIFO {request.priority}"
        except OSError as err:
            out.warnings.append(
                f"SCHED_FIFO priority {request.priority} refused ({err.strerror}): grant CAP_SYS_NICE or an "
                "rtprio limit (limits.conf: '@realtime - rtprio 98'); running with the default scheduler"
            )
    if request.cpus:
        try:
            os.sched_setaffinity(0, request.cpus)
            out.affinity = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
        except OSError as err:
            have = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
            out.warnings.append(
                f"CPU affinity {list(request.cpus)} refused ({err.strerror}); this process may use {have}"
            )
    if request.lock_memory:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mlockall(MCL_CURRENT | MCL_FUTURE) == 0:
            out.memory = "locked"
        else:
            out.warnings.append(
                f"mlockall refused ({os.strerror(ctypes.get_errno())}): raise the memlock limit "
                "(ulimit -l; limits.conf 'memlock unlimited') or grant CAP_IPC_LOCK"
            )
    return out
