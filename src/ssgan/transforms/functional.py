"""Channel transforms as pure functions on batched waveforms ``(batch, time)`` at 16 kHz.

Every function takes float ``x`` of shape ``(batch, time)`` in ``[-1, 1]`` and returns a tensor of
the same shape, dtype and device, clipped to ``[-1, 1]`` (a real channel saturates). Random ones
draw every random number from the ``torch.Generator`` they are given (on the CPU, so a seed gives
the same draws on any device) and never touch the global RNG.

Differentiable in ``x`` (autograd): noise, band-limiting, gain, time shift, reverberation.
Not differentiable (numpy codecs): MP3 and resampling; ``ssgan.transforms.Transform`` wraps them
in a straight-through estimator when a gradient is needed (EOT).
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence

import numpy as np
import soundfile as sf
import soxr
import torch
from torch import Tensor

from ssgan import SAMPLE_RATE

__all__ = [
    "MP3_BITRATES_KBPS",
    "add_background_noise",
    "add_gaussian_noise",
    "band_limit",
    "mp3_delay",
    "mp3_encode",
    "mp3_roundtrip",
    "random_gain",
    "random_time_shift",
    "resample_roundtrip",
    "reverberate",
    "synthetic_rir",
]

#: Bit rates LAME encodes at 16 kHz (MPEG-2 layer III). 8 kbit/s is left out: libsndfile rejects
#: the compression level 1.0 that would ask for it.
MP3_BITRATES_KBPS = (16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_MP3_MAX_KBPS, _MP3_MIN_KBPS = 160, 8  # libsndfile's range at 16 kHz (mpeg_l3_encode.c)
_MAX_MP3_DELAY = 4096  # samples; measured delays are 0 (>= 40 kbit/s) and 1105 (<= 32 kbit/s)


def _check(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 2 or not x.is_floating_point():
        got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x: expected a float (batch, time) tensor, got {got}")


def _finish(y: Tensor, like: Tensor) -> Tensor:
    return y.to(like.dtype).clamp(-1.0, 1.0)


def _rows_rms(x: Tensor) -> Tensor:
    """RMS of each row as ``(batch, 1)``, floored so a silent row gets no noise, not NaN. The
    floor comes before the square root: a silent row then has a zero gradient, not 0 x inf
    (which turned a generator's weights to NaN in EOT training on ESC-10's silent stretches)."""
    return x.pow(2).mean(dim=1, keepdim=True).clamp_min(1e-16).sqrt()


# ----------------------------------------------------------------------------- codecs (numpy)


def mp3_encode(x: np.ndarray, kbps: int, sample_rate: int = SAMPLE_RATE) -> bytes:
    """MP3 bytes of a mono float array at a constant ``kbps`` (one of ``MP3_BITRATES_KBPS``)."""
    # libsndfile maps compression_level in [0, 1] linearly onto 160..8 kbit/s at 16 kHz and LAME
    # rounds to the nearest legal rate; at the exact level of a legal rate that rate is used
    # (checked by the file size in tests/test_transforms.py).
    level = (_MP3_MAX_KBPS - kbps) / (_MP3_MAX_KBPS - _MP3_MIN_KBPS)
    buf = io.BytesIO()
    sf.write(
        buf, x, sample_rate, format="MP3", subtype="MPEG_LAYER_III",
        compression_level=level, bitrate_mode="CONSTANT",
    )  # fmt: skip
    return buf.getvalue()


def _mp3_bytes_roundtrip(x: np.ndarray, kbps: int, sample_rate: int) -> np.ndarray:
    y, _ = sf.read(io.BytesIO(mp3_encode(x, kbps, sample_rate)), dtype="float32")
    return np.asarray(y, dtype=np.float32)


@functools.lru_cache(maxsize=32)
def mp3_delay(kbps: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Samples by which the decoded MP3 lags its input at ``kbps`` (measured once, cached).

    libsndfile removes the encoder/decoder delay from the LAME header (gapless decoding) at most
    rates, but not where LAME resamples internally (<= 32 kbit/s at 16 kHz: 1105 samples late
    and longer). The delay is a constant of the codec settings, so it is measured on a seeded
    noise probe by cross-correlation rather than guessed per clip from the (attacked) signal.
    """
    probe = np.random.default_rng(0).standard_normal(sample_rate).astype(np.float32) * 0.1
    y = _mp3_bytes_roundtrip(probe, kbps, sample_rate)
    y = np.pad(y, (0, max(0, len(probe) + _MAX_MP3_DELAY - len(y))))
    scores = [float(np.dot(y[lag : lag + len(probe)], probe)) for lag in range(_MAX_MP3_DELAY)]
    return int(np.argmax(scores))


