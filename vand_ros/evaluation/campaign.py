"""A comparison campaign: train every regulariser on the same bags, export, run each in closed loop.

Everything lives in one output folder and every step is resumable (a finished step's output is reused):

    OUT/dataset/                       the dataset, built once from the demonstration (+ training-only) bags
    OUT/reference.json                 what the demonstrations did (measured from the demonstration bags)
    OUT/runs/<model>/                  training run (vand_ros.learning.train)
    OUT/models/<model>.onnx            its export
    OUT/results/<model>/[validation/]<behaviour>/<condition>/<mode>_s<seed>.json   one closed-loop run

<model> is `<regulariser>[_<key>=<value>...]_s<training seed>`. A job (one model) trains, exports and runs
every behaviour x condition x mode. Where the work runs is a backend (evaluation.backends): jobs in a local
pool of `jobs` processes (one torch thread each), or each training and each closed-loop run as a task on
a Ray cluster.
Closed-loop runs are in process without DDS (vand_ros.evaluation.closed_loop: the node's assembler, tick
logic, ONNX runtime and safety filter); test runs use scenario seed = training seed, validation runs
(tuning) use tuning.VALIDATION_SEED_OFFSET + training seed, so no test scenario ever chooses a setting.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vand_ros.errors import VandError
from vand_ros.evaluation.evaluate import Planned, planned_runs, stored_run
from vand_ros.evaluation.metrics import (
    BehaviourReference,
    SuccessConfig,
    load_references,
    save_references,
)
from vand_ros.evaluation.report import card_summary
from vand_ros.evaluation.tuning import GRID, VALIDATION_SEED_OFFSET, choose

if TYPE_CHECKING:
    from vand_ros.evaluation.backends import Backend


def log(text: str) -> None:
    print(f"[evaluate {time.strftime('%H:%M:%S')}] {text}", flush=True)


@dataclass(frozen=True)
class Job:
    """One model: a regulariser with training-config overrides and a training seed, and where it runs."""

    regulariser: str
    overrides: tuple[tuple[str, Any], ...] = ()
    seed: int = 0
    validation: bool = False

    @property
    def variant(self) -> str:
        """'vand' or 'vand beta=0.2': the report's row label."""
        return variant_name(self.regulariser, dict(self.overrides))

    @property
    def name(self) -> str:
        return f"{self.variant.replace(' ', '_')}_s{self.seed}"


def variant_name(reg: str, overrides: dict[str, Any]) -> str:
    """'vand' or 'vand beta=0.2': the row label and (spaces as _) the model's file name."""
    settings = (f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(overrides.items()))
    return " ".join([reg, *settings])


