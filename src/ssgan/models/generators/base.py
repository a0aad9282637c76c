"""What every generator architecture shares: ``Generator``, its input checks and output head.

An architecture (``convolutional``, ``front_end``, ``spectral``) computes a direction
``(batch, time)`` from the segment; ``Generator.forward`` checks the inputs once and turns the
direction into ``delta`` by one of the two outputs of ``GeneratorSpec.output``:

- ``"tanh"``: ``delta = max_delta * tanh(direction)`` (the paper), so ``|delta| <= max_delta``;
- ``"snr"``: the direction, optionally band-limited (``low_pass``), rescaled per segment to an
  exact SNR below it (``scale_to_snr``), so loudness is set by construction rather than traded
  against the margin by a norm loss (docs/notebook/recipe.md says why).

``low_pass`` is a zero-phase brick-wall mask on the spectrum: a perturbation with no energy
above the cutoff survives a channel that drops that band (resampling to 8 kHz keeps < 4 kHz)
whole, and the exact-SNR output then spends all its loudness where it survives
(docs/robustness.md).
"""

from __future__ import annotations

import abc

import torch
from torch import nn

from ssgan import SAMPLE_RATE
from ssgan.metrics import snr_reference
from ssgan.models.generators.spec import GeneratorSpec

__all__ = ["Generator", "low_pass", "scale_to_snr"]


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


class Generator(nn.Module, abc.ABC):
    """SSGAN generator: ``(batch, time) -> delta (batch, time)``, built from a ``GeneratorSpec``
    by ``ssgan.models.generators.build_generator``; ``G.spec`` gives the spec back.

    The fields (``GeneratorSpec``; which combinations are allowed is the spec's to say):

        channels: the width of the network (each architecture says how it uses it).
        n_down, block_kernel: the convolutional G's down-sampling stages and residual kernel.
        n_blocks: residual blocks (convolutional G) or ``n_blocks - 1`` dilated layers (the
            front-end and spectral G).
        max_delta: bound of the tanh output, in waveform units of [-1, 1] audio.
        output: ``"tanh"`` or ``"snr"`` (this module's docstring).
        snr_db: the SNR of ``output="snr"`` (a buffer-free attribute; training's SNR curriculum
            changes it, and ``spec`` follows).
        context, grad_input, loudness_range_db, pattern_samples, norm: options of the
            convolutional G (``ssgan.models.generators.convolutional``).
        num_classes: > 0 makes G class-conditional (one G for every target): ``forward`` then
            needs ``target``; zero-initialised, so G starts as the unconditional generator.
        front: a victim front end's ``front_spec``: G acts through a copy of it
            (``ssgan.models.generators.front_end``).
        spectral: G is a complex mask on the segment's own STFT
            (``ssgan.models.generators.spectral``).
        lowpass_hz: > 0 removes every frequency above it from G's output before the exact-SNR
            scaling (``low_pass``), so the whole budget lies in the band a channel keeps (3800
            for resampling to 8 kHz); 0 (default): the full band.
        snr_convention: what ``snr_db`` is measured against with ``output="snr"``: ``"true"``
            (the segment itself, default) or ``"box"`` (``x + 1``, [16]'s box convention, which
            the paper's SNR figures use; ``ssgan.metrics``).

    Example:
        >>> from ssgan.models.generators import build_generator
        >>> g = build_generator(GeneratorSpec())
        >>> delta = g(torch.zeros(2, 12345))
        >>> delta.shape
        torch.Size([2, 12345])
    """

    def __init__(self, spec: GeneratorSpec) -> None:
        super().__init__()
        self._spec = spec
        self.snr_db = spec.snr_db

    @property
    def spec(self) -> GeneratorSpec:
        """The spec this G was built from, at its current ``snr_db``."""
        return self._spec.replace(snr_db=self.snr_db)

    @property
    def num_classes(self) -> int:
        return self._spec.num_classes

    @property
    def grad_input(self) -> bool:
        return self._spec.grad_input

    @property
    def lowpass_hz(self) -> float:
        return self._spec.lowpass_hz

    @property
    def max_delta(self) -> float:
        return self._spec.max_delta

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
        if (target is None) != (self.num_classes == 0):
            need = "needs target=" if target is None else "is not class-conditional: no target="
            raise ValueError(f"this generator {need} (num_classes={self.num_classes})")
        direction, snr_db = self._direction(x, grad, target)
        if self._spec.output == "snr":
            if self.lowpass_hz > 0:
                direction = low_pass(direction, self.lowpass_hz)
            return scale_to_snr(direction, x, snr_db, self._spec.snr_convention)
        return self.max_delta * torch.tanh(direction)

    @abc.abstractmethod
    def _direction(
        self, x: torch.Tensor, grad: torch.Tensor | None, target: torch.Tensor | None
    ) -> tuple[torch.Tensor, float | torch.Tensor]:
        """The architecture's float32 output ``(batch, time)`` for checked inputs, and the SNR
        in dB to scale it to (``snr_db``, or one per segment)."""

    def load_front(self, victim: nn.Module) -> None:
        """Copy the victim's front end into a ``front=`` G (done when training starts)."""
        raise ValueError("load_front: this generator was built without front=")
