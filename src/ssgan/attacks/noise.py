"""Gaussian noise at an exact SNR: the baseline every attack's ASR is read against.

A perturbation that fools only as often as white noise of the same loudness has learned nothing
about the victim. ``x_adv = x + n`` with ``n`` Gaussian, rescaled per clip so that
``20 log10(||x|| / ||n||) = snr_db`` exactly (before clipping to [-1, 1]). It never queries the
victim.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from ssgan.attacks.base import Attack
from ssgan.models.generator import scale_to_snr


class GaussianNoise(Attack):
    """White Gaussian noise at exactly ``snr_db`` below each clip.

    Args:
        snr_db: the SNR of every clip (default 30 dB).

    Example::

        x_adv = GaussianNoise(snr_db=30)(model, x, y)
    """

    name: ClassVar[str] = "noise"
    targeted_supported: ClassVar[bool] = False
    queries_victim: ClassVar[bool] = False

    def __init__(self, *, snr_db: float = 30.0) -> None:
        if not -60.0 <= float(snr_db) <= 120.0:
            raise ValueError(f"snr_db={snr_db!r}: expected a value in [-60, 120] dB")
        self.snr_db = float(snr_db)

    def _run(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        target: Tensor | None,
        generator: torch.Generator,
    ) -> Tensor:
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float32)
        return x + scale_to_snr(noise.to(x.device), x, self.snr_db).to(x.dtype)
