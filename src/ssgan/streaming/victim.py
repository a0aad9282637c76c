"""The victim's clip decision on a stream: only the ``n_crops`` windows of the 10-crop protocol
(``ssgan.models.victim.crop_starts``) are collected on the way, so the victim never sees the whole
clip at once."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ssgan.models.victim import ClipClassifier, crop_starts
from ssgan.streaming.blocks import DEFAULT_BLOCK_FRAMES, iter_mono_blocks, scan_audio


class CropCollector:
    """Gathers the ``n_crops`` test windows of the 10-crop protocol from a stream of blocks."""

    def __init__(self, victim: ClipClassifier, n_samples: int) -> None:
        self.window = victim.window
        self.half = victim.window // 2
        padded = n_samples + 2 * self.half
        # Windows in original-sample coordinates; the zero padding stays zero.
        self.starts = [s - self.half for s in crop_starts(padded, self.window, victim.n_crops)]
        self.crops = torch.zeros(len(self.starts), self.window)

    def add(self, block: torch.Tensor, offset: int) -> None:
        end = offset + block.shape[0]
        for k, start in enumerate(self.starts):
            lo, hi = max(start, offset), min(start + self.window, end)
            if lo < hi:
                self.crops[k, lo - start : hi - start] = block[lo - offset : hi - offset]


def crop_logits(victim: ClipClassifier, crops: torch.Tensor) -> torch.Tensor:
    """``ClipClassifier.forward`` on precomputed crops ``(n_crops, window)`` -> ``(1, C)``."""
    device = next(victim.parameters()).device
    flat = crops.to(device)
    with torch.no_grad():
        if victim.crop_batch is None or flat.shape[0] <= victim.crop_batch:
            logits = victim.net(flat)
        else:
            logits = torch.cat([victim.net(c) for c in flat.split(victim.crop_batch)])
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        log_p = F.log_softmax(logits, dim=-1).reshape(1, victim.n_crops, -1)
        return (torch.logsumexp(log_p, dim=1) - math.log(victim.n_crops)).cpu()


def file_logits(
    victim: ClipClassifier, path: str | Path, *, block_frames: int = DEFAULT_BLOCK_FRAMES
) -> torch.Tensor:
    """The victim's clip logits ``(1, C)`` for ``path`` as the normal loader reads it
    (``ssgan.audio.load_audio``: mono, 16 kHz, peak-normalised), in bounded memory."""
    info = scan_audio(path, block_frames=block_frames)
    crops = CropCollector(victim, info.n_samples)
    offset = 0
    for block in iter_mono_blocks(path, block_frames=block_frames):
        crops.add(torch.from_numpy((block / info.peak).astype(np.float32, copy=False)), offset)
        offset += block.size
    return crop_logits(victim, crops.crops)
