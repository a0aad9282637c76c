"""SIP: crops, split / stitch, overlap-add (ssgan.data.segments)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssgan.data.segments import (
    crossfade_window,
    n_segments,
    overlap_add,
    random_crops,
    split_overlapping,
    split_segments,
    stitch_segments,
)


def _clip(batch: int, time: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, time, generator=g) * 2 - 1


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(1, 40),
    n=st.integers(1, 10),
    extra=st.integers(0, 39),
    seed=st.integers(0, 9),
)
def test_stitch_of_split_is_exact(length: int, n: int, extra: int, seed: int) -> None:
    # time from 1 sample up to 10 segments, including exact multiples and one-off lengths
    time = max(1, (n - 1) * length + 1 + extra % length)
    x = _clip(3, time, seed)
    segs = split_segments(x, length)
    assert segs.shape == (3, n_segments(time, length), length)
    assert torch.equal(stitch_segments(segs, time), x)


def test_last_segment_is_filled_with_the_clips_own_audio() -> None:
    x = torch.arange(1.0, 8.0)[None]  # 7 samples
    segs = split_segments(x, 5)
    assert segs.tolist() == [[[1, 2, 3, 4, 5], [6, 7, 1, 2, 3]]]
    short = split_segments(torch.tensor([[1.0, 2.0]]), 5)
    assert short.tolist() == [[[1, 2, 1, 2, 1]]]


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 300), min_size=1, max_size=5), crop=st.integers(1, 120))
def test_crops_have_the_crop_length_and_come_from_the_clip(lengths: list[int], crop: int) -> None:
    clips = [torch.arange(float(n)) + 1000 * i for i, n in enumerate(lengths)]
    out = random_crops(clips, crop, generator=torch.Generator().manual_seed(0))
    assert out.shape == (len(clips), crop)
    for i, (clip, row) in enumerate(zip(clips, out, strict=True)):
        n = clip.shape[0]
        if n >= crop:  # a contiguous window of the clip
            start = int(row[0]) - 1000 * i
            assert torch.equal(row, clip[start : start + crop])
        else:  # the clip repeated from its start
            assert torch.equal(row, clip[torch.arange(crop) % n])


def test_crops_are_reproducible_and_depend_on_the_generator() -> None:
    x = _clip(4, 1000, 1)
    a = random_crops(x, 100, generator=torch.Generator().manual_seed(3))
    b = random_crops(x, 100, generator=torch.Generator().manual_seed(3))
    c = random_crops(x, 100, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@settings(max_examples=50, deadline=None)
@given(length=st.integers(2, 40), hop_frac=st.floats(0.25, 1.0), time=st.integers(1, 300))
def test_overlap_add_reconstructs(length: int, hop_frac: float, time: int) -> None:
    hop = max(1, round(length * hop_frac))
    x = _clip(2, time, time)
    segs = split_overlapping(x, length, hop)
    torch.testing.assert_close(overlap_add(segs, time, hop), x, rtol=0, atol=1e-6)


def test_crossfade_weights_sum_to_one_between_neighbours() -> None:
    w = crossfade_window(8, 4, dtype=torch.float64)
    assert torch.all(w > 0)
    torch.testing.assert_close(w[4:] + w[:4], torch.ones(4, dtype=torch.float64))
    assert torch.equal(crossfade_window(8, 8), torch.ones(8))


def test_gradients_flow_through_split_stitch_and_overlap_add() -> None:
    x = _clip(2, 37, 0).double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: stitch_segments(split_segments(v, 10) * 2, 37), (x,))
    assert torch.autograd.gradcheck(
        lambda v: overlap_add(split_overlapping(v, 10, 6) ** 2, 37, 6), (x,)
    )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: split_segments(torch.zeros(2, 5), 0), "length"),
        (lambda: split_segments(torch.zeros(5), 2), "batch, time"),
        (lambda: split_overlapping(torch.zeros(1, 5), 4, 5), "hop=5"),
        (lambda: random_crops([torch.zeros(0)], 4), "clip 0"),
        (lambda: stitch_segments(torch.zeros(1, 2, 3), 7), "time=7"),
        (lambda: overlap_add(torch.zeros(1, 2, 4), 20, 2), "needs"),
    ],
)
def test_bad_arguments_raise_value_error(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
