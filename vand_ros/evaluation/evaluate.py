"""Evaluate an exported model (or the scripted demonstrator) in closed loop: the API of the CLI and the demo.

    refs = reference_from_bags(["demos/"])                  # what the demonstrations did
    results = evaluate_model("policy.onnx", refs, ["wipe", "visit_abc"], conditions=["clean"])
    for r in results: print(r["behaviour"], r["condition"], r["mode"], r["success"], r["failures"])

Every run is deterministic given (model, behaviour, condition, mode, seed). Runs last
`SuccessConfig.duration_factor` (10) x the longest demonstration of the behaviour unless `duration` says.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from vand_ros.errors import VandError
from vand_ros.evaluation import conditions as C
from vand_ros.evaluation.closed_loop import Trajectory, run_closed_loop, trajectory_from_bag
from vand_ros.evaluation.metrics import (
    DEFAULT_SUCCESS,
    BehaviourReference,
    SuccessConfig,
    evaluate_trajectory,
    reference_from_trajectories,
)
from vand_ros.simulation import demonstrators as D
from vand_ros.simulation.physics import Sim


def reference_from_bags(paths: Sequence[str | Path]) -> dict[str, BehaviourReference]:
    """Measure every demonstration bag under `paths` (per behaviour: amplitude, frequency, shake, order,
    time to complete)."""
    from vand_ros.data.reader import find_bags

    return reference_from_trajectories([trajectory_from_bag(p) for p in find_bags(paths)])


def reference_from_demonstrator(
    behaviours: Sequence[str], seed: int = 0, episodes: int = 3
) -> dict[str, BehaviourReference]:
    """Measure scripted demonstrations run in closed loop (episodes of `vand-ros demos --seed SEED`)."""
    trajs = []
    for b in behaviours:
        for ep in range(episodes):
            demo = D.make(b, D.episode_rng(seed, ep, b))
            sc = C.Scenario("clean", b, demo, demo.start_base, demo.start_arm, ((0.0, b),), seed=seed)
            trajs.append(run_closed_loop(sc, demo.duration))
    return reference_from_trajectories(trajs)


def model_modes(model: str | Path) -> tuple[list[str], str]:
    """(execution modes the model supports, its card's default mode)."""
    from vand_ros.runtime.policy import PolicyRuntime

    card = PolicyRuntime(model).card
    supported = card.raw.get("execution", {}).get("supported_modes") or [
        m for m in card.modes if m != "train"
    ]
    return [str(m) for m in supported], card.default_mode


def run_one(
    model: str | Path | None,
    behaviour: str,
    condition: str,
    ref: BehaviourReference,
    mode: str | None = None,
    seed: int = 0,
    duration: float | None = None,
    cfg: SuccessConfig = DEFAULT_SUCCESS,
    sim: Sim | None = None,
    on_step: Callable[[Sim], None] | None = None,
) -> tuple[dict[str, Any], Trajectory]:
    """One closed-loop run and its metrics, as a JSON-able record (`sim`, `on_step`: run_closed_loop's)."""
    duration = duration or cfg.duration_factor * ref.demo_duration
    sc = C.scenario(condition, behaviour, seed, duration)
    traj = run_closed_loop(sc, duration, model, mode, seed, sim, on_step)
    m = evaluate_trajectory(traj, ref, cfg)
    record = {
        "model": str(model) if model is not None else "demonstrator",
        "behaviour": behaviour,
        "condition": condition,
        "mode": traj.meta["mode"],
        "seed": seed,
        "duration": duration,
        "success": m.success,
        "failures": m.failures,
        "metrics": m.values,
        "holds": traj.meta["holds"],
        "resets": traj.meta["resets"],
        "wall_s": traj.meta["wall_s"],
        "source": "in-process closed loop (evaluation.closed_loop), no DDS",
    }
    return record, traj


Planned = tuple[str, str, "str | None", int]  # (behaviour, condition, mode, seed) of one run


def planned_runs(
    model: str | Path | None,
    refs: dict[str, BehaviourReference],
    behaviours: Sequence[str],
    conditions: Sequence[str] = ("clean",),
    modes: Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
) -> list[Planned]:
    """Every (behaviour, condition, mode, seed) run of `model` (None = the scripted demonstrator), in the
    order they are run and reported. `modes` None: every mode the model supports."""
    if model is None:
        all_modes: list[str | None] = [None]
    else:
        supported, _ = model_modes(model)
        if modes:
            unknown = [m for m in modes if m not in supported]
            if unknown:
                raise VandError(
                    f"{model} does not support execution mode(s) {unknown} (supports {supported})"
                )
        all_modes = list(modes) if modes else list(supported)
    for behaviour in behaviours:
        if behaviour not in refs:
            raise VandError(f"no demonstrations of {behaviour!r} to compare with (have {sorted(refs)})")
    return [
        (behaviour, condition, mode, seed)
        for behaviour in behaviours
        for condition in conditions
        if C.applies(condition, behaviour)
        for mode in all_modes
        for seed in seeds
    ]


def stored_run(
    model: str | Path | None,
    ref: BehaviourReference,
    planned: Planned,
    duration: float | None = None,
    cfg: SuccessConfig = DEFAULT_SUCCESS,
    out_dir: str | Path | None = None,
    save_trajectories: bool = False,
    progress: Callable[[str], None] | None = None,
    tags: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One planned run's record. With `out_dir` it is stored in
    OUT/<behaviour>/<condition>/<mode>_s<seed>.json, and a run whose record exists is read, not re-run (the
    store is the source of truth)."""
    behaviour, condition, mode, seed = planned
    path = None
    if out_dir is not None:
        path = Path(out_dir) / behaviour / condition / f"{mode or 'script'}_s{seed}.json"
        if path.is_file():
            return {**json.loads(path.read_text(encoding="utf-8")), **(tags or {})}
    record, traj = run_one(model, behaviour, condition, ref, mode, seed, duration, cfg)
    record.update(tags or {})
    if progress:
        verdict = "ok" if record["success"] else "FAIL " + ",".join(record["failures"])
        progress(f"{behaviour}/{condition}/{record['mode']}/s{seed}: {verdict} ({record['wall_s']:.1f} s)")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if save_trajectories:
            traj.save(path.with_suffix(".npz"))
        tmp = path.with_suffix(".json.tmp")  # a run killed mid-write leaves no half record behind
        tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
        tmp.replace(path)
    return record


def evaluate_model(
    model: str | Path | None,
    refs: dict[str, BehaviourReference],
    behaviours: Sequence[str],
    conditions: Sequence[str] = ("clean",),
    modes: Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
    duration: float | None = None,
    cfg: SuccessConfig = DEFAULT_SUCCESS,
    out_dir: str | Path | None = None,
    save_trajectories: bool = False,
    progress: Callable[[str], None] | None = None,
    tags: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every planned run of `model` (see `planned_runs`, `stored_run`; `tags` are added to every record,
    e.g. which regulariser and training seed made the model)."""
    return [
        stored_run(model, refs[p[0]], p, duration, cfg, out_dir, save_trajectories, progress, tags)
        for p in planned_runs(model, refs, behaviours, conditions, modes, seeds)
    ]


def render_run(
    record: dict[str, Any],
    model: str | Path | None,
    out: str | Path,
    ref: BehaviourReference,
    seconds: float = 30.0,
    cfg: SuccessConfig = DEFAULT_SUCCESS,
) -> int:
    """Re-run the run `record` describes (runs are deterministic) and write its last `seconds` as a GIF
    (or MP4); checks that the re-run scores as the record says. Returns the number of frames."""
    from vand_ros.simulation.render import VideoRecorder

    duration = float(record["duration"])
    sim = Sim()
    video = VideoRecorder(sim, Path(out), fps=10, width=240, height=180, start=duration - seconds)
    rerun, _ = run_one(
        model, record["behaviour"], record["condition"], ref, record["mode"], int(record["seed"]),
        duration, cfg, sim=sim, on_step=video.capture,
    )  # fmt: skip
    if rerun["success"] != record["success"] or sorted(rerun["failures"]) != sorted(record["failures"]):
        raise VandError(
            f"re-running {record['behaviour']}/{record['condition']}/{record['mode']} for the video gave "
            f"{rerun['failures']} instead of {record['failures']}: the run is not reproducible"
        )
    return video.save()


def with_duration_factor(cfg: SuccessConfig, factor: float) -> SuccessConfig:
    return replace(cfg, duration_factor=factor)
