"""Data order of training: :class:`EpochBatchSampler` (batches of indices that depend only on
(seed, pass, index), so a resumed run sees exactly the batches it would have seen) and the
process group of a ``torchrun`` start (:func:`rank_and_world_size`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from pconv_lib.util.errors import BadValue

__all__ = ["EpochBatchSampler", "first_batch", "past_deadline", "rank_and_world_size"]


def rank_and_world_size() -> tuple[int, int]:
    """(rank, world_size); joins the process group (NCCL on CUDA, gloo on CPU) when started by
    torchrun (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def past_deadline(deadline: float, device: torch.device, world_size: int = 1) -> bool:
    """Whether ``time.monotonic()`` has passed ``deadline``; with several processes rank 0's clock
    decides for all (a broadcast), so that every rank stops after the same step."""
    if world_size == 1:
        return time.monotonic() > deadline
    late = torch.tensor(float(time.monotonic() > deadline), device=device)
    dist.broadcast(late, 0)
    return bool(late)


def first_batch(data: Dataset | None, count: int) -> dict | None:
    """The first ``count`` items of ``data`` (fewer if it is smaller) as one batch; None without data."""
    if data is None:
        return None
    return next(iter(DataLoader(data, batch_size=min(count, len(data)))))  # type: ignore[arg-type]


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of indices, reshuffled every pass over the data, resumable at any batch.

    Pass ``p`` uses the permutation ``randperm(n, seed=(seed, p))``; its batches are consecutive
    slices of ``batch_size * world_size`` indices, of which rank ``r`` takes every
    ``world_size``-th one. The sampler yields ``num_batches`` batches from global batch
    ``start`` on, crossing passes as needed, and calls ``dataset.set_epoch(p)`` when a pass
    begins so that crops and masks change between passes.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        seed: int,
        start: int = 0,
        num_batches: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.dataset = dataset
        self.n = len(dataset)  # type: ignore[arg-type]
        self.global_batch = batch_size * world_size
        if self.n < self.global_batch:
            raise BadValue(
                f"the dataset has {self.n} items, fewer than one batch of {self.global_batch} "
                f"(batch size {batch_size} x {world_size} processes); add images or lower the batch size"
            )
        self.batches_per_pass = self.n // self.global_batch
        self.seed, self.start, self.rank, self.world_size = seed, start, rank, world_size
        self.num_batches = num_batches

    def __len__(self) -> int:
        return self.num_batches if self.num_batches is not None else self.batches_per_pass

    def _permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=generator)

    def __iter__(self) -> Iterator[list[int]]:
        order, order_epoch = None, None
        for batch in range(self.start, self.start + len(self)):
            epoch, within = divmod(batch, self.batches_per_pass)
            if epoch != order_epoch:  # once per pass (ImageNet: a 16 ms permutation), not per batch
                order, order_epoch = self._permutation(epoch), epoch
                if hasattr(self.dataset, "set_epoch"):
                    self.dataset.set_epoch(epoch)
            chunk = order[within * self.global_batch : (within + 1) * self.global_batch]
            yield chunk[self.rank :: self.world_size].tolist()