def mp3_roundtrip(x: Tensor, *, kbps: int = 128, sample_rate: int = SAMPLE_RATE) -> Tensor:
    """Encode each row to MP3 at ``kbps`` (constant bit rate) and decode it, delay removed.

    Uses libsndfile's MPEG layer III support (LAME + mpg123) through soundfile, no external
    binary. The output is aligned with ``x`` (``mp3_delay``) and has its length (the codec's
    padding at the end is cut, a short decode is zero-padded). Not differentiable.
    """
    _check(x)
    if kbps not in MP3_BITRATES_KBPS:
        raise ValueError(f"kbps={kbps!r}: expected one of {MP3_BITRATES_KBPS}")
    if not bool(torch.isfinite(x).all()):
        # LAME asserts on such input and aborts the whole process (training, evaluation).
        raise ValueError("mp3: the input holds NaN or inf")
    n = x.shape[1]
    delay = mp3_delay(kbps, sample_rate)
    rows = []
    for row in x.detach().cpu().float().numpy():
        y = _mp3_bytes_roundtrip(row, kbps, sample_rate)[delay : delay + n]
        rows.append(np.pad(y, (0, n - len(y))))
    return _finish(torch.from_numpy(np.stack(rows)).to(x.device), x)


def resample_roundtrip(
    x: Tensor, *, rate_hz: float, sample_rate: int = SAMPLE_RATE, quality: str = "HQ"
) -> Tensor:
    """Resample to ``rate_hz`` and back with soxr (what a narrow-band channel or a player does).

    Removes content above ``rate_hz / 2``. ``rate_hz == sample_rate`` returns ``x`` unchanged.
    soxr's linear-phase filters keep the output aligned; its length is cut / zero-padded to
    ``x``'s. Not differentiable.
    """
    _check(x)
    if not rate_hz > 0:
        raise ValueError(f"rate_hz={rate_hz!r}: must be > 0")
    if rate_hz == sample_rate:
        return x.clone()
    n = x.shape[1]
    arr = x.detach().cpu().double().numpy().T  # soxr takes (frames, channels): all rows at once
    down = soxr.resample(arr, sample_rate, rate_hz, quality=quality)
    back = soxr.resample(down, rate_hz, sample_rate, quality=quality)[:n]
    back = np.pad(back, ((0, n - back.shape[0]), (0, 0)))
    return _finish(torch.from_numpy(np.ascontiguousarray(back.T)).to(x.device), x)


# ----------------------------------------------------------------------------- torch transforms


def add_gaussian_noise(x: Tensor, *, snr_db: float, generator: torch.Generator) -> Tensor:
    """``x`` plus white Gaussian noise at ``snr_db`` per row (``inf``: no noise).

    The noise level is set from the row's RMS without gradient: it models the channel, not a
    quantity the attack should learn to shrink.
    """
    _check(x)
    if math.isinf(snr_db) and snr_db > 0:
        return x.clone()
    noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
    scale = _rows_rms(x.detach()) * 10 ** (-snr_db / 20)
    return _finish(x + scale * noise, x)


def add_background_noise(
    x: Tensor, noise: Sequence[Tensor], *, snr_db: float, generator: torch.Generator
) -> Tensor:
    """``x`` plus a real background recording at ``snr_db`` per row (``inf``: none).

    Each row gets one recording of ``noise`` (1-D tensors) drawn at random, looped when shorter
    than ``x`` and cut at a random offset, scaled to the row's RMS minus ``snr_db``.
    """
    _check(x)
    if not noise:
        raise ValueError("noise: no background recordings given")
    if math.isinf(snr_db) and snr_db > 0:
        return x.clone()
    batch, n = x.shape
    picks = torch.randint(len(noise), (batch,), generator=generator).tolist()
    u = torch.rand(batch, generator=generator).tolist()
    rows = []
    for k, u_k in zip(picks, u, strict=True):
        rec = noise[k].reshape(-1).float()
        if rec.numel() == 0:
            raise ValueError(f"noise[{k}]: empty recording")
        looped = rec.repeat(math.ceil((n + rec.numel()) / rec.numel()))
        start = int(u_k * rec.numel())
        rows.append(looped[start : start + n])
    bg = torch.stack(rows).to(x.device, x.dtype)
    scale = _rows_rms(x.detach()) / _rows_rms(bg) * 10 ** (-snr_db / 20)
    return _finish(x + scale * bg, x)


def band_limit(
    x: Tensor, *, low_hz: float = 0.0, high_hz: float | None = None, sample_rate: int = SAMPLE_RATE
) -> Tensor:
    """Keep only ``low_hz <= f <= high_hz`` (a brick-wall mask on the clip's spectrum).

    ``low_hz=0, high_hz=sample_rate/2`` (the defaults) return ``x``. A zero-phase mask on the
    whole clip (no delay); e.g. ``low_hz=300, high_hz=3400`` is the telephone band.
    """
    _check(x)
    nyquist = sample_rate / 2
    high = nyquist if high_hz is None else high_hz
    if not 0 <= low_hz < high <= nyquist:
        raise ValueError(
            f"low_hz={low_hz!r}, high_hz={high_hz!r}: need 0 <= low < high <= {nyquist}"
        )
    if low_hz == 0 and high == nyquist:
        return x.clone()
    n = x.shape[1]
    spec = torch.fft.rfft(x, dim=1)
    freqs = torch.fft.rfftfreq(n, d=1 / sample_rate).to(x.device)
    mask = ((freqs >= low_hz) & (freqs <= high)).to(spec.real.dtype)
    return _finish(torch.fft.irfft(spec * mask, n=n, dim=1), x)


