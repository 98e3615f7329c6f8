"""The comparison campaign on a Ray cluster: a local head and one worker node, a worker killed mid-campaign.

Starts a real cluster on localhost (`ray start --head`, a head without CPUs so every task runs on the
worker node, then `ray start --address`), runs a toy campaign through `--backend ray --address`, kills the
worker node's raylet with SIGKILL once the first model is trained, starts a new worker node, and checks
the campaign finishes with the same run records (all but each run's own wall time and the output path)
and the same report as the local backend. The cluster is stopped afterwards. Needs the `cluster` extra
(`pip install .[cluster]`; .ci/run installs it); skipped without Ray.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="Ray is the optional `cluster` extra: pip install .[cluster]")
pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray(*args: str) -> None:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([RAY, *args], check=True, capture_output=True, timeout=120, env=env)


def _worker_raylets() -> list[int]:
    """PIDs of the raylets of worker nodes (the head's listens on sockets/raylet, workers' on raylet.N)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if args and args[0].endswith(b"/raylet") and any(b"sockets/raylet." in a for a in args):
                out.append(int(entry.name))
    return out


@pytest.fixture
def cluster() -> Iterator[str]:
    address = f"127.0.0.1:{_free_port()}"
    port = address.split(":")[1]
    try:
        _ray("start", "--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=false")
        _ray("start", f"--address={address}", "--num-cpus=1")
        yield address
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)


def _records(out: Path) -> list[dict]:
    runs = json.loads((out / "results.json").read_text())["runs"]
    return [{k: v for k, v in r.items() if k not in ("wall_s", "model")} for r in runs]


def test_campaign_on_a_ray_cluster_survives_a_dead_worker(tmp_path: Path, cluster: str) -> None:
    from vand_ros import cli

    bags = tmp_path / "bags"
    assert (
        cli.main(["demos", "--behaviour", "patrol", "--episodes", "1", "--seed", "5", "--out", str(bags)])
        == 0
    )
    common = ["--bags", str(bags), "--quick", "--regularisers", "none", "--seeds", "2",
              "--behaviours", "patrol", "--conditions", "clean", "push",
              "--duration-factor", "0.5"]  # fmt: skip
    assert cli.main(["evaluate", *common, "--out", str(tmp_path / "local"), "--jobs", "1"]) == 0

    out = tmp_path / "ray"
    driver = subprocess.Popen(
        [str(BIN / "vand-ros"), "evaluate", *common, "--out", str(out), "--backend", "ray",
         "--address", cluster],
        stdout=(tmp_path / "driver.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not list((out / "models").glob("*.onnx")):  # the first training is done: kill the worker
            assert driver.poll() is None and time.monotonic() < deadline, (
                tmp_path / "driver.log"
            ).read_text()
            time.sleep(0.2)
        (raylet,) = _worker_raylets()
        os.kill(raylet, signal.SIGKILL)
        time.sleep(2.0)
        _ray("start", f"--address={cluster}", "--num-cpus=1")  # a new worker node joins
        code = driver.wait(timeout=600)
    finally:
        if driver.poll() is None:
            driver.kill()
    log = (tmp_path / "driver.log").read_text()
    assert code == 0, log[-3000:]
    assert _records(out) == _records(tmp_path / "local")
    report = (out / "report.md").read_text().replace(str(out), "OUT")
    assert report == (tmp_path / "local" / "report.md").read_text().replace(str(tmp_path / "local"), "OUT")
