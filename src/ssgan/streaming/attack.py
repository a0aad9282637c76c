"""Bounded-memory SSGAN attack of long files: decode, resample, perturb and write in blocks.

``ssgan attack`` must handle hour-long recordings. Holding one hour of 16 kHz audio costs ~230 MB
per float32 copy and the in-memory path keeps several (decoded, resampled, normalised, segments,
perturbation, adversarial), so files are processed in two streaming passes instead:

1. **scan**: decode with ``soundfile`` in blocks, mix to mono, resample with
   ``soxr.ResampleStream`` (bit-identical to ``soxr.resample`` on the whole signal;
   ``ssgan.streaming.blocks``), and keep only
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
   input's rate, channel count and (where the format stores it) sample format
   (``ssgan.streaming.output``). Blocks go to a
   temporary file that is renamed when complete. The SNR comes from running sums of ``x**2``,
   ``(x + 1)**2`` and ``delta**2`` (float64) at 16 kHz, as the paper measures it: the true SNR
   and [16]'s box one (``ssgan.metrics``).

The victim's clean decision is taken on the windows collected on the way
(``ssgan.streaming.victim``). The adversarial decision is taken on the written file read back
through the same loader, so it is the decision a user who plays that file to the victim gets.

Peak memory is O(chunk_segments * segment + block_frames * channels), independent of the file's
length. Clips shorter than one segment plus one victim window, and ``overlap=True`` (whose
crossfade spans chunk borders), take the in-memory path.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ssgan import SAMPLE_RATE
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.errors import AudioError
from ssgan.models.victim import ClipClassifier
from ssgan.streaming.blocks import DEFAULT_BLOCK_FRAMES, fixed_blocks, iter_mono_blocks, scan_audio
from ssgan.streaming.output import output_subtype, target_format, write_at_input_rate
from ssgan.streaming.victim import CropCollector, crop_logits, file_logits


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


def _snr(sum_x2: float, sum_d2: float) -> float:
    """SNR in dB from running energy sums, with ``ssgan.metrics.snr_db``'s infinities."""
    if sum_d2 == 0.0:
        return math.inf
    if sum_x2 == 0.0:
        return -math.inf
    return 10.0 * math.log10(sum_x2 / sum_d2)


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
    fmt = target_format(target, subtype)
    attack._require_fitted()
    length = attack.segment_samples
    window = victim.window if victim is not None else 0
    info = scan_audio(path, head_samples=length, block_frames=block_frames)
    total, peak = info.n_samples, info.peak
    sums = [0.0, 0.0, 0.0]  # sum x^2, sum delta^2, sum (x + 1)^2
    clean: CropCollector | None = None
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
        for block in fixed_blocks(blocks, attack.chunk_segments * length):
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
        clean = CropCollector(victim, total)
    write_at_input_rate(
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
        result.clean_logits = crop_logits(victim, clean.crops) if clean else clean_logits
        result.adv_logits = file_logits(victim, target, block_frames=block_frames)
    return result
