"""16-bit PCM: adversarial audio as it is after being written to a WAV file and read back, so the
attack's success can be measured on what a listener's file holds."""

from __future__ import annotations

import torch
from torch import Tensor


def pcm16_roundtrip(x: Tensor) -> Tensor:
    """``x`` quantised exactly as writing a 16-bit PCM WAV with soundfile and reading it back does.

    libsndfile (>= 1.1, bundled with soundfile) converts float to 16 bit by scaling to 32 bits
    and shifting: ``q = round(x * 2^31) >> 16`` (round half to even, an arithmetic shift, i.e.
    floor), saturating to ``[-32768, 32767]``; reading back gives ``q / 32768``. So values are
    floored to the 2^-15 grid, not rounded, and ``+1.0`` becomes ``32767 / 32768``. Any shape;
    returns the input's dtype and device. Not differentiable (it is a measurement).
    """
    with torch.no_grad():
        scaled = torch.round(x.detach().double() * 2.0**31)
        scaled = scaled.clamp(-(2.0**31), 2.0**31 - 1)
        q = torch.div(scaled, 65536.0, rounding_mode="floor").clamp(-32768, 32767)
        return (q / 32768.0).to(x.dtype)
