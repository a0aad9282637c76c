"""The SSGAN generator G: waveform segment ``(batch, time)`` -> bounded perturbation ``delta``.

Structure (paper Fig. 2, the encoder / residual blocks / decoder of Johnson et al. 2016 used by
AdvGAN, Xiao et al. 2018), on a ``(batch, 1, 1, time)`` map with ``(1, k)`` kernels along time:

- encoder: ``Conv(1 -> c, (1, 15))`` then ``n_down`` strided convs ``(1, 8)`` stride 4, doubling
  the channels each time;
- ``n_blocks`` residual blocks ``x + Conv(ReLU(Norm(Conv(x))))`` at the bottleneck;
- decoder: ``n_down`` transposed convs ``(1, 8)`` stride 4 halving the channels, then
  ``Conv(c -> 1, (1, 15))``;
- ``delta = max_delta * tanh(.)``, so ``|delta| <= max_delta`` always.

G is fully convolutional: any ``time`` works, the input is zero-padded to a multiple of the total
stride ``4 ** n_down`` and the output cropped back. Activations are ``channels_last`` because
(1, k) convolutions are several times faster in that layout on CPU (docs/performance.md).
Normalisation is optional instance norm (AdvGAN's choice; never batch norm, whose running
statistics would make training and attack behave differently).

Default size: ``channels=8, n_down=2, n_blocks=4`` has about 36 K parameters; attacking a 5 s
clip (segmentation, G, stitching) takes 6.7 ms in float32 and 5.8 ms in bf16 on 2 idle CPU
cores (``benchmarks/throughput.py``, docs/performance.md).

``max_delta`` default 0.05 (measured, see ``DEFAULT_MAX_DELTA``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssgan.metrics import snr_reference
from ssgan.models.band import low_pass
from ssgan.models.front_end import FeatureMapNet, FrontEnd
from ssgan.models.generator_spec import DEFAULT_MAX_DELTA, OUTPUTS, GeneratorSpec
from ssgan.models.layout import waveform_map
from ssgan.models.spectral import SpectralMask

__all__ = ["DEFAULT_MAX_DELTA", "OUTPUTS", "Generator", "GeneratorSpec", "scale_to_snr"]


def scale_to_snr(
    g: torch.Tensor,
    x: torch.Tensor,
    snr_db: float | torch.Tensor,
    convention: str = "true",
) -> torch.Tensor:
    """Rescale each row of ``g (batch, time)`` so that ``20 log10(||r|| / ||g||) = snr_db``.

    ``r`` is the reference of the SNR ``convention`` (``ssgan.metrics.snr_reference``): ``x``
    itself (``"true"``) or ``x + 1`` ([16]'s box convention). ``snr_db`` is a number or a
    ``(batch,)`` tensor (a loudness per example). A silent ``x`` gets ``delta = 0`` in the true
    convention; a zero ``g`` stays zero. Differentiable in ``g`` (and ``snr_db``).
    """
    x_norm = snr_reference(x.float(), convention).norm(dim=-1, keepdim=True)
    g_norm = g.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    if isinstance(snr_db, torch.Tensor):
        snr_db = snr_db.reshape(-1, 1)
    return g * (x_norm / g_norm) * 10.0 ** (-snr_db / 20.0)


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


class Generator(nn.Module):
    """SSGAN generator: ``(batch, time) -> delta (batch, time)`` with ``|delta| <= max_delta``.

    Built from a ``GeneratorSpec`` (``Generator(spec)``), or from its fields as keywords
    (``Generator(channels=4, output="snr")``); ``G.spec`` gives it back. The fields:

        channels: channels after the first conv (doubled by each down-sampling stage).
        n_down: number of stride-4 down/up-sampling stages (total stride ``4 ** n_down``).
        n_blocks: residual blocks at the bottleneck.
        block_kernel: kernel length of the residual convs (samples at the bottleneck rate).
        max_delta: bound of the tanh output, in waveform units of [-1, 1] audio.
        output: ``"tanh"``: ``delta = max_delta * tanh(.)`` (the paper); ``"snr"``: the output
            rescaled per segment to exactly ``snr_db`` below the segment (``scale_to_snr``), so
            loudness is set by construction rather than traded against the margin by a norm
            loss (``max_delta`` is then unused). See docs/recipe.md for why.
        snr_db: the SNR of ``output="snr"`` (a buffer-free attribute; change it freely).
        context: FiLM the bottleneck with a linear map of its mean over the segment, so each
            output sample can depend on the whole segment (default off: the paper's G).
        grad_input: G also reads the victim's input gradient ``grad`` (``forward(x, grad)``),
            normalised to unit RMS per segment, as a second input channel, and adds it to its
            output through a learned scale (1 at first) while its last layer starts at zero: an
            untrained G is the L2 fast gradient method at ``snr_db``, and training learns what
            to change. Needs ``output="snr"``; costs one victim backward at attack time.
        loudness_range_db: with ``output="snr"``, a linear head on G's pooled bottleneck picks
            each segment's SNR in ``snr_db +- loudness_range_db`` (``tanh``), so G can spend
            loudness where a clip needs it; 0 (default): every segment at ``snr_db``.
        pattern_samples: > 0 adds a learned waveform of that many samples (tiled along time, from
            the segment's start) to the network's output before the scaling: a universal
            perturbation inside G. A convolutional G alone cannot make one: with no position
            input it maps silence to a constant. Needs ``output="snr"``; 0 (default): none.
        num_classes: > 0 makes G class-conditional (one G for every target): a learned
            embedding of the target class FiLMs the bottleneck, and ``forward`` needs
            ``target``. Zero-initialised, so G starts as the unconditional generator.
        front: a victim front end's ``front_spec`` (``ssgan.models.front_end``): G keeps a copy of
            the victim's front end ``p`` (``load_front``) and outputs ``J_p(x)^T u(p(x))`` with
            ``u`` a small network on ``p(x)`` (width ``8 * channels``, ``n_blocks - 1`` dilated
            layers: the default 4 gives 3); ``n_down`` and ``block_kernel`` are then unused.
            Needs ``output="snr"``; combines with ``num_classes`` only. Empty (default): the
            convolutional G above.
        spectral: G is a complex mask on the segment's own STFT (``ssgan.models.spectral``):
            ``ISTFT(M(x) * STFT(x))``, the network ``16 * channels`` wide with ``n_blocks - 1``
            dilated layers over frames; ``n_down`` and ``block_kernel`` are then unused. Needs
            ``output="snr"`` and no other option. False (default): the convolutional G above.
        lowpass_hz: > 0 removes every frequency above it from G's output before the exact-SNR
            scaling (``ssgan.models.band.low_pass``), so the whole budget lies in the band a
            channel keeps (3800 for resampling to 8 kHz). Needs ``output="snr"``; 0 (default):
            the full band.
        snr_convention: what ``snr_db`` is measured against with ``output="snr"``: ``"true"``
            (the segment itself, default) or ``"box"`` (``x + 1``, [16]'s box convention, which
            the paper's SNR figures use; ``ssgan.metrics``).
        norm: instance norm after each conv (AdvGAN's choice). Off by default: it doubled G's
            CPU time (64 vs 34 ms for a 5 s clip, best of 15, 2 shared cores, measured before
            the channels_last fix of ``ssgan.models.layout``) and the short trainings we ran
            converge without it.

    Example:
        >>> g = Generator()
        >>> delta = g(torch.zeros(2, 12345))
        >>> delta.shape
        torch.Size([2, 12345])
    """

    def __init__(self, spec: GeneratorSpec | None = None, /, **shape: Any) -> None:
        super().__init__()
        if spec is None:
            spec = GeneratorSpec(**shape)
        elif shape:
            spec = spec.replace(**shape)
        self._spec = spec
        channels, n_down, n_blocks = spec.channels, spec.n_down, spec.n_blocks
        norm, grad_input, num_classes = spec.norm, spec.grad_input, spec.num_classes
        self.snr_convention = spec.snr_convention
        self.lowpass_hz = spec.lowpass_hz
        self.num_classes = num_classes
        self.channels, self.n_down, self.n_blocks = channels, n_down, n_blocks
        self.block_kernel = spec.block_kernel
        self.max_delta = spec.max_delta
        self.norm = norm
        self.pattern_samples = spec.pattern_samples
        self.output = spec.output
        self.grad_input = grad_input
        self.snr_db = spec.snr_db  # changed by training's SNR curriculum; ``spec`` follows it
        self.loudness_range_db = spec.loudness_range_db
        self.front_spec = spec.front
        self.front_end: FrontEnd | None = FrontEnd(spec.front) if spec.front else None
        self.stride = 4**n_down
        self.grad_scale: nn.Parameter | None = None
        self.context: nn.Linear | None = None
        self.target_embedding: nn.Embedding | None = None
        self.pattern: nn.Parameter | None = None
        self.loudness: nn.Linear | None = None
        self.feature_net: FeatureMapNet | None = None
        self.spectral = spec.spectral
        self.spectral_mask: SpectralMask | None = None
        if self.spectral:
            self.spectral_mask = SpectralMask(16 * channels, layers=n_blocks - 1)
            return
        if self.front_end is not None:
            self.feature_net = FeatureMapNet(
                self.front_end.channels, 8 * channels, num_classes, layers=n_blocks - 1
            )
            return
        layers: list[nn.Module] = [
            nn.Conv2d(2 if grad_input else 1, channels, (1, 15), padding=(0, 7), bias=not norm),
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
        layers += [_ResBlock(c, spec.block_kernel, norm) for _ in range(n_blocks)]
        for _ in range(n_down):
            layers += [
                nn.ConvTranspose2d(c, c // 2, (1, 8), stride=(1, 4), padding=(0, 2), bias=not norm),
                _norm(c // 2, norm),
                nn.ReLU(inplace=True),
            ]
            c //= 2
        layers.append(nn.Conv2d(c, 1, (1, 15), padding=(0, 7)))
        self.net = nn.Sequential(*layers)
        if self.grad_input:
            last = layers[-1]
            assert isinstance(last, nn.Conv2d)
            nn.init.zeros_(last.weight)
            if last.bias is not None:
                nn.init.zeros_(last.bias)
            self.grad_scale = nn.Parameter(torch.ones(()))
        self._bottleneck = 3 + 3 * n_down + n_blocks  # index of the first decoder layer
        if spec.context:
            # FiLM from the segment's mean bottleneck features: every time step learns what the
            # whole segment sounds like (its class, to a victim), which local convolutions with
            # a receptive field of a few tens of milliseconds cannot see. Zero-initialised: G
            # starts as the plain generator.
            self.context = nn.Linear(c * 2**n_down, 2 * c * 2**n_down)
            nn.init.zeros_(self.context.weight)
            nn.init.zeros_(self.context.bias)
        if self.num_classes:
            # (scale, shift) per bottleneck channel and target class: the cheapest way for one
            # G to produce a different perturbation per target (as FiLM conditions a network).
            self.target_embedding = nn.Embedding(self.num_classes, 2 * c * 2**n_down)
            nn.init.zeros_(self.target_embedding.weight)
        if self.pattern_samples:
            # Small beside the network's first outputs, so G starts input-dependent and learns
            # how much of its output to make universal.
            self.pattern = nn.Parameter(1e-3 * torch.randn(1, self.pattern_samples))
        if self.loudness_range_db > 0:
            # Starts at snr_db for every input (zero weights), then learns per segment.
            self.loudness = nn.Linear(c * 2**n_down, 1)
            nn.init.zeros_(self.loudness.weight)
            nn.init.zeros_(self.loudness.bias)

    def forward(
        self,
        x: torch.Tensor,
        grad: torch.Tensor | None = None,
        *,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x (batch, time)`` -> ``delta (batch, time)``, any ``time >= 1``.

        ``grad``: the victim's input gradient at ``x`` (same shape), needed with
        ``grad_input=True`` and refused otherwise. ``target (batch,)``: class indices for a
        class-conditional G (``num_classes > 0``), else None.
        """
        if x.dim() != 2:
            raise ValueError(f"expected x of shape (batch, time), got {tuple(x.shape)}")
        if self.grad_input != (grad is not None):
            raise ValueError(
                "this generator needs the victim's input gradient (grad=...)"
                if self.grad_input
                else "grad= given to a generator built without grad_input"
            )
        if self.front_end is not None:
            return self._forward_front(x, target)
        if self.spectral_mask is not None:
            if target is not None:
                raise ValueError("this generator is not class-conditional: no target=")
            return scale_to_snr(
                self._band(self.spectral_mask(x).float()), x, self.snr_db, self.snr_convention
            )
        if (target is None) != (self.target_embedding is None):
            need = "needs target=" if target is None else "is not class-conditional: no target="
            raise ValueError(f"this generator {need} (num_classes={self.num_classes})")
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
        snr: float | torch.Tensor = self.snr_db
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
                snr = self.snr_db + self.loudness_range_db * offset
            out = self.net[self._bottleneck :](h)
        else:
            out = self.net(h)
        # The bound in float32 even under bf16 autocast: bf16(0.01) rounds up past max_delta.
        out = out.reshape(x.shape[0], padded).float()
        if unit_grad is not None and self.grad_scale is not None:
            out = out + self.grad_scale * unit_grad.float()
        if self.pattern is not None:
            repeats = -(-padded // self.pattern_samples)
            out = out + self.pattern.float().repeat(1, repeats)[:, :padded]
        out = out[:, :time]
        if self.output == "snr":
            return scale_to_snr(self._band(out), x, snr, self.snr_convention)
        return self.max_delta * torch.tanh(out)

    def _band(self, out: torch.Tensor) -> torch.Tensor:
        return low_pass(out, self.lowpass_hz) if self.lowpass_hz > 0 else out

    def _forward_front(self, x: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        assert self.front_end is not None and self.feature_net is not None
        if (target is None) != (self.num_classes == 0):
            need = "needs target=" if target is None else "is not class-conditional: no target="
            raise ValueError(f"this generator {need} (num_classes={self.num_classes})")
        time = x.shape[1]
        # Shorter than one pooled frame of the front end: zero-pad (the pad gets no output).
        h = (
            F.pad(x, (0, self.front_end.min_samples - time))
            if time < self.front_end.min_samples
            else x
        )
        p, saved, winners = self.front_end(h)
        u = self.feature_net(p.to(h.dtype), target).float()
        out = self.front_end.transpose(u, saved, winners)[:, :time]
        return scale_to_snr(self._band(out.float()), x, self.snr_db, self.snr_convention)

    @property
    def spec(self) -> GeneratorSpec:
        """The spec this G was built from, at its current ``snr_db``."""
        return self._spec.replace(snr_db=self.snr_db)

    def load_front(self, victim: nn.Module) -> None:
        """Copy the victim's front end into a ``front=`` G (done when training starts)."""
        if self.front_end is None:
            raise ValueError("load_front: this generator was built without front=")
        self.front_end.load_from(victim)
