"""Where a campaign's work runs: a local process pool (default) or a Ray cluster (the `cluster` extra).

Both run the same functions (evaluation.campaign: `train_and_export`, `run_planned`) on the same output
folder, whose stored models and run records are the source of truth: a finished training or run is read
back, not redone. So the two backends give the same records (all but `wall_s`, the run's own timing) and
the same report, and a campaign interrupted on either resumes where it stopped.

    LocalBackend(workers)   jobs (one model each: train, export, every closed-loop run) in a pool of
                            `workers` spawned processes, one torch thread each.
    RayBackend(address)     every training (with its export) is a Ray task with one CPU (and one GPU
                            when the campaign trains with device cuda), then every closed-loop run is a
                            task with one CPU. A task whose worker dies is retried (Ray's max_retries) on
                            another worker, or when one joins. The workers need this package installed
                            and the campaign's output folder at the same path (a shared filesystem).
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from vand_ros.errors import VandError
from vand_ros.evaluation.campaign import Campaign, Job, job_plan, log, run_job, run_planned, train_and_export
from vand_ros.evaluation.report import card_summary

Output = tuple[list[dict[str, Any]], dict[str, Any]]  # one job's run records and its model's card summary
TASK_RETRIES = 5  # Ray retries of a task whose worker died


class Backend(Protocol):
    def run(self, campaign: Campaign, jobs: list[Job]) -> list[Output]:
        """Every job's output, in job order."""
        ...


class LocalBackend:
    def __init__(self, workers: int = 1) -> None:
        self.workers = workers

    def run(self, campaign: Campaign, jobs: list[Job]) -> list[Output]:
        if self.workers <= 1 or len(jobs) == 1:
            return [run_job(campaign, job) for job in jobs]
        ctx = multiprocessing.get_context("spawn")  # torch and onnxruntime threads do not survive a fork
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx) as pool:
            return list(pool.map(run_job, [campaign] * len(jobs), jobs))


class RayBackend:
    def __init__(self, address: str = "auto") -> None:
        self.address = address

    def run(self, campaign: Campaign, jobs: list[Job]) -> list[Output]:
        try:
            import ray
        except ImportError:
            raise VandError(
                "--backend ray needs Ray: pip install 'vand_ros[cluster]' (or pip install ray)"
            ) from None
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False)
            except ConnectionError as err:
                raise VandError(
                    f"no Ray cluster at {self.address!r} ({err}); start one with `ray start --head` "
                    "and pass its address (HOST:PORT), or use the local backend"
                ) from None
        gpus = 1 if campaign.train.get("device") == "cuda" else 0
        train = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=TASK_RETRIES)(train_and_export)
        one_run = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(run_planned)
        log(f"ray: {len(jobs)} trainings on {self.address}")
        models: list[Path] = ray.get([train.remote(campaign, job) for job in jobs])
        plans = [job_plan(campaign, job, model) for job, model in zip(jobs, models, strict=True)]
        log(f"ray: {sum(len(p) for p in plans)} closed-loop runs")
        futures = [
            [one_run.remote(campaign, job, model, planned) for planned in plan]
            for job, model, plan in zip(jobs, models, plans, strict=True)
        ]
        return [(ray.get(refs), card_summary(model)) for refs, model in zip(futures, models, strict=True)]
