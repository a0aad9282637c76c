"""Data-parallel training pieces shared by the trainers (docs/distributed.md).

Under ``torchrun`` with ``w`` processes every rank draws the same global batch of clip indices
from the run's shared generator and trains on its share ``batch[rank::w]`` (``batch / w`` clips);
``DistributedDataParallel`` averages the ranks' gradients, which equals the gradient of the mean
loss over the global batch because every rank holds the same number of clips. The crops and
augmentation of a rank come from its own generator (``rank_generator``), so a run is
reproducible at a given world size.

BatchNorm keeps per-rank statistics (``nn.SyncBatchNorm`` is not used): with the official batch
of 64 on up to 8 devices a rank still normalises over >= 8 crops, SyncBatchNorm costs two
collectives per BatchNorm layer per step (EnvNet has 10), and gloo (CPU) has no SyncBatchNorm at
all. ``DistributedDataParallel`` broadcasts rank 0's running statistics before each forward, so
the checkpointed statistics are rank 0's. This is reasoning, not a measured accuracy comparison.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ssgan import distributed
from ssgan.distributed import DistributedError


def check_batch(batch_size: int, world: int) -> int:
    """The per-rank batch: ``batch_size / world``; refuse a remainder or fewer than 2 clips a
    rank (BatchNorm)."""
    if world <= 1:
        return batch_size
    if batch_size % world:
        raise DistributedError(
            f"batch_size={batch_size} is not divisible by the {world} processes: the global "
            "batch is split evenly (use e.g. --set "
            f"batch_size={batch_size - batch_size % world or world})"
        )
    if batch_size // world < 2:
        raise DistributedError(
            f"batch_size={batch_size} over {world} processes leaves {batch_size // world} clip a "
            "process; BatchNorm needs at least 2 (raise batch_size)"
        )
    return batch_size // world


def rank_slice(idx: torch.Tensor, rank: int, world: int) -> torch.Tensor | None:
    """This rank's clips of a global batch ``idx``, or None when the batch is skipped.

    One process: ``idx`` itself. Several: a batch (the epoch's last, shorter one) is first cut to a
    multiple of ``world`` so every rank holds the same number of clips, and skipped when that
    leaves fewer than 2 clips a rank.
    """
    if world == 1:
        return idx
    usable = len(idx) - len(idx) % world
    if usable // world < 2:
        return None
    return idx[:usable][rank::world]


def rank_generator(seed: int, rank: int) -> torch.Generator:
    """The generator of rank ``rank``'s crops and augmentation."""
    return torch.Generator().manual_seed(distributed.rank_seed(seed, rank))


def wrap(net: nn.Module, device: torch.device) -> nn.Module:
    """``net`` in ``DistributedDataParallel`` (rank 0's weights broadcast to all ranks)."""
    ids = [device.index] if device.type == "cuda" else None
    with distributed.collectives("wrapping the network in DistributedDataParallel"):
        return DistributedDataParallel(net, device_ids=ids)
