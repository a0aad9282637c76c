"""The spectral generator: G as a complex mask on the segment's own STFT (``spec.spectral``).

``SpectralMask`` maps a segment ``x (batch, time)`` to a direction ``g (batch, time)``:

- ``X = STFT(x)`` (Hann window, ``n_fft`` 512, hop 128: 32 ms frames every 8 ms at 16 kHz);
- a 1-D convolutional network over frames, the ``n_fft // 2 + 1`` bins as channels, reads the
  log power spectrum (its mean removed per segment, so a louder copy of ``x`` gives the same
  mask) and outputs a complex gain ``M`` per bin and frame;
- ``g = ISTFT(M * X)``, cut to ``time`` samples.

``g`` is a time-varying filter of the signal itself: its energy lies under the signal's own
spectrum, where a listener (and a band-limited channel) has the least chance to tell it apart,
and it carries the input's structure that a waveform G must rebuild from samples. The STFT runs
in float32 with autocast off: bf16's 8 mantissa bits would erase a perturbation 30 dB down.

``SpectralGenerator`` is that mask ``16 * channels`` wide with ``n_blocks - 1`` dilated layers,
through the exact-SNR head of ``ssgan.models.generators.base``; ``n_down`` and
``block_kernel`` are unused.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssgan.models.generators.base import Generator
from ssgan.models.generators.spec import GeneratorSpec

__all__ = ["SpectralGenerator", "SpectralMask"]


class _DilatedBlock(nn.Module):
    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + F.relu(self.conv(h))


class SpectralMask(nn.Module):
    """``x (batch, time)`` -> ``ISTFT(M(x) * STFT(x))``; ``M`` a learned complex mask.

    Args:
        width: channels of the network over frames.
        layers: dilated residual layers (dilations 1, 2, 4, ...): the receptive field is
            ``2 ** (layers + 1) + 1`` frames (``layers=3``: 17 frames, 0.16 s at hop 128).
        n_fft: STFT size (``n_fft // 2 + 1`` bins); ``hop``: its hop length in samples.
    """

    def __init__(self, width: int = 128, layers: int = 3, n_fft: int = 512, hop: int = 128):
        super().__init__()
        if width < 1 or layers < 0:
            raise ValueError(f"width must be >= 1 and layers >= 0, got {width}, {layers}")
        if n_fft < 2 or not 0 < hop <= n_fft // 2:
            raise ValueError(f"need n_fft >= 2 and 0 < hop <= n_fft / 2, got {n_fft}, {hop}")
        self.n_fft, self.hop = int(n_fft), int(hop)
        bins = self.n_fft // 2 + 1
        self.window: torch.Tensor
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.inp = nn.Conv1d(bins, width, 3, padding=1)
        self.blocks = nn.Sequential(*[_DilatedBlock(width, 2**i) for i in range(layers)])
        self.out = nn.Conv1d(width, 2 * bins, 1)

    @property
    def min_samples(self) -> int:
        """The shortest segment the STFT's reflect padding accepts (shorter ones are padded)."""
        return self.n_fft // 2 + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time = x.shape[1]
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = x.float()
            if time < self.min_samples:
                h = F.pad(h, (0, self.min_samples - time))
            window = self.window.to(h.device)
            spec = torch.stft(
                h, self.n_fft, self.hop, window=window, center=True, return_complex=True
            )
            power = torch.log(spec.real.square() + spec.imag.square() + 1e-10)
            power = power - power.mean(dim=(1, 2), keepdim=True)
            real, imag = self.out(self.blocks(F.relu(self.inp(power)))).chunk(2, dim=1)
            masked = torch.complex(real, imag) * spec
            g = torch.istft(masked, self.n_fft, self.hop, window=window, length=h.shape[1])
        return g[:, :time]


class SpectralGenerator(Generator):
    """G as ``ISTFT(M(x) * STFT(x))``, the mask's network in ``spectral_mask``."""

    def __init__(self, spec: GeneratorSpec) -> None:
        super().__init__(spec)
        self.spectral_mask = SpectralMask(16 * spec.channels, layers=spec.n_blocks - 1)

    def _direction(
        self, x: torch.Tensor, grad: torch.Tensor | None, target: torch.Tensor | None
    ) -> tuple[torch.Tensor, float | torch.Tensor]:
        return self.spectral_mask(x).float(), self.snr_db
