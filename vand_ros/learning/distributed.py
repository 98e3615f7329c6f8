"""Data-parallel training across processes with torch.distributed, launched by torchrun.

    torchrun --standalone --nproc-per-node N $(which vand-ros) train DATASET --out RUN ...
    vand-ros train DATASET --out RUN --nproc N          # the same, torchrun started for you

Every process builds the same model from the same seed, draws the same shuffle and the same VAND noise for
the whole global batch, and trains on its share of the episodes (rank r takes episodes r, r + N, ...).
Each process's loss is its part of the global masked mean (local sum / global count), and after every
backward pass the gradients are summed across processes (one all-reduce of the flattened gradients, the
work DistributedDataParallel's reducer does), so every optimiser step is the single-process step on the
global batch, up to floating-point summation order, and the parameters stay identical on every rank.
Backend: gloo on CPU, NCCL on CUDA (each process on GPU `LOCAL_RANK`). Rank 0 alone writes the run
directory (checkpoint, TensorBoard, plots).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor

T = TypeVar("T")


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list[T]) -> list[T]:
        """This rank's share of a global batch."""
        return items[self.rank :: self.world]

    def rows(self, batch: int) -> slice:
        """This rank's rows of a tensor built for the whole global batch (see `shard`)."""
        return slice(self.rank, batch, self.world)

    def sum(self, values: Tensor) -> Tensor:
        """Sum `values` over every rank (in place; returns it)."""
        if self.active:
            torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.SUM)
        return values

    def sum_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Replace each gradient by its sum over every rank (missing gradients count as zeros)."""
        if not self.active:
            return
        params = list(params)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = self.sum(torch.cat([g.reshape(-1) for g in grads]))
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()


def from_environment(device: str) -> Distributed:
    """Join the process group torchrun describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK, ...);
    Distributed() when not started by torchrun. With CUDA, this rank's GPU becomes the current device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    if device == "cuda":
        torch.cuda.set_device(local)
    return Distributed(rank, world)


def shutdown() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
