"""The tuning rule and the progress score: pure logic on run records."""

from __future__ import annotations

from typing import Any

import pytest

from vand_ros.evaluation.metrics import PERIODIC_CHECKS, progress_score
from vand_ros.evaluation.tuning import best_and_worst, choose


def _run(variant: str, mode: str, failed_checks: int, **metrics: Any) -> dict[str, Any]:
    """A wipe run that failed the first `failed_checks` of the periodic checks (progress 1 - n/6)."""
    return {
        "regulariser": variant.split(maxsplit=1)[0],
        "variant": variant,
        "mode": mode,
        "behaviour": "wipe",
        "success": failed_checks == 0,
        "failures": list(PERIODIC_CHECKS[:failed_checks]),
        "metrics": metrics,
    }


def test_progress_score() -> None:
    assert progress_score("wipe", [], {}) == 1.0
    assert progress_score("patrol", ["drift", "shake"], {}) == pytest.approx(4 / 6)
    assert progress_score("patrol", ["drift", "divergence"], {}) == 0.0
    assert progress_score("visit_cba", ["incomplete"], {"stations_in_order": 2}) == pytest.approx(2 / 3)
    assert progress_score("visit_abc", ["divergence"], {"stations_in_order": 3}) == 0.0


def test_choose_ranks_by_success_then_progress_and_keeps_noise_on() -> None:
    runs = [
        _run("vand", "deterministic", 0),
        _run("vand", "deterministic", 2),
        _run("vand", "noise", 3),
        _run("vand", "stochastic", 2),
        _run("vand beta=0.2", "deterministic", 1),
        _run("vand beta=0.2", "noise", 0),
        _run("vand beta=0.2", "noise", 0),
        _run("vand beta=0.2", "stochastic", 4),
        _run("gal", "deterministic", 4),
        _run("gal gal_p_h=0.1", "deterministic", 3),
    ]
    got = choose(runs)
    # success first: vand beta=0.2 / noise (2 of 2) beats vand / deterministic (1 of 2)
    assert (got["vand"]["variant"], got["vand"]["mode"], got["vand"]["noise_on_mode"]) == (
        "vand beta=0.2", "noise", "noise",
    )  # fmt: skip
    assert got["vand"]["success"] == 1.0
    # success ties at 0: progress decides
    assert got["gal"]["variant"] == "gal gal_p_h=0.1"
    runs[1]["failures"] = []
    runs[1]["success"] = True
    got = choose(runs)  # now both are 2 of 2 and 1.0 progress: the noise-on mode is still chosen apart
    assert got["vand"]["success"] == 1.0
    noise_on = got["vand"]["noise_on_mode"]
    assert noise_on in ("noise", "stochastic") and noise_on != "deterministic"


def test_best_and_worst() -> None:
    a = _run("vand", "noise", 0, amp_rel_mean=1.3, freq_rel_mean=1.0)
    b = _run("none", "deterministic", 0, amp_rel_mean=1.02, freq_rel_mean=0.99)
    c = _run("gal", "deterministic", 6)
    d = _run("nrnn", "deterministic", 5)
    best, worst = best_and_worst([a, b, c, d])
    assert best is b and worst is c
