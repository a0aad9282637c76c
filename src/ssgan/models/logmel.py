"""A log-mel CNN victim: a third family for transfer (the spectrogram is computed in the model).

The paper's victims (EnvNet, EnvNet-v2) learn their front end from the raw waveform. Most
deployed sound classifiers instead compute a log-mel spectrogram and run a 2-D CNN on it; an
attack made on a raw-waveform network that also fools one of those transfers across families.

Pure functions for the signal math (``mel_filterbank``, ``log_mel``) and an ``nn.Module`` that
stores their configuration (torchaudio's split). No torchaudio: ``torch.stft`` and a hand-built
HTK mel filterbank, so the whole model is differentiable with respect to the waveform and every
attack sees the function the user deploys.

``LogMelCNN`` takes ``(batch, window)`` 16 kHz windows, like EnvNet, so the clip protocol of
``ssgan.models.victim`` (pad, 10 crops, averaged softmax) and the training and checkpoint code of
``ssgan.training.victim`` apply unchanged (``ssgan train victim --model logmel``).
"""

from __future__ import annotations

import torch
from torch import nn

from ssgan import SAMPLE_RATE
from ssgan.models.layout import channels_last

__all__ = ["LOGMEL_WINDOW", "LogMelCNN", "hz_to_mel", "log_mel", "mel_filterbank", "mel_to_hz"]

# The same 24,014-sample window (1.5 s) as EnvNet: the three victims of the transfer matrix
# classify the same 10 crops of each clip, so they differ only in what they compute on them.
LOGMEL_WINDOW = 24_014


