"""Which epoch of a GAN run is ``best``: the ``Validator`` that scores each epoch on held-out
clips, and the order of those scores.

An epoch that fools loudly never beats one that fools at the target loudness; among those that
do, ASR decides, then MSNR, both in the run's SNR convention.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor, nn

from ssgan.training.gan_steps import GANState


class Validator(Protocol):
    """Scores the generator on the held-out clips after each epoch: ``val/*`` metrics (``val/asr``
    and ``val/msnr_db`` / ``val/msnr_box_db`` choose ``best``, see ``selection_score``). The
    project's is ``ssgan.gan_validation.validate_generator`` (the evaluation layer)."""

    def __call__(
        self,
        state: GANState,
        victim: nn.Module,
        clips: list[Tensor],
        labels: list[int],
        *,
        device: str | torch.device,
    ) -> dict[str, float]: ...


def msnr_key(convention: str) -> str:
    """The validation metric holding the MSNR in SNR ``convention``."""
    return "val/msnr_box_db" if convention == "box" else "val/msnr_db"


def selection_score(
    metrics: dict[str, float], min_snr_db: float | None = None, convention: str = "true"
) -> tuple[float, float, float]:
    """Ordering of epochs for ``best``: first whether the validation MSNR (in the SNR
    ``convention``) reaches ``min_snr_db`` (an epoch that fools loudly never beats one that
    fools at the target loudness), then ASR, then MSNR (nan counts as lowest)."""
    asr = metrics.get("val/asr", math.nan)
    msnr = metrics.get(msnr_key(convention), math.nan)
    # 1.5 dB of slack: an exact-SNR clip can be louder than its segments (the last segment is
    # filled with the clip's start, then trimmed; clipping to [-1, 1]), by ~1 dB on ESC-10.
    quiet = min_snr_db is None or (not math.isnan(msnr) and msnr >= min_snr_db - 1.5)
    return (
        float(quiet),
        -1.0 if math.isnan(asr) else asr,
        -math.inf if math.isnan(msnr) else msnr,
    )
