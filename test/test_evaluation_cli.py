"""`vand-ros evaluate --quick` on two tiny demonstration bags writes the results and the report."""

from __future__ import annotations

import json
from pathlib import Path

from vand_ros import cli


def test_evaluate_quick_writes_report_and_resumes(tmp_path: Path) -> None:
    bags = tmp_path / "bags"
    for b in ("wipe", "visit_abc"):
        assert (
            cli.main(["demos", "--behaviour", b, "--episodes", "1", "--seed", "5", "--out", str(bags)]) == 0
        )
    out = tmp_path / "out"
    argv = [
        "evaluate", "--bags", str(bags), "--out", str(out), "--quick", "--regularisers", "vand", "none",
        "--seeds", "1", "--behaviours", "wipe", "visit_abc", "--conditions", "clean", "push",
        "--duration-factor", "0.8",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    for name in ("report.md", "results.json", "reference.json", "success.png", "periodic.png"):
        assert (out / name).is_file(), name
    data = json.loads((out / "results.json").read_text())
    runs = data["runs"]
    # vand: 3 modes, none: 1 mode; 2 behaviours x 2 conditions each
    assert len(runs) == (3 + 1) * 2 * 2
    assert {r["mode"] for r in runs if r["regulariser"] == "vand"} == {"stochastic", "noise", "deterministic"}
    assert set(data["cards"]) == {"vand_s0", "none_s0"}
    report = (out / "report.md").read_text()
    assert "## Condition: push" in report and "| vand / noise |" in report and "sigma" in report
    stamp = (out / "results" / "vand_s0" / "wipe" / "clean" / "noise_s0.json").stat().st_mtime_ns
    assert cli.main(argv) == 0  # resumes: nothing re-run
    assert (out / "results" / "vand_s0" / "wipe" / "clean" / "noise_s0.json").stat().st_mtime_ns == stamp
