"""The tuning rule and the progress score: pure logic on run records."""

from __future__ import annotations

from typing import Any

import pytest

from vand_ros.evaluation.metrics import progress_score
from vand_ros.evaluation.tuning import best_and_worst, choose


def _run(variant: str, mode: str, success: bool, score: float, **metrics: Any) -> dict[str, Any]:
    reg = variant.split(maxsplit=1)[0]
    fails = [] if success else ["drift"]
    return {"regulariser": reg, "variant": variant, "mode": mode, "success": success, "score": score,
            "failures": fails, "metrics": metrics}  # fmt: skip


def test_progress_score() -> None:
    assert progress_score("wipe", [], {}) == 1.0
    assert progress_score("patrol", ["drift", "shake"], {}) == pytest.approx(4 / 6)
    assert progress_score("patrol", ["drift", "divergence"], {}) == 0.0
    assert progress_score("visit_cba", ["incomplete"], {"stations_in_order": 2}) == pytest.approx(2 / 3)
    assert progress_score("visit_abc", ["divergence"], {"stations_in_order": 3}) == 0.0


def test_choose_ranks_by_success_then_progress_and_keeps_noise_on() -> None:
    runs = [
        _run("vand", "deterministic", True, 1.0),
        _run("vand", "noise", False, 0.5),
        _run("vand", "stochastic", False, 0.6),
        _run("vand beta=0.2", "deterministic", False, 0.9),
        _run("vand beta=0.2", "noise", True, 1.0),
        _run("vand beta=0.2", "noise", True, 1.0),
        _run("vand beta=0.2", "stochastic", False, 0.1),
        _run("gal", "deterministic", False, 0.2),
        _run("gal gal_p_h=0.1", "deterministic", False, 0.3),
    ]
    got = choose(runs)
    # vand: deterministic (1/1) ties noise at beta=0.2 (2/2) on success; progress also ties -> either is a
    # best pair; the noise-on mode of the chosen setting must be a noise-on mode
    assert got["vand"]["success"] == 1.0 and got["vand"]["noise_on_mode"] in ("noise", "stochastic")
    assert got["gal"]["variant"] == "gal gal_p_h=0.1"  # success ties at 0, progress decides
    runs[0]["success"] = False
    got = choose(runs)
    assert (got["vand"]["variant"], got["vand"]["mode"], got["vand"]["noise_on_mode"]) == (
        "vand beta=0.2",
        "noise",
        "noise",
    )


def test_best_and_worst() -> None:
    a = _run("vand", "noise", True, 1.0, amp_rel_mean=1.3, freq_rel_mean=1.0)
    b = _run("none", "deterministic", True, 1.0, amp_rel_mean=1.02, freq_rel_mean=0.99)
    c = _run("gal", "deterministic", False, 0.0)
    c["failures"] = ["drift", "divergence"]
    d = _run("nrnn", "deterministic", False, 0.0)
    best, worst = best_and_worst([a, b, c, d])
    assert best is b and worst is c
