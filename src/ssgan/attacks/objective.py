"""The per-clip objective a gradient attack ascends: cross-entropy or the logit margin,
untargeted or targeted."""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from ssgan.losses import logit_margin


def objective(
    logits: Tensor, y: Tensor, target: Tensor | None, loss: Literal["ce", "margin"]
) -> Tensor:
    """Per-clip objective to *ascend*: ``(batch, n_classes) -> (batch,)``.

    Untargeted: cross-entropy of the true label ``y`` (or minus its logit margin); targeted:
    minus the cross-entropy of ``target`` (or the target's logit margin).
    """
    if target is None:
        if loss == "ce":
            return F.cross_entropy(logits, y, reduction="none")
        return -logit_margin(logits, y)
    if loss == "ce":
        return -F.cross_entropy(logits, target, reduction="none")
    return logit_margin(logits, target)
