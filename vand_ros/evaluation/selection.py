"""Checkpoint selection by closed-loop validation runs (robomimic: rollouts, not the validation loss).

    validator = ClosedLoopValidator(refs, behaviours)
    train(dataset, TrainConfig(select_every=10, ...), run_dir, validator=validator)

Every `select_every` epochs the training loop hands the validator a checkpoint; it exports it to a
temporary ONNX file and runs it in closed loop (the same in-process loop as the evaluation) on selection
scenarios: each behaviour, `conditions` (clean and push), `duration_factor` x the demonstration length, in
the card's default execution mode. The scenario seeds (SELECTION_SEED_OFFSET + k) are neither the test
scenarios (seed = training seed) nor the tuning/sweep validation scenarios (1000 + training seed), so the
selection never sees a scenario that later judges the model. Score: mean over runs of success + progress
score (metrics.progress_score), in [0, 2].
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path

from vand_ros.evaluation import conditions as C
from vand_ros.evaluation.metrics import BehaviourReference, SuccessConfig, progress_score
from vand_ros.learning.checkpoint import Checkpoint

SELECTION_SEED_OFFSET = 2000
SELECTION_CONDITIONS = ("clean", "push")
SELECTION_DURATION_FACTOR = 2.0


class ClosedLoopValidator:
    """Scores a checkpoint by short closed-loop runs; callable, so it plugs into `learning.train`."""

    def __init__(
        self,
        refs: dict[str, BehaviourReference],
        behaviours: Sequence[str],
        conditions: Sequence[str] = SELECTION_CONDITIONS,
        duration_factor: float = SELECTION_DURATION_FACTOR,
        scenarios: int = 1,
    ) -> None:
        self.refs = refs
        self.behaviours = [b for b in behaviours if b in refs]
        self.conditions = list(conditions)
        self.cfg = dataclasses.replace(SuccessConfig(), duration_factor=duration_factor)
        self.seeds = [SELECTION_SEED_OFFSET + k for k in range(scenarios)]
        self.calls = 0

    def __call__(self, ckpt: Checkpoint) -> float:
        from vand_ros.evaluation.evaluate import run_one
        from vand_ros.learning.export import export_policy

        self.calls += 1
        scores = []
        with tempfile.TemporaryDirectory(prefix="vand_select_") as tmp:
            model = Path(tmp) / "candidate.onnx"
            export_policy(ckpt, model)
            for behaviour in self.behaviours:
                for condition in self.conditions:
                    if not C.applies(condition, behaviour):
                        continue
                    for seed in self.seeds:
                        record, _ = run_one(
                            model, behaviour, condition, self.refs[behaviour], None, seed, cfg=self.cfg
                        )
                        scores.append(
                            float(record["success"])
                            + progress_score(behaviour, record["failures"], record["metrics"])
                        )
        return sum(scores) / max(1, len(scores))
