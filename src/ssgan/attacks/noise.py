"""Gaussian noise at an exact SNR: the baseline every attack's ASR is read against.

A perturbation that fools only as often as white noise of the same loudness has learned nothing
about the victim. ``x_adv = x + n`` with ``n`` Gaussian, rescaled per clip so that
``20 log10(||r|| / ||n||) = snr_db`` exactly (before clipping to [-1, 1]), ``r = x`` in the true
SNR convention and ``r = x + 1`` in [16]'s box convention (``ssgan.metrics``). It never queries
the victim.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from ssgan.attacks.base import Attack
from ssgan.metrics import check_convention
from ssgan.models.generators.base import scale_to_snr


class GaussianNoise(Attack):
    """White Gaussian noise at exactly ``snr_db`` below each clip.

    Args:
        snr_db: the SNR of every clip (default 30 dB).
        snr_convention: what ``snr_db`` is measured against: ``"true"`` (``x``, default) or
            ``"box"`` (``x + 1``, [16]'s convention).

    Example::

        x_adv = GaussianNoise(snr_db=30)(model, x, y)
    """

    name: ClassVar[str] = "noise"
    targeted_supported: ClassVar[bool] = False
    queries_victim: ClassVar[bool] = False

    def __init__(self, *, snr_db: float = 30.0, snr_convention: str = "true") -> None:
        if not -60.0 <= float(snr_db) <= 120.0:
            raise ValueError(f"snr_db={snr_db!r}: expected a value in [-60, 120] dB")
        self.snr_db = float(snr_db)
        self.snr_convention = check_convention(snr_convention)

    def _run(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        target: Tensor | None,
        generator: torch.Generator,
    ) -> Tensor:
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float32)
        delta = scale_to_snr(noise.to(x.device), x, self.snr_db, self.snr_convention)
        return x + delta.to(x.dtype)
