"""The shapes every per-clip figure accepts: ``(batch, time)`` or a single ``(time,)`` clip.

A figure compares ``x`` with ``x_adv`` in float64 over ``(batch, time)`` and hands back
``(batch,)``, or a 0-d tensor when it was given one clip.
"""

from __future__ import annotations

from torch import Tensor


def as_clip_pair(x: Tensor, x_adv: Tensor) -> tuple[Tensor, Tensor, bool]:
    """Both as float64 ``(batch, time)``; also whether the input was a single ``(time,)`` clip."""
    if x.shape != x_adv.shape:
        raise ValueError(f"x and x_adv differ in shape: {tuple(x.shape)} vs {tuple(x_adv.shape)}")
    if x.dim() not in (1, 2) or x.shape[-1] == 0:
        raise ValueError(f"expected (time,) or (batch, time) with time > 0, got {tuple(x.shape)}")
    single = x.dim() == 1
    x64 = x.detach().double().reshape(-1, x.shape[-1])
    a64 = x_adv.detach().double().reshape(-1, x.shape[-1])
    return x64, a64, single


def per_clip(v: Tensor, single: bool) -> Tensor:
    """``v`` ``(batch,)`` as the caller gave its clips: one value for a single clip."""
    return v[0] if single else v