def hz_to_mel(f_hz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * torch.log10(1.0 + f_hz / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    """Inverse of ``hz_to_mel``."""
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(
    n_mels: int, n_fft: int, *, sample_rate: int = SAMPLE_RATE, f_min_hz: float = 0.0,
    f_max_hz: float | None = None,
) -> torch.Tensor:  # fmt: skip
    """Triangular filters ``(n_fft // 2 + 1, n_mels)`` on the HTK mel scale, peak 1 each.

    Filter ``m`` rises linearly from mel point ``m`` to ``m + 1`` and falls to ``m + 2`` of
    ``n_mels + 2`` points evenly spaced in mel between ``f_min_hz`` and ``f_max_hz`` (default:
    Nyquist). Peak-normalised rather than area-normalised: the log that follows turns any
    per-filter gain into a constant offset, which the model's input BatchNorm absorbs.
    """
    f_max_hz = sample_rate / 2 if f_max_hz is None else f_max_hz
    if n_mels < 1 or n_fft < 2:
        raise ValueError(f"n_mels={n_mels}, n_fft={n_fft}: need n_mels >= 1 and n_fft >= 2")
    if not 0.0 <= f_min_hz < f_max_hz <= sample_rate / 2:
        raise ValueError(
            f"need 0 <= f_min_hz < f_max_hz <= {sample_rate / 2}, got {f_min_hz}, {f_max_hz}"
        )
    freqs = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    lo, hi = hz_to_mel(torch.tensor([f_min_hz, f_max_hz], dtype=torch.float64))
    points = mel_to_hz(torch.linspace(float(lo), float(hi), n_mels + 2, dtype=torch.float64))
    left, centre, right = points[:-2, None], points[1:-1, None], points[2:, None]
    rise = (freqs[None, :] - left) / (centre - left)
    fall = (right - freqs[None, :]) / (right - centre)
    return torch.clamp(torch.minimum(rise, fall), min=0.0).T.float()


def log_mel(
    x: torch.Tensor, filterbank: torch.Tensor, *, n_fft: int, hop_length: int,
    window: torch.Tensor, floor: float = 1e-6,
) -> torch.Tensor:  # fmt: skip
    """``x (..., time)`` -> log-mel power ``(..., n_mels, frames)``, ``log(mel + floor)``.

    ``torch.stft`` with ``center=True`` (reflect padding), so ``frames = time // hop + 1``.
    ``floor`` keeps the log (and its gradient, ``1 / (mel + floor)``) finite on silence.
    """
    lead = x.shape[:-1]
    spec = torch.stft(x.reshape(-1, x.shape[-1]), n_fft, hop_length=hop_length, window=window,
                      center=True, return_complex=True)  # fmt: skip
    power = spec.real.square() + spec.imag.square()  # (batch, freqs, frames)
    mel = torch.einsum("bft,fm->bmt", power, filterbank)
    return torch.log(mel + floor).reshape(*lead, filterbank.shape[1], -1)


def _block(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),  # BatchNorm's shift replaces bias
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.AvgPool2d(2),
    )


class LogMelCNN(nn.Module):
    """Log-mel spectrogram + 2-D CNN on ``(batch, window)`` 16 kHz waveforms -> logits.

    Front end: 1024-point STFT (64 ms Hann) every 256 samples (16 ms), 64 mel bands 20 Hz -
    8 kHz, ``log(mel + 1e-6)``, then BatchNorm over the whole map (learned input scaling).
    Body: four blocks Conv 3x3 -> BatchNorm -> ReLU -> AvgPool 2x2 with 32, 64, 128, 256
    channels (the PANNs CNN6 pattern, Kong et al. 2020, one conv a block to stay cheap on CPU);
    mean over frequency, then max + mean over time; FC ``fc_width`` (ReLU, dropout) -> classes.

    Shapes for the default window (24,014): log-mel ``(1, 64, 94)`` -> blocks ``(32, 32, 47)``,
    ``(64, 16, 23)``, ``(128, 8, 11)``, ``(256, 4, 5)`` -> 256 features.

    Args:
        n_classes: number of output classes.
        window: input length in samples (any length of at least 16 frames works; the pooling
            is global).
        dropout: dropout after the hidden FC layer.
        fc_width: width of the hidden FC layer (``VictimTrainConfig.fc_width``).
        n_mels, n_fft, hop_length, f_min_hz, f_max_hz: the spectrogram.
    """

    def __init__(
        self,
        n_classes: int,
        *,
        window: int = LOGMEL_WINDOW,
        dropout: float = 0.5,
        fc_width: int = 512,
        n_mels: int = 64,
        n_fft: int = 1024,
        hop_length: int = 256,
        f_min_hz: float = 20.0,
        f_max_hz: float = 8000.0,
    ) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"n_classes={n_classes}: need at least 2 classes")
        # Four 2x2 poolings need at least 16 frames and 16 mel bands.
        shortest = max(n_fft, 15 * hop_length)
        if not isinstance(window, int) or isinstance(window, bool) or window < shortest:
            raise ValueError(f"window={window!r}: must be an integer >= {shortest} samples")
        if n_mels < 16:
            raise ValueError(f"n_mels={n_mels}: must be >= 16 (four 2x2 poolings)")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout}: must be in [0, 1)")
        if fc_width < 1 or hop_length < 1:
            raise ValueError(f"fc_width={fc_width}, hop_length={hop_length}: must be positive")
        self.n_classes = n_classes
        self.window = window
        self.fc_width = fc_width
        self.n_fft = n_fft
        self.hop_length = hop_length
        # Buffers, not parameters: fixed signal processing that moves with .to(device) and is
        # rebuilt identically from the config (so it is left out of the checkpoint's weights).
        fb = mel_filterbank(n_mels, n_fft, f_min_hz=f_min_hz, f_max_hz=f_max_hz)
        self.register_buffer("filterbank", fb, persistent=False)
        self.register_buffer("stft_window", torch.hann_window(n_fft), persistent=False)
        self.filterbank: torch.Tensor
        self.stft_window: torch.Tensor
        self.input_norm = nn.BatchNorm2d(1)
        self.body = nn.Sequential(_block(1, 32), _block(32, 64), _block(64, 128), _block(128, 256))
        # Dropout only after the hidden layer, as EnvNet's after its FC layers: with a second one
        # on the 256 pooled features, the tiny synthetic training stalled at chance for 40 steps.
        self.classifier = nn.Sequential(
            nn.Linear(256, fc_width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc_width, n_classes),
        )

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, window)`` -> log-mel ``(batch, 1, n_mels, frames)``, always float32.

        Autocast is switched off here: the STFT has no bfloat16 kernel, and a log of a power
        rounded to 8 mantissa bits would erase the small perturbations attacks are made of.
        """
        with torch.autocast(device_type=x.device.type, enabled=False):
            spec = log_mel(x.float(), self.filterbank, n_fft=self.n_fft,
                           hop_length=self.hop_length, window=self.stft_window)  # fmt: skip
        return spec[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, window)`` -> logits ``(batch, n_classes)``."""
        if x.dim() != 2 or x.shape[1] != self.window:
            raise ValueError(
                f"LogMelCNN expects (batch, {self.window}) waveforms, got shape "
                f"{tuple(x.shape)}; wrap it in ssgan.models.victim.ClipClassifier for clips of "
                "any length"
            )
        h = self.body(channels_last(self.input_norm(self.spectrogram(x))))
        h = h.mean(dim=2)  # over frequency: (batch, 256, frames)
        h = h.amax(dim=2) + h.mean(dim=2)
        return self.classifier(h)
