"""The clips an evaluation attacks: read from the dataset, batched by length, and the attack's
output checked before anything is scored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["Clips", "batches_by_length", "checked_adversarial", "read_clips"]


@dataclass(frozen=True)
class Clips:
    """A dataset's clips as the evaluation uses them: ``(time,)`` float waveforms (lengths may
    differ), integer labels and file names, index for index."""

    waveforms: list[Tensor]
    labels: list[int]
    files: list[str]


def read_clips(dataset: Any) -> Clips:
    """The clips of ``dataset`` (``.waveforms()``, ``.labels()``, ``.clips`` each with ``.name``);
    ``ValueError`` when it has none or the three lists differ in length."""
    waveforms = [torch.as_tensor(w).float().reshape(-1) for w in dataset.waveforms()]
    labels = [int(v) for v in dataset.labels()]
    files = [str(c.name) for c in dataset.clips]
    if not waveforms:
        raise ValueError("dataset has no clips to attack")
    if not len(waveforms) == len(labels) == len(files):
        raise ValueError(
            f"dataset is inconsistent: {len(waveforms)} waveforms, {len(labels)} labels, "
            f"{len(files)} clips"
        )
    return Clips(waveforms, labels, files)


def batches_by_length(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped by clip length (equal lengths batch together), chunks of ``batch_size``,
    ordered by their first index so progress follows the dataset order."""
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(n, []).append(i)
    out = [g[k : k + batch_size] for g in groups.values() for k in range(0, len(g), batch_size)]
    return sorted(out, key=lambda b: b[0])


def checked_adversarial(x_adv: Any, x: Tensor, files: Sequence[str]) -> Tensor:
    """``x_adv`` detached, after checking it is a tensor of ``x``'s shape with finite samples.

    Non-finite audio (an attack on a victim with NaN weights, or one that diverged) would
    otherwise change the victim's decision and be counted as a success.
    """
    if not isinstance(x_adv, Tensor) or x_adv.shape != x.shape:
        got = tuple(x_adv.shape) if isinstance(x_adv, Tensor) else type(x_adv).__name__
        raise ValueError(f"attack returned {got}, expected x's shape {tuple(x.shape)}")
    finite = torch.isfinite(x_adv.detach()).flatten(1).all(dim=1)
    if not bool(finite.all()):
        bad = [f for f, ok in zip(files, finite.tolist(), strict=True) if not ok]
        raise ValueError(
            f"attack returned non-finite samples (NaN or inf) for {len(bad)} clip(s), first "
            f"{bad[0]}: a victim or generator with non-finite weights, or a diverged attack"
        )
    return x_adv.detach()
