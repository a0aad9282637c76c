"""Band-limiting a generator's output: ``low_pass``, a zero-phase brick-wall mask on the spectrum.

A perturbation with no energy above ``cutoff_hz`` survives a channel that drops that band
(resampling to 8 kHz keeps < 4 kHz) whole, and an exact-SNR output (``scale_to_snr``) then
spends all its loudness where it survives. Used by ``Generator(lowpass_hz=...)``
(docs/robustness.md).
"""

from __future__ import annotations

import torch

from ssgan import SAMPLE_RATE

__all__ = ["low_pass"]


def low_pass(g: torch.Tensor, cutoff_hz: float, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Each row of ``g (batch, time)`` with every frequency above ``cutoff_hz`` removed.

    A mask on the row's real FFT (no delay, no clipping: ``g`` is any unbounded signal);
    differentiable; float32 whatever ``g``'s dtype (``torch.fft`` has no bfloat16)."""
    if not 0 < cutoff_hz < sample_rate / 2:
        raise ValueError(f"cutoff_hz={cutoff_hz!r}: must be in (0, {sample_rate / 2:g})")
    n = g.shape[-1]
    spec = torch.fft.rfft(g.float(), dim=-1)
    freqs = torch.fft.rfftfreq(n, d=1.0 / sample_rate, device=g.device)
    return torch.fft.irfft(spec * (freqs <= cutoff_hz).to(spec.real.dtype), n=n, dim=-1)
