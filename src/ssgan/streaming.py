"""Bounded-memory SSGAN attack of long files: decode, resample, perturb and write in blocks.

``ssgan attack`` must handle hour-long recordings. Holding one hour of 16 kHz audio costs ~230 MB
per float32 copy and the in-memory path keeps several (decoded, resampled, normalised, segments,
perturbation, adversarial), so files are processed in two streaming passes instead:

1. **scan**: decode with ``soundfile`` in blocks, mix to mono, resample with
   ``soxr.ResampleStream`` (bit-identical to ``soxr.resample`` on the whole signal), and keep only
   running values: the peak (for the paper's peak normalisation), the output length, the first
   segment (the fill of the last segment) and the checks of ``ssgan.audio.load_audio`` (NaN/Inf,
   silence, truncation).
2. **attack**: decode and resample again, cut the normalised signal into blocks of exactly
   ``chunk_segments`` segments -- the batches ``SSGANAttack.perturbation`` feeds G -- so the
   perturbation equals the in-memory path's ``clip(x + G(x), -1, 1) - x``; the last segment is
   filled with the clip's own audio repeated from its start, as
   ``ssgan.data.segments.split_segments`` does. The perturbation, scaled back to the file's level,
   is resampled to the input's own rate (``soxr.ResampleStream`` again) and added to every
   channel of the original samples, read in step from a second handle; the output keeps the
   input's rate, channel count and (where the format stores it) sample format. Blocks go to a
   temporary file that is renamed when complete. The SNR comes from running sums of ``x**2``,
   ``(x + 1)**2`` and ``delta**2`` (float64) at 16 kHz, as the paper measures it: the true SNR
   and [16]'s box one (``ssgan.metrics``).

A victim's clip-level prediction only needs the ``n_crops`` windows of the 10-crop protocol
(``ssgan.models.victim.crop_starts``), so those windows are collected on the way and the victim
never sees the whole clip at once. The adversarial decision is taken on the written file read back
through the same loader, so it is the decision a user who plays that file to the victim gets.

Peak memory is O(chunk_segments * segment + block_frames * channels), independent of the file's
length. Clips shorter than one segment plus one victim window, and ``overlap=True`` (whose
crossfade spans chunk borders), take the in-memory path.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
import torch.nn.functional as F

from ssgan import SAMPLE_RATE
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.audio import SILENCE_PEAK, open_audio, short_error_text
from ssgan.errors import AudioError, OutputError
from ssgan.io import atomic_write
from ssgan.models.victim import ClipClassifier, crop_starts

__all__ = [
    "OUTPUT_FORMATS",
    "ScanInfo",
    "StreamResult",
    "attack_file",
    "file_logits",
    "iter_frame_blocks",
    "iter_mono_blocks",
    "output_format",
    "output_subtype",
    "scan_audio",
]

logger = logging.getLogger(__name__)

#: Frames decoded per read (per channel); ~1.5 MB for stereo float32.
DEFAULT_BLOCK_FRAMES = 1 << 16

#: Output format families of ``attack_file`` (name -> libsndfile format).
OUTPUT_FORMATS = {"wav": "WAV", "flac": "FLAC"}
_WRITABLE_SUBTYPES = {
    "wav": ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"),
    "flac": ("PCM_16", "PCM_24"),
}


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


@dataclasses.dataclass
class StreamResult:
    """The outcome of ``attack_file``: seconds, SNR (dB; true and in [16]'s box convention), the
    written file's rate and channels, and optional victim logits ``(1, C)`` (clean input;
    written file read back)."""

    seconds: float
    n_samples: int
    peak: float
    snr_db: float
    sample_rate: int
    channels: int
    snr_box_db: float = math.nan
    clean_logits: torch.Tensor | None = None
    adv_logits: torch.Tensor | None = None
    streamed: bool = True


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


def _fixed_blocks(blocks: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
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


class _CropCollector:
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


def _victim_logits(victim: ClipClassifier, crops: torch.Tensor) -> torch.Tensor:
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


def _snr(sum_x2: float, sum_d2: float) -> float:
    if sum_d2 == 0.0:
        return math.inf
    if sum_x2 == 0.0:
        return -math.inf
    return 10.0 * math.log10(sum_x2 / sum_d2)


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


def _write_at_input_rate(
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


def file_logits(
    victim: ClipClassifier, path: str | Path, *, block_frames: int = DEFAULT_BLOCK_FRAMES
) -> torch.Tensor:
    """The victim's clip logits ``(1, C)`` for ``path`` as the normal loader reads it
    (``ssgan.audio.load_audio``: mono, 16 kHz, peak-normalised), in bounded memory."""
    info = scan_audio(path, block_frames=block_frames)
    crops = _CropCollector(victim, info.n_samples)
    offset = 0
    for block in iter_mono_blocks(path, block_frames=block_frames):
        crops.add(torch.from_numpy((block / info.peak).astype(np.float32, copy=False)), offset)
        offset += block.size
    return _victim_logits(victim, crops.crops)


def attack_file(
    attack: SSGANAttack,
    path: str | Path,
    target: str | Path,
    *,
    victim: ClipClassifier | None = None,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
    subtype: str | None = None,
    target_class: int | None = None,
) -> StreamResult:
    """Write the SSGAN adversarial version of ``path`` to ``target`` at the input's own sample
    rate, channel count and level.

    The perturbation is made where G works: ``delta = clip(x + attack.perturbation(x), -1, 1)
    - x`` on ``x``, the peak-normalised 16 kHz mono clip (what ``load_audio`` gives). It is
    scaled back to the file's level, resampled to the input's rate (soxr) and added to every
    channel of the original samples: ``out = clip(original + upsample(delta * peak), -1, 1)``.
    Memory does not grow with the file's length. ``target`` appears only when complete (temp
    file + fsync + rename).

    Args:
        attack: a fitted ``SSGANAttack`` (``chunk_segments`` sets the block size).
        path: input audio file (any rate / channels soundfile reads).
        target: output path; ``.wav`` or ``.flac`` sets the format.
        victim: optional ``ClipClassifier``; its logits on the clean input and on ``target``
            as read back through the normal loader are returned.
        block_frames: frames decoded per read.
        subtype: output sample format (``None``: the input's, if the format stores it, else
            ``PCM_16``).
        target_class: the class a class-conditional generator aims at (``None`` otherwise).

    Returns:
        A ``StreamResult``; ``snr_db`` is paper eq. 10 on the normalised 16 kHz clip,
        ``snr_box_db`` the same in [16]'s box convention (``ssgan.metrics.snr_box_db``).

    Raises:
        AudioError: the input cannot be used (naming the file and the reason).
        OutputError: ``target`` cannot be written in that format / subtype.
    """
    if not isinstance(attack, SSGANAttack):
        raise TypeError(f"attack must be an SSGANAttack, got {type(attack).__name__}")
    if victim is not None and not isinstance(victim, ClipClassifier):
        raise TypeError(f"victim must be a ClipClassifier, got {type(victim).__name__}")
    # The attack-time steps that query the victim (its gradient as G's input, the minimum-norm
    # refinement, the quietest-scale search) need the whole clip through the victim: such a file
    # is attacked in memory, away from the victim's own clean decision.
    queries = bool(attack.grad_input or attack.refine_steps or attack.quietest)
    if queries and victim is None:
        raise ValueError(
            "this attack queries the victim (gradient input, refine_steps or quietest): "
            "pass the victim (ssgan attack --victim RUN_V)"
        )
    path, target = Path(path), Path(target)
    suffixes = {f".{name}": name for name in OUTPUT_FORMATS}
    if target.suffix.lower() not in suffixes:
        raise ValueError(f"{target}: unsupported output format (use .wav or .flac)")
    fmt = suffixes[target.suffix.lower()]
    if subtype is not None and subtype not in _WRITABLE_SUBTYPES[fmt]:
        raise ValueError(
            f"subtype={subtype!r}: {fmt} stores one of {sorted(_WRITABLE_SUBTYPES[fmt])}"
        )
    attack._require_fitted()
    length = attack.segment_samples
    window = victim.window if victim is not None else 0
    info = scan_audio(path, head_samples=length, block_frames=block_frames)
    total, peak = info.n_samples, info.peak
    sums = [0.0, 0.0, 0.0]  # sum x^2, sum delta^2, sum (x + 1)^2
    clean: _CropCollector | None = None
    clean_logits: torch.Tensor | None = None
    streamed = not (queries or attack.overlap or total <= length + window)

    def in_memory() -> Iterator[np.ndarray]:
        # The crossfade spans chunk borders / a tiny clip fits in memory anyway.
        nonlocal clean_logits
        x = torch.from_numpy(np.concatenate(list(iter_mono_blocks(path))) / peak).float()[None]
        aim = None if target_class is None else torch.tensor([target_class])
        if victim is not None:
            with torch.no_grad():
                clean_logits = victim(x.to(next(victim.parameters()).device)).cpu()
        if queries:
            assert victim is not None and clean_logits is not None
            dev = next(victim.parameters()).device
            own = clean_logits.argmax(1).to(dev)
            x_adv = attack(victim, x.to(dev), own, target=None if aim is None else aim.to(dev))
            x_adv = x_adv.cpu()
        else:
            x_adv = (x + attack.perturbation(x, target=aim)).clamp(-1.0, 1.0)
        delta = x_adv - x
        sums[0], sums[1] = float((x.double() ** 2).sum()), float((delta.double() ** 2).sum())
        sums[2] = float(((x.double() + 1.0) ** 2).sum())
        yield (delta[0] * peak).numpy()

    def streaming() -> Iterator[np.ndarray]:
        g = attack.generator
        g_device = next(g.parameters()).device
        head = torch.from_numpy((info.head / peak).astype(np.float32, copy=False))
        offset = 0
        blocks = iter_mono_blocks(path, block_frames=block_frames)
        for block in _fixed_blocks(blocks, attack.chunk_segments * length):
            x = torch.from_numpy((block / peak).astype(np.float32, copy=False))
            n = block.shape[0]
            n_seg = -(-n // length)
            fill = n_seg * length - n
            if fill and offset + n != total:
                # Only the clip's last block is short; it is filled from the clip's start (SIP).
                raise AudioError(path, "changed while being read (length differs)")
            segs = torch.cat([x, head[:fill]]) if fill else x
            aim = None
            if target_class is not None:
                aim = torch.full((n_seg,), target_class, device=g_device)
            with torch.no_grad():
                delta = g(segs.reshape(n_seg, length).to(g_device, torch.float32), target=aim)
            delta = delta.to("cpu", torch.float32).reshape(-1)[:n]
            delta = (x + delta).clamp(-1.0, 1.0) - x
            sums[0] += float((x.double() ** 2).sum())
            sums[1] += float((delta.double() ** 2).sum())
            sums[2] += float(((x.double() + 1.0) ** 2).sum())
            if clean is not None:
                clean.add(x, offset)
            offset += n
            yield (delta * peak).numpy()
        if offset != total:
            raise AudioError(path, f"changed while being read ({offset} != {total} samples)")

    if streamed and victim is not None:
        clean = _CropCollector(victim, total)
    _write_at_input_rate(
        path,
        target,
        streaming() if streamed else in_memory(),
        info,
        fmt=fmt,
        subtype=subtype or output_subtype(info.subtype, fmt),
        block_frames=block_frames,
    )
    result = StreamResult(
        seconds=total / SAMPLE_RATE,
        n_samples=total,
        peak=peak,
        snr_db=_snr(sums[0], sums[1]),
        snr_box_db=_snr(sums[2], sums[1]),
        sample_rate=info.sample_rate_in,
        channels=info.channels,
        streamed=streamed,
    )
    if victim is not None:
        result.clean_logits = _victim_logits(victim, clean.crops) if clean else clean_logits
        result.adv_logits = file_logits(victim, target, block_frames=block_frames)
    return result
