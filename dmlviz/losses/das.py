"""Densely-Anchored Sampling, DAS (Liu et al., ECCV 2022): synthetic embeddings for any pair loss, as the authors make them.

Official code: lizhaoliu-Lec/DAS, ``modules/embedding_producer.py`` (``DenselyAnchoredSampling``,
``MemoryBank``). Every batch, before producing:

- DFS counts, per class, how often each dimension is among the ``num_scale`` largest values of
  the class's embeddings (a frequency matrix C × D);
- MTS pushes every non-zero intra-class difference x_i − x_j of the batch into the class's FIFO
  bank of ``bank_size`` transformations (when a batch brings more than the bank holds, the bank
  keeps the batch's last ones, as the authors' queue does).

Then ``num_produce`` copies of the batch (detached: no gradient flows through a synthetic
point, the authors' ``--detach`` for CUB and Cars) have their class's most frequent dimensions
multiplied by factors drawn from U(``scale_low``, ``scale_high``), get ``shift`` × a random
transformation of their class's bank added, and are re-normalised. The loss then runs on real and
synthetic embeddings together, each synthetic one labelled as its source.

Defaults are the authors' CUB/Cars commands (``table1.sh``): 3 produced per sample, 8 dimensions
scaled within (0.99, 1.01), bank 10, shift 0.01; SOP used (0.5, 2.0) and 0.1. Where dmlviz
differs: random draws come from torch's generator (theirs mix Python's ``random``); the state
(frequencies, banks) are buffers, so a resumed run continues with them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_positive_float, check_positive_int


class DenselyAnchoredSampling(nn.Module):
    """DAS's state and its producer: ``update(x [B, D], labels [B])`` then ``produce(x, labels) -> (x' [n·B, D], labels')``."""

    def __init__(self, num_classes: int, dim: int, num_produce: int = 3, num_scale: int = 8, scale_low: float = 0.99,
                 scale_high: float = 1.01, bank_size: int = 10, shift: float = 0.01) -> None:
        super().__init__()
        self.num_produce = check_positive_int("das_num_produce", num_produce)
        self.num_scale = check_positive_int("das_num_scale", num_scale)
        if self.num_scale > dim:
            raise ValueError(f"das_num_scale must be at most the embedding dimension {dim}, got {num_scale}")
        self.scale_low = check_positive_float("das_scale_low", scale_low, example=0.99)
        self.scale_high = check_positive_float("das_scale_high", scale_high, example=1.01)
        if self.scale_high < self.scale_low:
            raise ValueError(f"das_scale_high ({scale_high}) must be >= das_scale_low ({scale_low})")
        self.bank_size = check_positive_int("das_bank_size", bank_size)
        self.shift = check_positive_float("das_shift", shift, allow_zero=True, example=0.01)
        self.register_buffer("frequency", torch.zeros(num_classes, dim))
        self.register_buffer("bank", torch.zeros(num_classes, self.bank_size, dim))
        self.register_buffer("pointer", torch.zeros(num_classes, dtype=torch.long))

    @torch.no_grad()
    def update(self, x: torch.Tensor, labels: torch.Tensor) -> None:
        """Count the batch's top dimensions per class and push its intra-class differences into the banks.

        Vectorised over classes, with no host sync: each class's differences keep their order (members in batch order,
        x_i − x_j row-major), and each lands where the authors' FIFO queue would put it.
        """
        top = torch.topk(x, k=self.num_scale, dim=1).indices  # [B, k]
        self.frequency.index_put_((labels[:, None].expand_as(top), top), torch.ones_like(top, dtype=self.frequency.dtype), accumulate=True)
        b, size, classes = len(labels), self.bank_size, self.bank.shape[0]
        diffs = (x[:, None, :] - x[None, :, :]).reshape(b * b, -1)  # [B², D], row-major (i, j)
        pair_class = labels[:, None].expand(b, b).reshape(-1)
        valid = (labels[:, None] == labels[None, :]).reshape(-1) & (diffs.abs().sum(dim=1) > 0)
        key = torch.where(valid, pair_class, torch.full_like(pair_class, classes))  # invalid pairs sort last
        order = torch.argsort(key, stable=True)
        sorted_key = key[order]
        counts = torch.bincount(key, minlength=classes + 1)[:classes]  # q per class
        starts = torch.cumsum(counts, 0) - counts
        c = sorted_key.clamp(max=classes - 1)
        rank = torch.arange(b * b, device=x.device) - starts[c]  # position in its class's list
        q, ptr = counts[c], self.pointer[c]
        overflow = q > size  # the authors' queue keeps the last `size` rows, at 0..size-1, pointer unchanged
        slot = torch.where(overflow, rank - (q - size), (ptr + rank) % size)
        keep = (sorted_key < classes) & (slot >= 0)
        target_class = torch.where(keep, c, torch.full_like(c, classes))  # dropped rows go to a scratch class
        padded = torch.cat([self.bank, self.bank.new_zeros(1, size, self.bank.shape[2])])
        padded.index_put_((target_class, torch.where(keep, slot, torch.zeros_like(slot))), diffs[order])
        self.bank.copy_(padded[:classes])
        moved = torch.where(self.pointer + counts > size, self.pointer + counts - size, self.pointer + counts)
        self.pointer.copy_(torch.where((counts > 0) & (counts <= size), moved, self.pointer))

    def produce(self, x: torch.Tensor, labels: torch.Tensor, *, normalize: bool = True,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``num_produce`` synthetic copies of the (detached) batch [n·B, D] and their labels [n·B]."""
        base = x.detach()
        top = torch.topk(self.frequency[labels], k=self.num_scale, dim=1).indices  # the class's most frequent dimensions
        filled = self.bank.abs().sum(dim=2) > 0  # [C, Q] rows the bank holds (the authors' get())
        out, out_labels = [], []
        for _ in range(self.num_produce):
            scale = self.scale_low + (self.scale_high - self.scale_low) * torch.rand(top.shape, device=x.device, generator=generator)
            produced = base.scatter(1, top, base.gather(1, top) * scale)
            counts = filled[labels].sum(dim=1)  # [B]
            pick = (torch.rand(len(labels), device=x.device, generator=generator) * counts.clamp(min=1)).long()
            rank = filled[labels].long().cumsum(dim=1) - 1  # position among the filled rows
            choose = (rank == pick[:, None]) & filled[labels]
            bias = (choose[:, :, None].to(x.dtype) * self.bank[labels]).sum(dim=1)  # zero when the bank is empty
            produced = produced + self.shift * bias
            out.append(F.normalize(produced, dim=1) if normalize else produced)
            out_labels.append(labels)
        return torch.cat(out), torch.cat(out_labels)
