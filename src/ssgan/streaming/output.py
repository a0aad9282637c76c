"""Writing the adversarial file: the perturbation, back at the input's own rate, added to every
channel of the original samples, in the format the output's suffix names."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ssgan import SAMPLE_RATE
from ssgan.audio import open_audio, short_error_text
from ssgan.errors import AudioError, OutputError
from ssgan.io import atomic_write
from ssgan.streaming.blocks import ScanInfo, iter_frame_blocks

#: Output format families of ``attack_file`` (name -> libsndfile format).
OUTPUT_FORMATS = {"wav": "WAV", "flac": "FLAC"}
_WRITABLE_SUBTYPES = {
    "wav": ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"),
    "flac": ("PCM_16", "PCM_24"),
}


def target_format(target: Path, subtype: str | None) -> str:
    """The format family ``target``'s suffix names; ``ValueError`` for another suffix or a
    ``subtype`` that family cannot store."""
    suffixes = {f".{name}": name for name in OUTPUT_FORMATS}
    if target.suffix.lower() not in suffixes:
        raise ValueError(f"{target}: unsupported output format (use .wav or .flac)")
    fmt = suffixes[target.suffix.lower()]
    if subtype is not None and subtype not in _WRITABLE_SUBTYPES[fmt]:
        raise ValueError(
            f"subtype={subtype!r}: {fmt} stores one of {sorted(_WRITABLE_SUBTYPES[fmt])}"
        )
    return fmt


def output_format(path: str | Path, requested: str | None = None) -> str:
    """The output format family for input ``path``: ``requested`` if given, else the input's own
    (``"flac"`` for a ``.flac`` input, ``"wav"`` for everything else)."""
    if requested is not None:
        if requested not in OUTPUT_FORMATS:
            raise ValueError(f"format={requested!r}: expected one of {sorted(OUTPUT_FORMATS)}")
        return requested
    return "flac" if Path(path).suffix.lower() == ".flac" else "wav"


def output_subtype(input_subtype: str, fmt: str) -> str:
    """The input's sample format if ``fmt`` can store it, else 16-bit PCM."""
    return input_subtype if input_subtype in _WRITABLE_SUBTYPES[fmt] else "PCM_16"


def _upsampled(blocks: Iterator[np.ndarray], rate: int) -> Iterator[np.ndarray]:
    """16 kHz blocks resampled to ``rate`` with ``soxr.ResampleStream`` (same samples as
    ``soxr.resample`` on the whole signal)."""
    if rate == SAMPLE_RATE:
        yield from blocks
        return
    stream = soxr.ResampleStream(SAMPLE_RATE, rate, 1, dtype="float32", quality="HQ")
    for block in blocks:
        out = stream.resample_chunk(np.ascontiguousarray(block, dtype=np.float32), last=False)
        if out.size:
            yield out
    tail = stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
    if tail.size:
        yield tail


class _Taker:
    """Hands out exactly ``n`` samples at a time from an iterator of variable blocks."""

    def __init__(self, blocks: Iterator[np.ndarray]) -> None:
        self.blocks = blocks
        self.pending = np.zeros(0, dtype=np.float32)

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` samples, zero-filled if the blocks run out (a sample or two of
        rounding between the rates)."""
        parts = [self.pending]
        have = self.pending.size
        while have < n:
            block = next(self.blocks, None)
            if block is None:
                parts.append(np.zeros(n - have, dtype=np.float32))
                have = n
                break
            parts.append(block)
            have += block.size
        joined = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self.pending = joined[n:]
        return joined[:n]

    def drain(self) -> int:
        """Run the blocks to their end (their checks and running sums); samples left over."""
        return self.pending.size + sum(block.size for block in self.blocks)


def write_at_input_rate(
    path: Path,
    target: Path,
    delta_blocks: Iterator[np.ndarray],
    info: ScanInfo,
    *,
    fmt: str,
    subtype: str,
    block_frames: int,
) -> None:
    """Write ``clip(original + upsample(delta), -1, 1)`` at the input's rate and channels.

    ``delta_blocks`` is the 16 kHz mono perturbation in the file's units (not normalised); it is
    resampled to the input's rate and added to every channel of the original samples.
    """
    rate = info.sample_rate_in
    slack = 2 + math.ceil(rate / SAMPLE_RATE)  # rounding of the lengths at two rate changes

    def write(tmp: Path) -> None:
        try:
            out = sf.SoundFile(
                str(tmp), "w", samplerate=rate, channels=info.channels, subtype=subtype,
                format=OUTPUT_FORMATS[fmt],
            )  # fmt: skip
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            raise OutputError(
                f"{target}: cannot write {fmt.upper()} at {rate} Hz, {info.channels} channel(s), "
                f"{subtype} ({short_error_text(exc)})"
            ) from None
        taker = _Taker(_upsampled(delta_blocks, rate))
        frames = 0
        with out, open_audio(path) as source:
            for data in iter_frame_blocks(source, path, block_frames=block_frames):
                delta = taker.take(data.shape[0])
                out.write(np.clip(data + delta[:, None], -1.0, 1.0))
                frames += data.shape[0]
        left = taker.drain()
        if left > slack or (frames != info.frames_in and info.frames_in > 0):
            raise AudioError(path, "changed while being read (length differs)")

    atomic_write(target, write)
