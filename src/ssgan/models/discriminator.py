"""The SSGAN discriminator D: waveform segment ``(batch, time)`` -> probability it is real.

EnvNet-style (Tokozume & Harada 2017), as in the paper's Fig. 3, in three modules:

- **MFE** (mel-like feature extraction): two 1-D convolutions over the raw waveform (kernels 64
  and 16, stride 2 each) and a max-pool of ``pool`` samples, i.e. a learned filterbank of
  ``mfe_channels`` bands at ``16000 / (4 * pool)`` frames per second (62.5 fps by default);
- swap the channel axis to height, giving a 1-channel time-frequency map ``(bands, frames)``;
- **DEL** (deep embedding learning): two ``Conv2d(3x3)`` + ``MaxPool2d(2)`` stages;
- **Decision**: adaptive average pooling to a fixed ``(2, 4)`` grid (so any segment length
  works), a fully connected layer and a sigmoid.

The 1-D convolutions are written as ``(1, k)`` 2-D convolutions on ``channels_last`` maps: the
same function as ``Conv1d``, several times faster on CPU (docs/performance.md). Leaky ReLUs and no
batch norm: D sees separate real and fake batches, where batch statistics would leak the label.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssgan.models.layout import channels_last, waveform_map

__all__ = ["Discriminator"]


class Discriminator(nn.Module):
    """``(batch, time) -> (batch,)`` probabilities in (0, 1) that each segment is real audio.

    Args:
        mfe_channels: filterbank bands produced by the MFE module.
        del_channels: channels of the two DEL conv2d stages.
        pool: MFE max-pool size in samples (after the two stride-2 convs).

    Example:
        >>> d = Discriminator()
        >>> d(torch.zeros(3, 25600)).shape
        torch.Size([3])
    """

    def __init__(self, *, mfe_channels: int = 16, del_channels: int = 16, pool: int = 64) -> None:
        super().__init__()
        if mfe_channels < 1 or del_channels < 1:
            raise ValueError(
                f"mfe_channels and del_channels must be >= 1, got {mfe_channels}, {del_channels}"
            )
        if pool < 1:
            raise ValueError(f"pool must be >= 1, got {pool}")
        self.mfe = nn.Sequential(
            nn.Conv2d(1, mfe_channels, (1, 64), stride=(1, 2), padding=(0, 31)),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(mfe_channels, mfe_channels, (1, 16), stride=(1, 2), padding=(0, 7)),
            nn.LeakyReLU(0.2, inplace=True),
            nn.MaxPool2d((1, pool)),
        )
        c = del_channels
        self.embed = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(c, 2 * c, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.AdaptiveAvgPool2d((2, 4)),
        )
        self.decision = nn.Linear(2 * c * 8, 1)
        # Shortest input for which every pooling window sees at least one frame.
        self.min_time = 4 * pool * 4

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores ``(batch,)``."""
        if x.dim() != 2:
            raise ValueError(f"expected x of shape (batch, time), got {tuple(x.shape)}")
        if x.shape[1] < self.min_time:
            x = F.pad(x, (0, self.min_time - x.shape[1]))
        h = waveform_map(x)
        h = self.mfe(h)  # (batch, bands, 1, frames)
        # Swap the filterbank axis to height: (batch, 1, bands, frames).
        h = channels_last(h.transpose(1, 2))
        h = self.embed(h)
        return self.decision(h.flatten(1)).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (batch, time)`` -> probability of "real" ``(batch,)``."""
        return torch.sigmoid(self.logits(x))
