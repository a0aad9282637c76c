"""A victim's decisions on a batch of clean and adversarial clips, and the rates counted from them.

The evaluation asks several deciders about the same adversarial clips: the attacked victim
itself, the victim after each channel transform (``ssgan.evaluation.robustness``) and other
victims (``ssgan.evaluation.transfer``). Each answer, per clip, is one ``Decision`` dict
``{clean_pred, adv_pred, correct, success}`` with the paper's success (``ssgan.metrics.
success_mask``): the decider gets the clean clip right and the adversarial clip wrong
(untargeted) or assigned to the target (targeted). ``rates`` counts them the same way for all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ssgan.metrics import success_mask

__all__ = ["Decision", "decide", "device_of", "rates"]

# {"clean_pred": int, "adv_pred": int, "correct": bool, "success": bool}
Decision = dict[str, Any]


def device_of(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter or buffer (the CPU for a stateless model)."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def decide(
    victim: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, target: Tensor | None
) -> list[Decision]:
    """Per clip of the batch, ``victim``'s decision on ``x`` and ``x_adv`` ``(batch, time)``.

    The clips are moved to the victim's device; it is called without gradient, in whatever mode
    the caller put it (eval). ``y`` and ``target``: ``(batch,)``, ``target`` None untargeted.
    """
    device = device_of(victim)
    with torch.no_grad():
        clean = victim(x.to(device)).argmax(1).cpu()
        adv = victim(x_adv.to(device)).argmax(1).cpu()
    labels = y.cpu()
    success = success_mask(labels, clean, adv, target=None if target is None else target.cpu())
    return [
        {"clean_pred": c, "adv_pred": a, "correct": c == label, "success": s}
        for c, a, label, s in zip(
            clean.tolist(), adv.tolist(), labels.tolist(), success.tolist(), strict=True
        )
    ]


def rates(decisions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{n, n_right, n_success, acc, asr}`` of decisions (or records: anything with ``correct``
    and ``success``): ``acc = n_right / n``, ``asr = n_success / n_right`` (the paper's eq. 9;
    nan when undefined)."""
    n = len(decisions)
    n_right = sum(bool(d["correct"]) for d in decisions)
    n_success = sum(bool(d["success"]) for d in decisions)
    return {
        "n": n,
        "n_right": n_right,
        "n_success": n_success,
        "acc": n_right / n if n else math.nan,
        "asr": n_success / n_right if n_right else math.nan,
    }
