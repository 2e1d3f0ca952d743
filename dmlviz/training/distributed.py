"""Several processes through torch.distributed (launched by torchrun): process group, batch shards, the global-batch loss.

Each process trains on a contiguous shard of every global batch; the loss is computed on the
whole global batch, gathered in rank order with an autograd-aware all-gather, so the gradient
of every parameter equals the one-process gradient on the same global batch (DDP averages the
model's and the loss's gradients). Only rank 0 records and writes the run.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..losses import DMLLoss

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Processes:
    """Where this process stands: its rank, the world size, its device, and whether it writes the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 records and writes the run."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every process (no-op alone)."""
        if self.distributed:
            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (a picklable object made of plain Python values), on every rank."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def any(self, flag: torch.Tensor) -> torch.Tensor:
        """A 0/1 tensor that is 1 when ``flag`` (a 0/1 float tensor) is 1 on any rank; stays on the device."""
        if self.distributed:
            flag = flag.clone()
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return flag


def from_environment(device: Any) -> tuple[Processes, Any]:
    """Join the process group that torchrun describes (WORLD_SIZE > 1) and pick this rank's device.

    CUDA: NCCL and ``cuda:LOCAL_RANK``; CPU: gloo. Alone (no WORLD_SIZE, or 1): no group, the device as asked.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Processes(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = (device == "auto" and torch.cuda.is_available()) or str(device).startswith("cuda")
    if want_cuda:
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} was asked but CUDA is not available here; use device='cpu' or 'auto'")
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    else:
        device = "cpu"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if want_cuda else "gloo", timeout=_dt.timedelta(minutes=30))
    logger.info("process %d of %d on %s", rank, world, device)
    return Processes(rank, world, local), device


def shutdown(processes: Processes) -> None:
    """Leave the process group joined by :func:`from_environment`."""
    if processes.distributed and dist.is_initialized():
        dist.destroy_process_group()


def shard(batch: np.ndarray, processes: Processes, unit: int) -> np.ndarray:
    """This rank's contiguous part of a global batch [B], in whole units (m-per-class batches: m samples of a class in a row).

    Shards are equal: a batch whose units do not divide by the world size loses its last
    few units (the one-process run keeps them; the README says so).
    """
    if not processes.distributed:
        return batch
    per_rank = (len(batch) // unit) // processes.world_size * unit
    return batch[processes.rank * per_rank : (processes.rank + 1) * per_rank]


def check_shardable(batches: list[np.ndarray], processes: Processes, unit: int) -> None:
    """Every rank needs at least one unit (a sample, or m samples of a class) of each batch."""
    if not processes.distributed:
        return
    smallest = min((len(b) for b in batches), default=0)
    if smallest // unit < processes.world_size:
        what = f"classes of {unit} samples" if unit > 1 else "samples"
        raise ValueError(
            f"a batch of {smallest} holds {smallest // unit} {what}, fewer than the {processes.world_size} processes; "
            f"use batch_size >= {processes.world_size * unit}"
        )


class _GatherWithGradient(torch.autograd.Function):
    """All-gather of equal shards [b, D] → [W·b, D] in rank order; backward sums every rank's gradient and keeps this rank's rows."""

    @staticmethod
    def forward(ctx: Any, shard_rows: torch.Tensor) -> torch.Tensor:
        world, rank = dist.get_world_size(), dist.get_rank()
        parts = [torch.empty_like(shard_rows) for _ in range(world)]
        dist.all_gather(parts, shard_rows)
        ctx.rank, ctx.rows = rank, shard_rows.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


class GlobalBatchLoss(torch.nn.Module):
    """model + loss as one module for DDP: embeds this rank's shard, gathers every shard, returns the loss of the global batch.

    ``forward(inputs [b, ...], labels [b]) -> (loss, embeddings [b, D])``. The gather keeps the
    gradient, so each rank's embeddings receive the gradient
    of every rank's copy of the loss: W times the one-process gradient, which DDP's average
    over W ranks brings back to it; the loss's centers/proxies get the one-process gradient
    on every rank. pytorch-metric-learning's DistributedLossWrapper instead gathers without
    gradient and multiplies the loss by W, which is exact for the network but gives proxies
    W times their gradient.
    """

    def __init__(self, net: torch.nn.Module, loss_fn: DMLLoss, processes: Processes) -> None:
        super().__init__()
        self.net, self.loss_fn, self.processes = net, loss_fn, processes

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=inputs.device.type == "cuda"):
            embeddings = self.net(inputs)
        embeddings = embeddings.float()
        everything, all_labels = embeddings, labels
        teacher = self.loss_fn.teacher_embed(inputs) if self.loss_fn.uses_teacher else None
        if self.processes.distributed:
            everything = _GatherWithGradient.apply(embeddings.contiguous())
            gathered = [torch.empty_like(labels) for _ in range(self.processes.world_size)]
            dist.all_gather(gathered, labels.contiguous())  # shards of equal size: see shard()
            all_labels = torch.cat(gathered)
            if teacher is not None:
                shards = [torch.empty_like(teacher) for _ in range(self.processes.world_size)]
                dist.all_gather(shards, teacher.contiguous())
                teacher = torch.cat(shards)
        if self.loss_fn.uses_teacher:
            self.loss_fn.set_teacher_batch(teacher)
        return self.loss_fn(everything, all_labels, check=False), embeddings
