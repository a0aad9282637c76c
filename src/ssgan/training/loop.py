"""What the victim's and the GAN's epoch loops share: the guard that stops a diverged training
before it writes a checkpoint, and the end of an epoch in the order that keeps a run resumable
(the checkpoints themselves differ: ``victim_checkpoint``, ``gan_checkpoint``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from ssgan import distributed
from ssgan.errors import TrainingDivergedError
from ssgan.io import append_json_line, json_safe

Streams = TypeVar("Streams")


def check_finite(
    nets: Iterable[nn.Module],
    loss: float,
    *,
    what: str,
    epoch: int,
    out: Path | None,
    remedy: str,
) -> None:
    """Raise ``TrainingDivergedError`` when ``loss`` or any weight of ``nets`` is not finite.

    Called before the epoch's checkpoint, so the previous one stays: weights that went NaN would
    make a victim answer one class for every input, and a victim with NaN weights makes every
    gradient of a generator NaN."""
    if math.isfinite(loss) and all(
        bool(torch.isfinite(p).all()) for net in nets for p in net.parameters()
    ):
        return
    where = f"{out}: " if out is not None else ""
    raise TrainingDivergedError(
        f"{where}{what} diverged at epoch {epoch} (mean loss {loss}); no checkpoint of it was "
        f"written. {remedy}"
    )


def close_epoch(
    out: Path | None,
    record: Mapping[str, Any],
    *,
    checkpoint_due: bool,
    gather_streams: Callable[[], Streams],
    save_last: Callable[[Streams], None],
) -> None:
    """End an epoch on every rank: gather the ranks' random streams when a checkpoint is due (a
    collective), then on rank 0 append the epoch's line to ``metrics.jsonl`` and only then write
    the ``last`` checkpoint, then wait for rank 0.

    The order is what makes a crash harmless: killed between the two writes, the run holds a
    metrics line past its checkpoint, which the resume trims (``ssgan.io.trim_metrics``) and
    writes again; the other order would lose the line of an epoch the checkpoint holds."""
    save = partial(save_last, gather_streams()) if checkpoint_due else None
    if out is not None and distributed.is_main():
        append_json_line(out / "metrics.jsonl", json_safe(dict(record)))
        if save is not None:
            save()
    distributed.barrier("waiting for rank 0's checkpoint")
