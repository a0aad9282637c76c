"""The convolutional generator: the paper's G on the waveform (``GeneratorSpec`` by default).

Structure (paper Fig. 2, the encoder / residual blocks / decoder of Johnson et al. 2016 used by
AdvGAN, Xiao et al. 2018), on a ``(batch, 1, 1, time)`` map with ``(1, k)`` kernels along time:

- encoder: ``Conv(1 -> c, (1, 15))`` then ``n_down`` strided convs ``(1, 8)`` stride 4, doubling
  the channels each time;
- ``n_blocks`` residual blocks ``x + Conv(ReLU(Norm(Conv(x))))`` at the bottleneck;
- decoder: ``n_down`` transposed convs ``(1, 8)`` stride 4 halving the channels, then
  ``Conv(c -> 1, (1, 15))``;
- the output head of ``ssgan.models.generators.base`` (``max_delta * tanh(.)`` or exact SNR).

G is fully convolutional: any ``time`` works, the input is zero-padded to a multiple of the total
stride ``4 ** n_down`` and the output cropped back. Activations are ``channels_last`` because
(1, k) convolutions are several times faster in that layout on CPU (docs/performance.md).
Normalisation is optional instance norm (AdvGAN's choice; never batch norm, whose running
statistics would make training and attack behave differently).

The spec's options of this architecture:

- ``context``: FiLM the bottleneck with a linear map of its mean over the segment, so each
  output sample can depend on the whole segment (default off: the paper's G).
- ``grad_input``: G also reads the victim's input gradient ``grad`` (``forward(x, grad)``),
  normalised to unit RMS per segment, as a second input channel, and adds it to its output
  through a learned scale (1 at first) while its last layer starts at zero: an untrained G is the
  L2 fast gradient method at ``snr_db``, and training learns what to change. Costs one victim
  backward at attack time.
- ``loudness_range_db``: a linear head on the pooled bottleneck picks each segment's SNR in
  ``snr_db +- loudness_range_db`` (``tanh``), so G can spend loudness where a clip needs it.
- ``pattern_samples``: a learned waveform of that many samples (tiled along time, from the
  segment's start) added to the network's output before the scaling: a universal perturbation
  inside G. A convolutional G alone cannot make one: with no position input it maps silence to a
  constant.
- ``num_classes``: a learned embedding of the target class FiLMs the bottleneck.
- ``norm``: instance norm after each conv. Off by default: it doubled G's CPU time (64 vs 34 ms
  for a 5 s clip, best of 15, 2 shared cores, measured before the channels_last fix of
  ``ssgan.models.layout``) and the short trainings we ran converge without it.

Default size: ``channels=8, n_down=2, n_blocks=4`` has about 36 K parameters; attacking a 5 s
clip (segmentation, G, stitching) takes 6.7 ms in float32 and 5.8 ms in bf16 on 2 idle CPU
cores (``benchmarks/throughput.py``, docs/performance.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssgan.models.generators.base import Generator
from ssgan.models.generators.spec import GeneratorSpec
from ssgan.models.layout import waveform_map

__all__ = ["ConvolutionalGenerator"]


def _norm(channels: int, enabled: bool) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True) if enabled else nn.Identity()


class _ResBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, norm: bool) -> None:
        super().__init__()
        pad = kernel // 2
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, (1, kernel), padding=(0, pad), bias=not norm),
            _norm(channels, norm),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, (1, kernel), padding=(0, pad), bias=not norm),
            _norm(channels, norm),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ConvolutionalGenerator(Generator):
    """The paper's G on the waveform, with the options of this module's docstring.

    Example:
        >>> g = ConvolutionalGenerator(GeneratorSpec())
        >>> g(torch.zeros(2, 12345)).shape
        torch.Size([2, 12345])
    """

    def __init__(self, spec: GeneratorSpec) -> None:
        super().__init__(spec)
        channels, n_down, norm = spec.channels, spec.n_down, spec.norm
        self.stride = 4**n_down
        in_channels = 2 if spec.grad_input else 1  # the waveform, and its gradient if read
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, channels, (1, 15), padding=(0, 7), bias=not norm),
            _norm(channels, norm),
            nn.ReLU(inplace=True),
        ]
        c = channels
        for _ in range(n_down):
            layers += [
                nn.Conv2d(c, 2 * c, (1, 8), stride=(1, 4), padding=(0, 2), bias=not norm),
                _norm(2 * c, norm),
                nn.ReLU(inplace=True),
            ]
            c *= 2
        layers += [_ResBlock(c, spec.block_kernel, norm) for _ in range(spec.n_blocks)]
        for _ in range(n_down):
            layers += [
                nn.ConvTranspose2d(c, c // 2, (1, 8), stride=(1, 4), padding=(0, 2), bias=not norm),
                _norm(c // 2, norm),
                nn.ReLU(inplace=True),
            ]
            c //= 2
        layers.append(nn.Conv2d(c, 1, (1, 15), padding=(0, 7)))
        self.net = nn.Sequential(*layers)
        self.grad_scale: nn.Parameter | None = None
        if spec.grad_input:
            last = layers[-1]
            assert isinstance(last, nn.Conv2d)
            nn.init.zeros_(last.weight)
            if last.bias is not None:
                nn.init.zeros_(last.bias)
            self.grad_scale = nn.Parameter(torch.ones(()))
        self._bottleneck = 3 + 3 * n_down + spec.n_blocks  # index of the first decoder layer
        bottleneck_channels = c * 2**n_down
        self.context: nn.Linear | None = None
        if spec.context:
            # FiLM from the segment's mean bottleneck features: every time step learns what the
            # whole segment sounds like (its class, to a victim), which local convolutions with
            # a receptive field of a few tens of milliseconds cannot see. Zero-initialised: G
            # starts as the plain generator.
            self.context = nn.Linear(bottleneck_channels, 2 * bottleneck_channels)
            nn.init.zeros_(self.context.weight)
            nn.init.zeros_(self.context.bias)
        self.target_embedding: nn.Embedding | None = None
        if spec.num_classes:
            # (scale, shift) per bottleneck channel and target class: the cheapest way for one
            # G to produce a different perturbation per target (as FiLM conditions a network).
            self.target_embedding = nn.Embedding(spec.num_classes, 2 * bottleneck_channels)
            nn.init.zeros_(self.target_embedding.weight)
        self.pattern: nn.Parameter | None = None
        if spec.pattern_samples:
            # Small beside the network's first outputs, so G starts input-dependent and learns
            # how much of its output to make universal.
            self.pattern = nn.Parameter(1e-3 * torch.randn(1, spec.pattern_samples))
        self.loudness: nn.Linear | None = None
        if spec.loudness_range_db > 0:
            # Starts at snr_db for every input (zero weights), then learns per segment.
            self.loudness = nn.Linear(bottleneck_channels, 1)
            nn.init.zeros_(self.loudness.weight)
            nn.init.zeros_(self.loudness.bias)

    def _direction(
        self, x: torch.Tensor, grad: torch.Tensor | None, target: torch.Tensor | None
    ) -> tuple[torch.Tensor, float | torch.Tensor]:
        time = x.shape[1]
        # At least two samples at the bottleneck: instance norm needs more than one.
        padded = max(-(-time // self.stride), 2) * self.stride
        h = F.pad(x, (0, padded - time)) if padded != time else x
        unit_grad = None
        if grad is not None:
            if grad.shape != x.shape:
                raise ValueError(f"grad {tuple(grad.shape)} does not match x {tuple(x.shape)}")
            g = grad.float()
            rms = g.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-20)
            unit_grad = F.pad(g / rms, (0, padded - time)).to(h.dtype)
            h = torch.stack([h, unit_grad], dim=1)[:, :, None, :]
            h = h.contiguous(memory_format=torch.channels_last)
        else:
            h = waveform_map(h)
        snr_db: float | torch.Tensor = self.snr_db
        if self.loudness is not None or self.context is not None or target is not None:
            h = self.net[: self._bottleneck](h)
            pooled = h.mean(dim=(2, 3))
            if self.context is not None:
                scale, shift = self.context(pooled).chunk(2, dim=1)
                h = h * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
            if self.target_embedding is not None and target is not None:
                scale, shift = self.target_embedding(target.to(h.device).long()).chunk(2, dim=1)
                h = h * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
            if self.loudness is not None:
                offset = torch.tanh(self.loudness(pooled.float())).squeeze(1)
                snr_db = self.snr_db + self._spec.loudness_range_db * offset
            out = self.net[self._bottleneck :](h)
        else:
            out = self.net(h)
        # The bound in float32 even under bf16 autocast: bf16(0.01) rounds up past max_delta.
        out = out.reshape(x.shape[0], padded).float()
        if unit_grad is not None and self.grad_scale is not None:
            out = out + self.grad_scale * unit_grad.float()
        if self.pattern is not None:
            repeats = -(-padded // self._spec.pattern_samples)
            out = out + self.pattern.float().repeat(1, repeats)[:, :padded]
        return out[:, :time], snr_db
