"""Memory layout helpers: put one-channel maps into a layout oneDNN recognises as channels_last.

Every model here runs its (1, k) convolutions on ``channels_last`` maps, several times faster on
CPU than NCHW (docs/performance.md). A map with a single channel is the trap: for ``(N, 1, H, W)``
the NCHW strides ``(HW, HW, W, 1)`` already count as channels_last-contiguous, so
``h.contiguous(memory_format=torch.channels_last)`` returns ``h`` unchanged, the convolution
sees ambiguous strides, picks NCHW, and every layer after it stays NCHW. Measured on the 2-core
CPU (one thread, batch 16, forward + backward of EnvNet's front, bf16 autocast): 572 ms with the
ambiguous strides, 460 ms with the strides below; the generator's forward (32 segments of
1.6 s, fp32): 245 ms -> 97 ms.
"""

from __future__ import annotations

import torch

__all__ = ["channels_last", "waveform_map"]


def channels_last(h: torch.Tensor) -> torch.Tensor:
    """``h (N, C, H, W)`` in the channels_last layout, unambiguously so when ``C == 1``.

    For one channel the result has strides ``(HW, 1, W, 1)``: the same memory as NCHW, but the
    stride oneDNN reads as channels_last, so the convolution's output is channels_last too.
    A view of the contiguous map (``reshape`` + ``permute``), so gradients flow unchanged.
    """
    if h.dim() != 4:
        raise ValueError(f"expected a 4-D map (N, C, H, W), got shape {tuple(h.shape)}")
    n, c, height, width = h.shape
    if c != 1:
        return h.contiguous(memory_format=torch.channels_last)
    return h.contiguous().reshape(n, height, width, 1).permute(0, 3, 1, 2)


def waveform_map(x: torch.Tensor) -> torch.Tensor:
    """``x (batch, time)`` -> ``(batch, 1, 1, time)``, channels_last (see ``channels_last``)."""
    return channels_last(x[:, None, None, :])
