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
   ``chunk_segments`` segments -- the batches ``SSGANAttack.perturbation`` feeds G -- so every
   sample equals the in-memory path ``clip(x + G(x), -1, 1) * peak``; the last segment is filled
   with the clip's own audio repeated from its start, as ``ssgan.data.segments.split_segments``
   does. Blocks are written to a temporary file that is renamed when complete. The SNR comes
   from running sums of ``x**2`` and ``delta**2`` (float64).

A victim's clip-level prediction only needs the ``n_crops`` windows of the 10-crop protocol
(``ssgan.models.victim.crop_starts``), so those windows are collected on the way and the victim
never sees the whole clip at once.

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
from ssgan.audio import SILENCE_PEAK, _short, open_audio
from ssgan.errors import AudioError
from ssgan.models.victim import ClipClassifier, crop_starts
from ssgan.training.checkpoint import atomic_write

__all__ = ["ScanInfo", "StreamResult", "attack_file", "iter_mono_blocks", "scan_audio"]

logger = logging.getLogger(__name__)

#: Frames decoded per read (per channel); ~1.5 MB for stereo float32.
DEFAULT_BLOCK_FRAMES = 1 << 16


@dataclasses.dataclass(frozen=True)
class ScanInfo:
    """What the first pass learns about a file.

    Attributes:
        path: the file.
        sample_rate_in: the file's own rate (Hz).
        channels: the file's channel count.
        frames_in: frames decoded at the file's rate.
        n_samples: samples after resampling to 16 kHz.
        peak: absolute maximum of the 16 kHz mono signal (before normalisation).
        head: the first ``min(head_samples, n_samples)`` samples of that signal (unnormalised).
    """

    path: Path
    sample_rate_in: int
    channels: int
    frames_in: int
    n_samples: int
    peak: float
    head: np.ndarray


