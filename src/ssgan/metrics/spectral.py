"""The log-spectral distance: how far the adversarial clip's spectrum moves from the clean one's."""

from __future__ import annotations

import torch
from torch import Tensor

from ssgan.metrics.clips import as_clip_pair, per_clip


def log_spectral_distance_db(
    x: Tensor,
    x_adv: Tensor,
    *,
    n_fft: int = 512,
    hop_length: int = 128,
    floor_db: float = -100.0,
) -> Tensor:
    """Log-spectral distance in dB per clip (Gray & Markel 1976, "Distance measures for speech
    processing").

    Power spectra from an STFT with a periodic Hann window of ``n_fft`` samples (default 512 =
    32 ms at 16 kHz) and hop ``hop_length`` (128 = 8 ms), centred with reflect padding (zero
    padding for clips shorter than ``n_fft // 2 + 1``). Per frame ``t``:
    ``LSD_t = sqrt(mean_f (10 log10 P_x(t,f) - 10 log10 P_adv(t,f))^2)``, with both log powers
    floored at ``floor_db`` (-100 dB) so that digital silence stays finite. The result is the
    mean of ``LSD_t`` over frames; 0 for ``x_adv == x``. ``(batch, time) -> (batch,)`` or
    ``(time,) -> ()``.
    """
    for name, v in (("n_fft", n_fft), ("hop_length", hop_length)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}={v!r}: must be an integer >= 1")
    x64, a64, single = as_clip_pair(x, x_adv)
    window = torch.hann_window(n_fft, dtype=torch.float64)
    mode = "reflect" if x64.shape[-1] > n_fft // 2 else "constant"

    def log_power(v: Tensor) -> Tensor:
        spec = torch.stft(
            v, n_fft, hop_length, window=window, center=True, pad_mode=mode, return_complex=True
        )
        return 10.0 * torch.log10(spec.abs().pow(2).clamp_min(10.0 ** (floor_db / 10.0)))

    diff = log_power(x64) - log_power(a64)  # (batch, freq, frames)
    return per_clip(diff.pow(2).mean(dim=1).sqrt().mean(dim=-1), single)
