"""What the victim's and the GAN's epoch loops share: the guard that stops a diverged training
before it writes a checkpoint (resume, metrics trimming and rank streams are in ``ssgan.io`` and
the two ``*_checkpoint`` modules, whose checkpoint formats differ)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from ssgan.errors import TrainingDivergedError


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
