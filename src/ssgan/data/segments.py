"""Short-time input processing (SIP): the crops SSGAN trains on and the segments it attacks.

SSGAN (paper section IV-D) never sees a whole clip. In training, each batch is one random
``t1``-second crop per clip; a clip shorter than ``t1`` is filled with its own audio repeated
(the paper pads "from the corresponding real sample"). At attack time a clip of any length is cut
into consecutive non-overlapping ``t1`` segments (the last one filled the same way), each is
perturbed, and the segments are stitched back and trimmed to the original length.

Everything here is a pure, batched torch function built from indexing, reshapes and
``fold``, so gradients flow through it. Filling by repetition is circular indexing: sample ``i``
of the filled signal is sample ``i mod time`` of the clip, which works for every length >= 1.

Shapes: clips ``(batch, time)``, segments ``(batch, n_segments, length)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "crossfade_window",
    "n_segments",
    "overlap_add",
    "random_crops",
    "split_overlapping",
    "split_segments",
    "stitch_segments",
]


def _check_length(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer number of samples, got {value!r}")


def _check_batch(x: torch.Tensor) -> None:
    if x.dim() != 2 or x.shape[1] < 1:
        raise ValueError(
            f"expected audio of shape (batch, time) with time >= 1, got {tuple(x.shape)}"
        )


def random_crops(
    clips: list[torch.Tensor] | torch.Tensor,
    length: int,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One random ``length``-sample crop from each clip: ``(batch, length)``.

    Args:
        clips: a list of 1-D clips ``(time_i,)`` of any lengths, or a batch ``(batch, time)``.
        length: crop length in samples (``round(t1 * sample_rate)``).
        generator: the source of the crop offsets (reproducible, nothing global).

    A clip longer than ``length`` gives a crop at a uniformly random start; a clip shorter than
    ``length`` is filled with its own audio repeated from its start (paper section IV-D).
    """
    _check_length("length", length)
    items = list(clips.unbind(0)) if isinstance(clips, torch.Tensor) else list(clips)
    if not items:
        raise ValueError("random_crops needs at least one clip")
    crops = []
    for i, clip in enumerate(items):
        if clip.dim() != 1 or clip.shape[0] < 1:
            raise ValueError(f"clip {i} must be 1-D and non-empty, got shape {tuple(clip.shape)}")
        time = clip.shape[0]
        if time > length:
            start = int(torch.randint(0, time - length + 1, (1,), generator=generator))
            crops.append(clip[start : start + length])
        else:
            index = torch.arange(length, device=clip.device) % time
            crops.append(clip[index])
    return torch.stack(crops)


def n_segments(time: int, length: int) -> int:
    """How many non-overlapping ``length``-sample segments cover ``time`` samples."""
    _check_length("time", time)
    _check_length("length", length)
    return math.ceil(time / length)


def split_segments(x: torch.Tensor, length: int) -> torch.Tensor:
    """Cut ``(batch, time)`` into consecutive segments ``(batch, n, length)``.

    ``n = ceil(time / length)``; the last segment is filled with the clip's own audio repeated
    from its start (so a clip shorter than ``length`` becomes one tiled segment).
    """
    _check_batch(x)
    _check_length("length", length)
    time = x.shape[1]
    n = n_segments(time, length)
    if n * length == time:
        return x.reshape(x.shape[0], n, length)
    index = torch.arange(n * length, device=x.device) % time
    return x[:, index].reshape(x.shape[0], n, length)


def stitch_segments(segments: torch.Tensor, time: int) -> torch.Tensor:
    """Inverse of ``split_segments``: ``(batch, n, length)`` -> ``(batch, time)``.

    Concatenates the segments and trims the fill, so ``stitch_segments(split_segments(x, L),
    x.shape[1])`` returns ``x`` exactly.
    """
    if segments.dim() != 3:
        raise ValueError(f"expected segments (batch, n, length), got {tuple(segments.shape)}")
    _check_length("time", time)
    batch, n, length = segments.shape
    if time > n * length:
        raise ValueError(f"time={time} is longer than {n} segments of {length} samples")
    return segments.reshape(batch, n * length)[:, :time]


def _n_overlapping(time: int, length: int, hop: int) -> int:
    _check_length("hop", hop)
    if hop > length:
        raise ValueError(f"hop={hop} must not exceed the segment length={length}")
    return 1 + math.ceil(max(time - length, 0) / hop)


def split_overlapping(x: torch.Tensor, length: int, hop: int) -> torch.Tensor:
    """Cut ``(batch, time)`` into segments ``(batch, n, length)`` starting every ``hop`` samples.

    ``n = 1 + ceil(max(time - length, 0) / hop)``; the tail is filled like ``split_segments``.
    """
    _check_batch(x)
    _check_length("length", length)
    time = x.shape[1]
    n = _n_overlapping(time, length, hop)
    starts = torch.arange(n, device=x.device) * hop
    index = (starts[:, None] + torch.arange(length, device=x.device)[None, :]) % time
    return x[:, index]


def crossfade_window(length: int, hop: int, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Crossfade window ``(length,)``: linear ramps over the ``length - hop`` overlap, 1 between.

    The ramps are strictly positive (``(k + 0.5) / overlap``), so the normalised overlap-add
    below is defined everywhere; with ``hop >= length / 2`` neighbouring ramps already sum to one.
    """
    _check_length("length", length)
    _check_length("hop", hop)
    if hop > length:
        raise ValueError(f"hop={hop} must not exceed the segment length={length}")
    window = torch.ones(length, dtype=dtype)
    overlap = length - hop
    if overlap > 0:
        ramp = (torch.arange(overlap, dtype=torch.float64) + 0.5) / overlap
        window[:overlap] = ramp.to(dtype)
        window[length - overlap :] = torch.minimum(
            window[length - overlap :], ramp.flip(0).to(dtype)
        )
    return window


def _fold(frames: torch.Tensor, total: int, length: int, hop: int) -> torch.Tensor:
    # fold sums overlapping (1, length) blocks: (B, length, n) -> (B, 1, 1, total).
    out = F.fold(frames, output_size=(1, total), kernel_size=(1, length), stride=(1, hop))
    return out.reshape(frames.shape[0], total)


def overlap_add(segments: torch.Tensor, time: int, hop: int) -> torch.Tensor:
    """Crossfade segments from ``split_overlapping`` back into ``(batch, time)``.

    Each output sample is ``sum_i w_i * seg_i / sum_i w_i`` over the segments covering it, with
    ``w`` the ``crossfade_window``: the normalised weights sum to one at every sample, so
    unmodified segments reconstruct ``x`` (to float rounding) and perturbed ones fade into each
    other instead of jumping at the boundary.
    """
    if segments.dim() != 3:
        raise ValueError(f"expected segments (batch, n, length), got {tuple(segments.shape)}")
    _check_length("time", time)
    n, length = segments.shape[1:]
    expected = _n_overlapping(time, length, hop)
    if n != expected:
        raise ValueError(
            f"{n} segments given, but time={time}, length={length}, hop={hop} needs {expected}"
        )
    total = (n - 1) * hop + length
    window = crossfade_window(length, hop, dtype=segments.dtype).to(segments.device)
    summed = _fold((segments * window).transpose(1, 2), total, length, hop)
    weights = _fold(window.expand(1, n, length).transpose(1, 2), total, length, hop)
    return (summed / weights)[:, :time]