@dataclass(frozen=True)
class Campaign:
    """What every job of one output folder shares."""

    out: Path
    behaviours: tuple[str, ...]
    conditions: tuple[str, ...]
    modes: tuple[str, ...] | None = None  # None: every mode each model supports
    cfg: SuccessConfig = field(default_factory=SuccessConfig)
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig values every job starts from
    threads: int = 1
    save_trajectories: bool = False
    # Validation jobs run `scenarios` scenarios per model: seeds VALIDATION_SEED_OFFSET + training seed +
    # scenario_stride x k, k < scenarios (the sweep's stride is its number of training seeds, so no two
    # models share a scenario). One scenario per condition leaves 3 runs per cell with 3 training seeds,
    # too few to tell most effects from noise (docs/learnability.md, round 16).
    scenarios: int = 1
    scenario_stride: int = 1

    def prepare(
        self, bags: Sequence[str | Path], train_bags: Sequence[str | Path] = ()
    ) -> dict[str, BehaviourReference]:
        """Build OUT/dataset from all bags and measure OUT/reference.json from `bags` only (once)."""
        self.out.mkdir(parents=True, exist_ok=True)
        if not (self.out / "dataset" / "dataset.json").is_file():
            from vand_ros.data.builder import build_dataset
            from vand_ros.data.config import DataConfig

            log("dataset: building from the bags")
            dataset, _ = build_dataset([*bags, *train_bags], DataConfig())
            dataset.save(self.out / "dataset")
        else:
            log(f"dataset: reusing {self.out / 'dataset'}")
        ref_path = self.out / "reference.json"
        if not ref_path.is_file():
            from vand_ros.evaluation.evaluate import reference_from_bags

            log("reference: measuring the demonstrations")
            save_references(reference_from_bags(bags), ref_path)
        return load_references(ref_path)

    def run(
        self, jobs: Sequence[Job], workers: int = 1, backend: Backend | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Run `jobs` (on `backend`, by default a local pool of `workers` processes); returns (every run
        record in job order, {model name: card summary})."""
        if not jobs:
            return [], {}
        from vand_ros.evaluation.backends import LocalBackend

        outputs = (backend or LocalBackend(workers)).run(self, list(jobs))
        runs = [r for rs, _ in outputs for r in rs]
        cards = {job.name: card for job, (_, card) in zip(jobs, outputs, strict=True)}
        return runs, cards


def tuning_jobs(regularisers: Sequence[str], base: dict[str, dict[str, Any]]) -> list[Job]:
    """One validation job (training seed 0) per setting of tuning.GRID, on top of the `base` overrides."""
    return [
        Job(reg, tuple(sorted({**base.get(reg, {}), **setting}.items())), 0, validation=True)
        for reg in regularisers
        for setting in GRID[reg]
    ]


def chosen_overrides(runs: Sequence[dict[str, Any]], jobs: Sequence[Job]) -> dict[str, dict[str, Any]]:
    """{regulariser: the overrides of its chosen setting} from the validation `runs` of `jobs`."""
    choice = choose(list(runs))
    by_variant = {job.variant: dict(job.overrides) for job in jobs}
    return {reg: by_variant[c["variant"]] for reg, c in choice.items()}


def run_job(campaign: Campaign, job: Job) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train and export one model (unless done), then its closed-loop runs (unless stored)."""
    model = train_and_export(campaign, job)
    log(f"closed loop{' (validation scenarios)' if job.validation else ''}: {job.name}")
    runs = [run_planned(campaign, job, model, p) for p in job_plan(campaign, job, model)]
    return runs, card_summary(model)


def job_plan(campaign: Campaign, job: Job, model: Path) -> list[Planned]:
    """The closed-loop runs of one job's model, in report order."""
    refs = load_references(campaign.out / "reference.json")
    if job.validation:
        first = VALIDATION_SEED_OFFSET + job.seed
        seeds = tuple(first + campaign.scenario_stride * k for k in range(campaign.scenarios))
    else:
        seeds = (job.seed,)
    behaviours = [b for b in campaign.behaviours if b in refs]
    return planned_runs(model, refs, behaviours, campaign.conditions, campaign.modes, seeds)


def run_planned(campaign: Campaign, job: Job, model: Path, planned: Planned) -> dict[str, Any]:
    """One closed-loop run of a job's model, stored under OUT/results (read back if it is already there)."""
    refs = load_references(campaign.out / "reference.json")
    return stored_run(
        model,
        refs[planned[0]],
        planned,
        cfg=campaign.cfg,
        out_dir=campaign.out / "results" / job.name / ("validation" if job.validation else ""),
        save_trajectories=campaign.save_trajectories,
        progress=lambda text: log(f"  {job.name} {text}"),
        tags={
            "regulariser": job.regulariser,
            "variant": job.variant,
            "train_seed": job.seed,
            "model_name": job.name,
        },
    )


def train_and_export(campaign: Campaign, job: Job) -> Path:
    """Train the job's model (unless trained) and export it. Jobs that differ only in execution-side
    fields (checkpoint.EXECUTION_FIELDS: chunk execution, base deadband) share one training run, exported
    once per setting; a lock on the run folder makes a second job wait for the first one's training."""
    model = campaign.out / "models" / f"{job.name}.onnx"
    if model.is_file():
        return model
    from vand_ros.learning.checkpoint import CHECKPOINT_NAME, EXECUTION_FIELDS, Checkpoint
    from vand_ros.learning.export import export_policy

    overrides = dict(job.overrides)
    execution = {k: overrides.pop(k) for k in EXECUTION_FIELDS if k in overrides}
    trained = Job(job.regulariser, tuple(sorted(overrides.items())), job.seed, job.validation)
    run_dir = campaign.out / "runs" / trained.name
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f".{trained.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (run_dir / "summary.json").is_file():
            _train(campaign, trained, run_dir)
    export_policy(Checkpoint.load(run_dir / CHECKPOINT_NAME).with_execution(**execution), model)
    return model


def _train(campaign: Campaign, job: Job, run_dir: Path) -> None:
    import torch

    from vand_ros.data.dataset import Dataset
    from vand_ros.learning.config import TrainConfig
    from vand_ros.learning.train import train

    values = {**campaign.train, **dict(job.overrides), "regulariser": job.regulariser, "seed": job.seed}
    cfg = TrainConfig(**values)
    validator = None
    if cfg.select_every:  # keep the checkpoint that does best in closed loop (evaluation.selection)
        from vand_ros.evaluation.selection import ClosedLoopValidator

        validator = ClosedLoopValidator(load_references(campaign.out / "reference.json"), campaign.behaviours)
    torch.set_num_threads(campaign.threads)
    t0 = time.perf_counter()
    log(f"train: {job.name}")
    train(Dataset.load(campaign.out / "dataset"), cfg, run_dir, progress=False, validator=validator)
    log(f"train: {job.name} done in {time.perf_counter() - t0:.0f} s")


def parse_overrides(items: Sequence[str], regularisers: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`[REG:]KEY=VALUE` strings -> {regulariser: {field: typed value}}, checked against TrainConfig."""
    import dataclasses

    from vand_ros.learning.config import TrainConfig

    types = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
    out: dict[str, dict[str, Any]] = {reg: {} for reg in regularisers}
    for item in items:
        target, _, assignment = item.rpartition(":")
        key, eq, text = assignment.partition("=")
        if not eq or key not in types or key in ("regulariser", "seed"):
            allowed = sorted(set(types) - {"regulariser", "seed"})
            raise VandError(f"--set {item!r}: expected [REG:]KEY=VALUE with KEY one of {allowed}")
        if target and target not in out:
            raise VandError(f"--set {item!r}: {target!r} is not among --regularisers {list(regularisers)}")
        kind = types[key]
        try:
            value: Any = (
                float(text) if kind == "float" else int(text) if kind == "int" else
                text.lower() in ("1", "true", "yes") if kind == "bool" else text
            )  # fmt: skip
        except ValueError:
            raise VandError(f"--set {item!r}: {key} expects a {kind}") from None
        for reg in [target] if target else regularisers:
            out[reg][key] = value
    return out
