"""Exponential moving average of a policy's weights (Polyak averaging), the copy that is validated and kept.

With a constant learning rate the validation loss of consecutive epochs hops by up to 15 % at 80 epochs
(docs/learnability.md, round 13), and checkpoints of one training differ in closed loop as much as
training seeds do. Averaging the weights over the last few hundred optimiser steps smooths that noise
without changing what is optimised (Diffusion Policy, Chi et al. 2023, evaluates such an average). Measured
here in docs/learnability.md, round 14.

The average starts at the initial weights and uses a warm-up decay min(decay, (1 + t) / (10 + t)) at update
t, so the early average is not dominated by the random initialisation. Buffers (normalisation statistics)
are copied, not averaged. decay = 0 turns it off: `policy` is then the live policy itself.
"""

from __future__ import annotations

import copy

import torch

from vand_ros.learning.policy import Policy


class WeightAverage:
    """The averaged policy (`policy`) of a live one being trained; call `update` after each optimiser step."""

    def __init__(self, live: Policy, decay: float) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"decay: expected a number in [0, 1), found {decay}")
        self.decay = decay
        self.updates = 0
        self.policy = copy.deepcopy(live) if decay > 0 else live

    @property
    def enabled(self) -> bool:
        return self.decay > 0

    def rate(self) -> float:
        """The decay used by the next update."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, live: Policy) -> None:
        if not self.enabled:
            return
        keep = self.rate()
        self.updates += 1
        for averaged, current in zip(self.policy.parameters(), live.parameters(), strict=True):
            averaged.lerp_(current, 1.0 - keep)
        for buffer, source in zip(self.policy.buffers(), live.buffers(), strict=True):
            buffer.copy_(source)
