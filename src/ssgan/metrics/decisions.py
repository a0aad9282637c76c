"""Clip-level decisions: the victim's accuracy and the attack's success (paper eq. 9).

``ACC = N_right / N``; ``ASR = N_success / N_right``, where ``N_right`` counts clips classified
correctly and ``N_success`` those of them whose adversarial version is classified wrongly
(untargeted) or as the target (targeted).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _as_long(name: str, v: Tensor | list[int]) -> Tensor:
    t = torch.as_tensor(v)
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D (batch,), got shape {tuple(t.shape)}")
    if t.is_floating_point() and t.numel() > 0:  # [] is float by default
        raise ValueError(f"{name} must hold integer class indices, got dtype {t.dtype}")
    return t.long().cpu()


def accuracy(pred: Tensor | list[int], y: Tensor | list[int]) -> float:
    """``ACC = N_right / N``: the fraction of clips whose predicted class equals the label.

    ``pred``, ``y``: ``(batch,)`` class indices. Returns ``nan`` for an empty batch.
    """
    p, t = _as_long("pred", pred), _as_long("y", y)
    if p.shape != t.shape:
        raise ValueError(f"pred and y differ in shape: {tuple(p.shape)} vs {tuple(t.shape)}")
    if p.numel() == 0:
        return math.nan
    return float((p == t).double().mean())


def success_mask(
    y: Tensor | list[int],
    clean_pred: Tensor | list[int],
    adv_pred: Tensor | list[int],
    *,
    target: Tensor | list[int] | None = None,
) -> Tensor:
    """Which clips count in ``N_success``: a bool ``(batch,)`` tensor.

    Untargeted (``target=None``): ``clean_pred == y and adv_pred != y``. Targeted:
    ``clean_pred == y and adv_pred == target``. A clip the victim already gets wrong is never a
    success: the paper counts successes only among the ``N_right`` correctly classified clips.
    """
    t, c, a = _as_long("y", y), _as_long("clean_pred", clean_pred), _as_long("adv_pred", adv_pred)
    if not (t.shape == c.shape == a.shape):
        raise ValueError(
            f"y, clean_pred, adv_pred differ in shape: {tuple(t.shape)}, {tuple(c.shape)}, "
            f"{tuple(a.shape)}"
        )
    right = c == t
    if target is None:
        return right & (a != t)
    tg = _as_long("target", target)
    if tg.shape != t.shape:
        raise ValueError(f"target has shape {tuple(tg.shape)}, expected {tuple(t.shape)}")
    return right & (a == tg)


def attack_success_rate(
    y: Tensor | list[int],
    clean_pred: Tensor | list[int],
    adv_pred: Tensor | list[int],
    *,
    target: Tensor | list[int] | None = None,
) -> float:
    """``ASR = N_success / N_right`` (paper eq. 9).

    ``N_right`` = clips with ``clean_pred == y``; ``N_success`` = those of them with
    ``adv_pred != y`` (untargeted) or ``adv_pred == target`` (targeted, ``target`` given), see
    ``success_mask``. All arguments are ``(batch,)`` class indices.

    Edge case: when ``N_right = 0`` (no clip classified correctly, or an empty batch) the rate is
    undefined and ``nan`` is returned, never 0, so that it cannot be mistaken for "the attack
    failed everywhere". Note Abdoli et al. count ASR over all clips; we use the paper's N_right.
    """
    n_right = int((_as_long("clean_pred", clean_pred) == _as_long("y", y)).sum())
    n_success = int(success_mask(y, clean_pred, adv_pred, target=target).sum())
    return math.nan if n_right == 0 else n_success / n_right
