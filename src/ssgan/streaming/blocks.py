"""Reading long audio files in bounded memory: decode, mix to mono and resample block by block.

Each reader checks what ``ssgan.audio.load_audio`` checks (unreadable, truncated, NaN/Inf), so a
file the streaming path accepts is one the in-memory loader accepts, with the same samples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ssgan import SAMPLE_RATE
from ssgan.audio import SILENCE_PEAK, open_audio, short_error_text
from ssgan.errors import AudioError

#: Frames decoded per read (per channel); ~1.5 MB for stereo float32.
DEFAULT_BLOCK_FRAMES = 1 << 16


@dataclasses.dataclass(frozen=True)
class ScanInfo:
    """What the first pass learns about a file.

    Attributes:
        path: the file.
        sample_rate_in: the file's own rate (Hz).
        channels: the file's channel count.
        frames_in: frames at the file's rate (0 where the header only estimates it: MP3/OGG).
        n_samples: samples after resampling to 16 kHz.
        peak: absolute maximum of the 16 kHz mono signal (before normalisation).
        head: the first ``min(head_samples, n_samples)`` samples of that signal (unnormalised).
        subtype: the file's sample format (``"PCM_16"``, ``"FLOAT"``, ...).
        format: the file's container (``"WAV"``, ``"FLAC"``, ...).
    """

    path: Path
    sample_rate_in: int
    channels: int
    frames_in: int
    n_samples: int
    peak: float
    head: np.ndarray
    subtype: str = ""
    format: str = ""


def iter_frame_blocks(
    handle: sf.SoundFile, path: Path, *, block_frames: int = DEFAULT_BLOCK_FRAMES
) -> Iterator[np.ndarray]:
    """Yield an open file's frames as checked float32 blocks ``(n, channels)`` to its end.

    Raises ``AudioError`` naming ``path`` for unreadable, truncated, sample-less or NaN/Inf
    audio.
    """
    if not isinstance(block_frames, int) or block_frames < 1:
        raise ValueError(f"block_frames={block_frames!r}: must be a positive integer")
    declared = int(handle.frames)
    check_count = handle.format not in ("MP3", "OGG") and declared > 0
    decoded = 0
    while True:
        try:
            data = handle.read(block_frames, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            raise AudioError(path, f"truncated or corrupted ({short_error_text(exc)})") from None
        if data.shape[0] == 0:
            break
        decoded += data.shape[0]
        if not np.all(np.isfinite(data)):
            raise AudioError(path, "contains NaN or Inf samples")
        yield data
    if decoded == 0:
        raise AudioError(path, "no samples (empty audio stream)")
    if check_count and decoded < declared:
        raise AudioError(path, f"truncated ({decoded} of {declared} frames decoded)")


def iter_mono_blocks(
    path: str | Path,
    *,
    sample_rate: int = SAMPLE_RATE,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
) -> Iterator[np.ndarray]:
    """Yield the file as mono float32 blocks ``(n,)`` at ``sample_rate``, unnormalised.

    Channels are averaged and the rate converted with ``soxr.ResampleStream`` (HQ), which gives
    the same samples as ``ssgan.audio.load_audio(..., normalize=False)``. Block lengths vary.
    Raises ``AudioError`` naming the file for unreadable, truncated or NaN/Inf audio.
    """
    if not isinstance(block_frames, int) or block_frames < 1:
        raise ValueError(f"block_frames={block_frames!r}: must be a positive integer")
    path = Path(path)
    with open_audio(path) as handle:
        rate = int(handle.samplerate)
        stream = (
            None
            if rate == sample_rate
            else soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality="HQ")
        )
        for data in iter_frame_blocks(handle, path, block_frames=block_frames):
            mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
            mono = np.ascontiguousarray(mono)
            if stream is None:
                yield mono
            else:
                out = stream.resample_chunk(mono, last=False)
                if out.size:
                    yield out.astype(np.float32, copy=False)
        if stream is not None:
            tail = stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            if tail.size:
                yield tail.astype(np.float32, copy=False)


def scan_audio(
    path: str | Path,
    *,
    head_samples: int = 0,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
) -> ScanInfo:
    """First pass: peak, length and the first ``head_samples`` samples of the 16 kHz mono signal.

    Raises ``AudioError`` naming the file for everything ``load_audio`` refuses, including a
    silent file (peak below ``ssgan.audio.SILENCE_PEAK``).
    """
    if not isinstance(head_samples, int) or head_samples < 0:
        raise ValueError(f"head_samples={head_samples!r}: must be a non-negative integer")
    path = Path(path)
    peak = 0.0
    n = 0
    head_parts: list[np.ndarray] = []
    have_head = 0
    for block in iter_mono_blocks(path, block_frames=block_frames):
        if block.size:
            peak = max(peak, float(np.max(np.abs(block))))
        if have_head < head_samples:
            take = block[: head_samples - have_head].copy()
            head_parts.append(take)
            have_head += take.size
        n += block.size
    if n == 0:
        raise AudioError(path, "no samples after resampling (too short)")
    if peak < SILENCE_PEAK:
        raise AudioError(path, f"silent (peak {peak:.2e} < {SILENCE_PEAK:g})")
    with sf.SoundFile(str(path)) as handle:
        rate, channels, frames = int(handle.samplerate), int(handle.channels), int(handle.frames)
        subtype, fmt = str(handle.subtype), str(handle.format)
    if fmt in ("MP3", "OGG"):
        frames = 0  # an estimate only for compressed streams
    head = np.concatenate(head_parts) if head_parts else np.zeros(0, dtype=np.float32)
    return ScanInfo(path, rate, channels, frames, n, peak, head, subtype, fmt)


def fixed_blocks(blocks: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Regroup variable blocks into blocks of exactly ``size`` samples (the last may be shorter)."""
    pending: list[np.ndarray] = []
    have = 0
    for block in blocks:
        pending.append(block)
        have += block.size
        while have >= size:
            joined = np.concatenate(pending)
            yield joined[:size]
            rest = joined[size:]
            pending = [rest] if rest.size else []
            have = rest.size
    if have:
        yield np.concatenate(pending)