def random_gain(x: Tensor, *, min_db: float, max_db: float, generator: torch.Generator) -> Tensor:
    """Scale each row by a gain uniform in ``[min_db, max_db]`` dB (then clip to [-1, 1])."""
    _check(x)
    if not min_db <= max_db:
        raise ValueError(f"min_db={min_db!r}, max_db={max_db!r}: need min_db <= max_db")
    u = torch.rand(x.shape[0], 1, generator=generator).to(x.device, x.dtype)
    return _finish(x * 10 ** ((min_db + (max_db - min_db) * u) / 20), x)


def random_time_shift(
    x: Tensor, *, max_ms: float, generator: torch.Generator, sample_rate: int = SAMPLE_RATE
) -> Tensor:
    """Delay (or advance) each row by a whole number of samples uniform in +-``max_ms``.

    The gap left at one end is filled with zeros (a late or early start, not a rotation, which
    would splice the clip's end onto its start).
    """
    _check(x)
    if max_ms < 0:
        raise ValueError(f"max_ms={max_ms!r}: must be >= 0")
    max_shift = min(round(max_ms * sample_rate / 1000), x.shape[1])
    shifts = torch.randint(-max_shift, max_shift + 1, (x.shape[0],), generator=generator)
    out = torch.zeros_like(x)
    n = x.shape[1]
    for i, s in enumerate(shifts.tolist()):
        if s >= 0:
            out[i, s:] = x[i, : n - s]
        else:
            out[i, : n + s] = x[i, -s:]
    return _finish(out, x)


def synthetic_rir(
    batch: int,
    *,
    rt60_s: float,
    drr_db: float = 0.0,
    generator: torch.Generator,
    sample_rate: int = SAMPLE_RATE,
) -> Tensor:
    """Room impulse responses ``(batch, length)``: a direct path and an exponentially decaying tail.

    The statistical model of late reverberation (Polack): Gaussian noise under an envelope that
    falls 60 dB in ``rt60_s`` (``exp(-6.91 t / rt60)``), ``length = rt60_s`` seconds. The direct
    path is a unit impulse at 0 (so the output is aligned with the dry clip) and the tail's
    energy is ``drr_db`` below it (direct-to-reverberant ratio). ``rt60_s = 0``: the impulse.

    Why this model and not the image method (e.g. pyroomacoustics): a mono 16 kHz classifier
    hears a room through its reverberation time and direct-to-reverberant ratio, which this
    model sets directly; the image method's geometry (room size, wall absorption, positions)
    only reaches the victim through those two figures and its early reflections, and would add
    a compiled dependency. A fresh noise draw per clip gives EOT a new room every time.
    """
    if rt60_s < 0:
        raise ValueError(f"rt60_s={rt60_s!r}: must be >= 0")
    length = max(1, round(rt60_s * sample_rate))
    rir = torch.zeros(batch, length)
    rir[:, 0] = 1.0
    if length > 1:
        t = torch.arange(1, length) / sample_rate
        tail = torch.randn(batch, length - 1, generator=generator) * torch.exp(-6.91 * t / rt60_s)
        energy = tail.pow(2).sum(dim=1, keepdim=True).clamp_min(1e-12)
        rir[:, 1:] = tail * torch.sqrt(10 ** (-drr_db / 10) / energy)
    return rir


def reverberate(
    x: Tensor,
    *,
    rt60_s: float,
    drr_db: float = 0.0,
    generator: torch.Generator,
    sample_rate: int = SAMPLE_RATE,
) -> Tensor:
    """Convolve each row with its own ``synthetic_rir`` (FFT convolution, cut to ``x``'s length),
    rescaled to the dry row's RMS so that the room changes the sound, not its loudness."""
    _check(x)
    rir = synthetic_rir(
        x.shape[0], rt60_s=rt60_s, drr_db=drr_db, generator=generator, sample_rate=sample_rate
    ).to(x.device, x.dtype)
    if rir.shape[1] == 1:
        return x.clone()
    n = x.shape[1]
    size = n + rir.shape[1] - 1
    wet = torch.fft.irfft(
        torch.fft.rfft(x, n=size, dim=1) * torch.fft.rfft(rir, n=size, dim=1), n=size
    )[:, :n]
    wet = wet * (_rows_rms(x) / _rows_rms(wet))
    return _finish(wet, x)