@dataclasses.dataclass
class StreamResult:
    """The outcome of ``attack_file``: seconds, SNR (dB) and optional victim logits ``(1, C)``."""

    seconds: float
    n_samples: int
    peak: float
    snr_db: float
    clean_logits: torch.Tensor | None = None
    adv_logits: torch.Tensor | None = None
    streamed: bool = True


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
        declared = int(handle.frames)
        check_count = handle.format not in ("MP3", "OGG") and declared > 0
        stream = (
            None
            if rate == sample_rate
            else soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality="HQ")
        )
        decoded = 0
        while True:
            try:
                data = handle.read(block_frames, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
                raise AudioError(path, f"truncated or corrupted ({_short(exc)})") from None
            if data.shape[0] == 0:
                break
            decoded += data.shape[0]
            if not np.all(np.isfinite(data)):
                raise AudioError(path, "contains NaN or Inf samples")
            mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
            mono = np.ascontiguousarray(mono)
            if stream is None:
                yield mono
            else:
                out = stream.resample_chunk(mono, last=False)
                if out.size:
                    yield out.astype(np.float32, copy=False)
        if decoded == 0:
            raise AudioError(path, "no samples (empty audio stream)")
        if check_count and decoded < declared:
            raise AudioError(path, f"truncated ({decoded} of {declared} frames decoded)")
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
    head = np.concatenate(head_parts) if head_parts else np.zeros(0, dtype=np.float32)
    return ScanInfo(path, rate, channels, frames, n, peak, head)


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


def _write_in_memory(
    attack: SSGANAttack,
    path: Path,
    target: Path,
    victim: ClipClassifier | None,
    subtype: str,
    device: torch.device,
    target_class: int | None = None,
) -> StreamResult:
    from ssgan.audio import load_audio_with_peak, save_audio

    x_np, peak = load_audio_with_peak(path)
    x = torch.from_numpy(x_np)[None].to(device)
    aim = None if target_class is None else torch.tensor([target_class])
    x_adv = (x + attack.perturbation(x, target=aim)).clamp(-1.0, 1.0)
    save_audio(target, (x_adv[0].cpu() * peak).numpy(), subtype=subtype)
    x64, d64 = x.double().cpu(), (x_adv - x).double().cpu()
    result = StreamResult(
        seconds=x.shape[1] / SAMPLE_RATE,
        n_samples=x.shape[1],
        peak=peak,
        snr_db=_snr(float((x64**2).sum()), float((d64**2).sum())),
        streamed=False,
    )
    if victim is not None:
        with torch.no_grad():
            result.clean_logits = victim(x).cpu()
            result.adv_logits = victim(x_adv).cpu()
    return result


def attack_file(
    attack: SSGANAttack,
    path: str | Path,
    target: str | Path,
    *,
    victim: ClipClassifier | None = None,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
    subtype: str = "PCM_16",
    target_class: int | None = None,
) -> StreamResult:
    """Write the SSGAN adversarial version of ``path`` to ``target`` (16 kHz, input's level).

    Samples equal ``clip(x + attack.perturbation(x), -1, 1) * peak`` of the in-memory path
    (``x`` the peak-normalised 16 kHz clip), but memory does not grow with the file's length.
    ``target`` appears only when complete (temp file + fsync + rename).

    Args:
        attack: a fitted ``SSGANAttack`` (``chunk_segments`` sets the block size).
        path: input audio file (any rate / channels soundfile reads).
        target: output ``.wav`` or ``.flac`` path.
        victim: optional ``ClipClassifier``; its clean and adversarial 10-crop logits are returned.
        block_frames: frames decoded per read.
        subtype: output sample format (see ``ssgan.audio.save_audio``).
        target_class: the class a class-conditional generator aims at (``None`` otherwise).

    Raises:
        AudioError: the input cannot be used (naming the file and the reason).
    """
    if not isinstance(attack, SSGANAttack):
        raise TypeError(f"attack must be an SSGANAttack, got {type(attack).__name__}")
    if victim is not None and not isinstance(victim, ClipClassifier):
        raise TypeError(f"victim must be a ClipClassifier, got {type(victim).__name__}")
    if attack.generator.grad_input:
        raise ValueError(
            "a generator that reads the victim's gradient cannot stream: the gradient needs the "
            "whole clip through the victim (attack it in memory with attack(victim, x, y))"
        )
    path, target = Path(path), Path(target)
    formats = {".wav": "WAV", ".flac": "FLAC"}
    if target.suffix.lower() not in formats:
        raise ValueError(f"{target}: unsupported output format (use .wav or .flac)")
    g = attack.generator
    g_device = next(g.parameters()).device
    length = attack.segment_samples
    chunk = attack.chunk_segments
    window = victim.window if victim is not None else 0
    info = scan_audio(path, head_samples=length, block_frames=block_frames)
    total = info.n_samples
    if attack.overlap or total <= length + window:
        # The crossfade spans chunk borders / a tiny clip fits in memory anyway.
        return _write_in_memory(attack, path, target, victim, subtype, g_device, target_class)
    attack._require_fitted()
    peak = info.peak
    head = torch.from_numpy((info.head / peak).astype(np.float32, copy=False))
    clean = _CropCollector(victim, total) if victim is not None else None
    adv = _CropCollector(victim, total) if victim is not None else None
    sums = [0.0, 0.0]

    def write(tmp: Path) -> None:
        offset = 0
        with sf.SoundFile(
            str(tmp),
            "w",
            samplerate=SAMPLE_RATE,
            channels=1,
            subtype=subtype,
            format=formats[target.suffix.lower()],
        ) as out:
            blocks = iter_mono_blocks(path, block_frames=block_frames)
            for block in _fixed_blocks(blocks, chunk * length):
                x = torch.from_numpy((block / peak).astype(np.float32, copy=False))
                n = block.shape[0]
                n_seg = -(-n // length)
                fill = n_seg * length - n
                if fill:
                    # Only the clip's last block is short; fill from the clip's start (SIP).
                    if offset + n != total:
                        raise AudioError(path, "changed while being read (length differs)")
                    segs = torch.cat([x, head[:fill]])
                else:
                    segs = x
                with torch.no_grad():
                    aim = None
                    if target_class is not None:
                        aim = torch.full((n_seg,), target_class, device=g_device)
                    delta = g(segs.reshape(n_seg, length).to(g_device, torch.float32), target=aim)
                delta = delta.to("cpu", torch.float32).reshape(-1)[:n]
                x_adv = (x + delta).clamp(-1.0, 1.0)
                out.write((x_adv * peak).numpy())
                x64 = x.double()
                sums[0] += float((x64**2).sum())
                sums[1] += float(((x_adv.double() - x64) ** 2).sum())
                if clean is not None and adv is not None:
                    clean.add(x, offset)
                    adv.add(x_adv, offset)
                offset += n
        if offset != total:
            raise AudioError(path, f"changed while being read ({offset} != {total} samples)")

    atomic_write(target, write)
    result = StreamResult(
        seconds=total / SAMPLE_RATE, n_samples=total, peak=peak, snr_db=_snr(*sums)
    )
    if victim is not None and clean is not None and adv is not None:
        result.clean_logits = _victim_logits(victim, clean.crops)
        result.adv_logits = _victim_logits(victim, adv.crops)
    return result
