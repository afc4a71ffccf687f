"""Multi-process data parallelism through ``torchrun`` (gloo on CPU, NCCL on CUDA), on one machine or
several (``torchrun --nnodes``; docs/gpu-and-scale.md).

Each process trains on its own slice of every global batch; after ``backward`` the gradients of the
trainable parameters are averaged across processes (one flat all-reduce), so every process takes the
same optimiser step. Without ``torchrun`` (no ``WORLD_SIZE``) everything runs in one process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job: rank, number of processes, rank on its machine, device."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str) -> DistEnv:
        """Join the ``torchrun`` process group when launched by it; otherwise a single process."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls(device=device)
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if device == "cuda":
            torch.cuda.set_device(local_rank)
            device = f"cuda:{local_rank}"
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        return cls(rank=rank, world=world, device=device, local_rank=local_rank)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def union(self, flags: np.ndarray) -> np.ndarray:
        """Element-wise OR of a boolean array over the processes (the same length everywhere)."""
        if self.world == 1:
            return flags
        tensor = torch.from_numpy(flags.astype(np.uint8)).to(self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor.cpu().numpy().astype(bool)

    def average_gradients(self, parameters: Sequence[nn.Parameter]) -> None:
        """Replace each gradient by its mean over the processes (missing gradients count as zero)."""
        if self.world == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for parameter, grad in zip(parameters, grads, strict=True):
            parameter.grad = flat[offset : offset + grad.numel()].view_as(grad)
            offset += grad.numel()

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average logged scalars over the processes (same keys everywhere)."""
        if self.world == 1:
            return values
        tensor = torch.tensor(list(values.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return dict(zip(values, (tensor / self.world).tolist(), strict=True))

    def gather_rows(self, local: torch.Tensor, total: int) -> torch.Tensor:
        """Reassemble rows computed round-robin (row i on rank i % world) into one ``total``-row tensor."""
        if self.world == 1:
            return local
        size = (total + self.world - 1) // self.world
        padded = torch.zeros((size, *local.shape[1:]), dtype=local.dtype, device=local.device)
        padded[: len(local)] = local
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        out = torch.empty((total, *local.shape[1:]), dtype=local.dtype, device=local.device)
        for rank, part in enumerate(parts):
            count = len(range(rank, total, self.world))
            out[rank :: self.world] = part[:count]
        return out

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
