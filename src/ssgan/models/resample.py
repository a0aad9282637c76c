"""Differentiable band-limited resampling in torch, for victims that run at another sample rate.

The package works at 16 kHz; a user's model made for, say, 22.05 kHz is wrapped in
``Resampled`` so that it still takes 16 kHz waveforms and gradients reach them. The filter is the
polyphase windowed sinc of Smith's "Digital Audio Resampling" (as in ``torchaudio``'s
``sinc_interp_hann``): the rates are reduced by their gcd, one kernel per output phase, applied as
a strided convolution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Resampled", "resample", "sinc_kernel"]


def sinc_kernel(
    rate_in: int, rate_out: int, *, zero_crossings: int = 6, rolloff: float = 0.99
) -> tuple[torch.Tensor, int]:
    """The ``(phases, 1, taps)`` float64 kernels and the padding ``width`` of ``resample``.

    ``rate_in`` / ``rate_out`` must already be divided by their gcd. The low-pass cut-off is
    ``rolloff`` times the lower Nyquist frequency; ``zero_crossings`` per side of the Hann-windowed
    sinc set its sharpness.
    """
    if rate_in < 1 or rate_out < 1:
        raise ValueError(f"rates must be positive, got {rate_in} -> {rate_out}")
    base = min(rate_in, rate_out) * rolloff
    width = math.ceil(zero_crossings * rate_in / base)
    idx = torch.arange(-width, width + rate_in, dtype=torch.float64)[None, None] / rate_in
    t = (torch.arange(0, -rate_out, -1, dtype=torch.float64)[:, None, None] / rate_out + idx) * base
    t = t.clamp(-zero_crossings, zero_crossings)
    window = torch.cos(t * math.pi / zero_crossings / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / torch.where(t == 0, 1.0, t))
    return sinc * window * (base / rate_in), width


def resample(
    x: torch.Tensor, rate_in: int, rate_out: int, *, kernel: torch.Tensor | None = None
) -> torch.Tensor:
    """``(..., time)`` at ``rate_in`` Hz -> ``(..., ceil(time * rate_out / rate_in))`` at
    ``rate_out`` Hz. Differentiable with respect to ``x``; equal rates return ``x``.

    ``kernel``: the cached ``sinc_kernel`` of the gcd-reduced rates (``Resampled`` keeps one).
    """
    if rate_in < 1 or rate_out < 1:
        raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
    if rate_in == rate_out:
        return x
    g = math.gcd(rate_in, rate_out)
    a, b = rate_in // g, rate_out // g
    if kernel is None:
        kernel, _ = sinc_kernel(a, b)
    width = (kernel.shape[-1] - a) // 2
    shape = x.shape
    flat = x.reshape(-1, 1, shape[-1])
    padded = F.pad(flat, (width, width + a))
    y = F.conv1d(padded, kernel.to(device=x.device, dtype=x.dtype), stride=a)
    y = y.transpose(1, 2).reshape(flat.shape[0], -1)
    n_out = math.ceil(b * shape[-1] / a)
    return y[:, :n_out].reshape(*shape[:-1], n_out)


class Resampled(nn.Module):
    """``model`` (made for ``rate_out`` Hz waveforms) fed ``rate_in`` Hz waveforms.

    ``forward(x)``: ``(batch, time)`` at ``rate_in`` -> ``model(resample(x))``.
    """

    def __init__(self, model: nn.Module, *, rate_in: int, rate_out: int) -> None:
        super().__init__()
        if rate_in < 1 or rate_out < 1:
            raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
        self.model = model
        self.rate_in = rate_in
        self.rate_out = rate_out
        g = math.gcd(rate_in, rate_out)
        kernel, _ = sinc_kernel(rate_in // g, rate_out // g)
        self.kernel: torch.Tensor
        self.register_buffer("kernel", kernel.float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(resample(x, self.rate_in, self.rate_out, kernel=self.kernel))
