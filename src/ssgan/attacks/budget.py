"""Perturbation budgets: the norm ball an attack's ``x_adv`` is projected onto.

A budget is an Linf or L2 radius ``eps`` in waveform units, or (L2) a per-clip radius set by an
SNR in one of the two conventions (``ssgan.metrics``), so one setting fits quiet and loud clips.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import Tensor

from ssgan.metrics import check_convention, snr_reference

Norm = Literal["linf", "l2"]


@dataclasses.dataclass(frozen=True)
class Budget:
    """A perturbation budget: ``||x_adv - x||_norm <= eps`` per clip (waveform units, [-1, 1]).

    With ``snr_db`` (L2 only, ``eps`` then unused) each clip has its own radius
    ``||r|| 10^(-snr_db / 20)`` (``snr_radius``): ``x_adv`` is at least ``snr_db`` dB of SNR in
    ``snr_convention`` (``r = x``, or ``x + 1`` for ``"box"``; ``ssgan.metrics``).
    """

    norm: Norm
    eps: float
    snr_db: float | None = None
    snr_convention: str = "true"

    def __post_init__(self) -> None:
        check_convention(self.snr_convention)
        if self.snr_db is not None and self.norm != "l2":
            raise ValueError(f"an SNR budget is an L2 ball, got norm={self.norm!r}")

    def radius(self, x: Tensor) -> Tensor | float:
        """The L2 / Linf radius: ``eps``, or each clip's ``(batch, 1)`` radius at ``snr_db``."""
        if self.snr_db is None:
            return self.eps
        return snr_radius(x, self.snr_db, self.snr_convention)[:, None]


def snr_radius(x: Tensor, snr_db: float, convention: str = "true") -> Tensor:
    """``(batch,)``: the L2 norm of a perturbation of ``x (batch, time)`` at exactly ``snr_db``
    dB of SNR in ``convention``, ``||r|| 10^(-snr_db / 20)`` with ``r = snr_reference(x)``."""
    ref = snr_reference(x.detach().double(), convention)
    return (ref.flatten(1).norm(dim=1) * 10.0 ** (-float(snr_db) / 20.0)).to(x.dtype)


def project(x: Tensor, x_adv: Tensor, budget: Budget | None) -> Tensor:
    """Project ``x_adv`` onto the ball ``||x_adv - x|| <= eps`` (per row of ``(batch, time)``).

    Linf clamps each sample of ``delta``; L2 rescales rows whose norm exceeds ``eps`` (each
    row's own with an SNR budget). What is already inside comes back bit-identical (``x +
    (x_adv - x)`` would round it).
    """
    if budget is None:
        return x_adv
    delta = x_adv - x
    if budget.norm == "linf":
        clamped = delta.clamp(-budget.eps, budget.eps)
        return torch.where(clamped == delta, x_adv, x + clamped)
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    eps = budget.radius(x)
    eps = eps.view(-1) if isinstance(eps, Tensor) else eps
    # 1 - 1e-6 keeps the float32 norm of the result at or below eps despite rounding.
    scale = (eps * (1 - 1e-6) / norms).clamp(max=1.0).view(-1, *([1] * (delta.dim() - 1)))
    return torch.where(scale < 1.0, x + delta * scale, x_adv)
