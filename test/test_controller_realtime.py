"""Realtime scheduling requests: parsed, applied to the calling thread, refused with a warning, not a crash.

`apply` runs in a child interpreter: SCHED_FIFO and mlockall must not leak into the test process.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vand_ros.controller.realtime import RealtimeRequest, apply, parse_cpus


def test_parse_cpus() -> None:
    assert parse_cpus("") == ()
    assert parse_cpus("3") == (3,)
    assert parse_cpus("2, 0-1,2") == (0, 1, 2)
    for bad in ("x", "3-1", "-1"):
        with pytest.raises(ValueError):
            parse_cpus(bad)


def _apply_in_child(priority: int, cpus: tuple[int, ...], lock: bool) -> dict:
    code = (
        "import json, os; from vand_ros.controller.realtime import RealtimeRequest, apply; "
        f"out = apply(RealtimeRequest({priority}, {cpus!r}, {lock})); "
        "print(json.dumps({**out.as_values(), 'warnings': out.warnings, 'policy': os.sched_getscheduler(0), "
        "'cpus': sorted(os.sched_getaffinity(0))}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(result.stdout))


def test_nothing_requested_changes_nothing() -> None:
    out = apply(RealtimeRequest())
    assert out.as_values() == {"scheduling": "default", "cpu affinity": "all", "memory": "not locked"}
    assert out.warnings == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux scheduling")
def test_granted_or_refused_the_outcome_says_which() -> None:
    import os

    got = _apply_in_child(10, (0,), True)
    assert got["cpus"] == [0] and got["cpu affinity"] == "0"
    if got["scheduling"] == "SCHED_FIFO 10":  # the right to do it (root or CAP_SYS_NICE here)
        assert got["policy"] == os.SCHED_FIFO
    else:  # no right: a warning that says what to grant, and the thread keeps the default scheduler
        assert got["policy"] == os.SCHED_OTHER
        assert any("rtprio" in w for w in got["warnings"]), got
    assert got["memory"] == "locked" or any("memlock" in w for w in got["warnings"]), got


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux scheduling")
def test_an_impossible_request_is_a_warning() -> None:
    got = _apply_in_child(0, (4095,), False)  # no such CPU
    assert got["cpu affinity"] == "all"
    assert len(got["warnings"]) == 1 and "CPU affinity [4095] refused" in got["warnings"][0]
