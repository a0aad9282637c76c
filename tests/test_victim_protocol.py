"""The clip-level crop protocol (ClipClassifier), random crops, wrap_victim, load_victim errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import TinyVictim, synth_batch
from ssgan.errors import CheckpointError
from ssgan.models.victim import (
    ClipClassifier,
    crop_starts,
    load_victim,
    pad_clip,
    predict_clips,
    random_crop,
    wrap_victim,
)


class Linear400(nn.Module):
    """A tiny window classifier: (batch, 400) -> 3 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(400, 3)
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            self.fc.weight.copy_(torch.randn(3, 400, generator=g) * 0.1)
            self.fc.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == 400
        return self.fc(x)


def test_ten_crops_equal_a_hand_written_computation() -> None:
    net = Linear400().eval()
    clf = ClipClassifier(net, window=400, n_crops=10)
    clip = torch.randn(1000, generator=torch.Generator().manual_seed(2))
    # By hand: pad 200 zeros each side -> 1400; stride (1400 - 400) // 9 = 111.
    padded = torch.cat([torch.zeros(200), clip, torch.zeros(200)])
    probs = []
    for k in range(10):
        crop = padded[111 * k : 111 * k + 400]
        probs.append(torch.softmax(net(crop[None]), -1)[0])
    mean = torch.stack(probs).mean(0)
    with torch.no_grad():
        logits = clf(clip[None])[0]
    torch.testing.assert_close(torch.softmax(logits, -1), mean)
    torch.testing.assert_close(logits, mean.log())
    assert clf.predict(clip[None]).item() == int(mean.argmax())


def test_crop_starts_follow_the_official_multi_crop() -> None:
    assert crop_starts(1400, 400, 10) == [111 * k for k in range(10)]
    assert crop_starts(500, 400, 1) == [50]
    with pytest.raises(ValueError, match="padded_length=300"):
        crop_starts(300, 400, 10)


@pytest.mark.parametrize("length", [0, 1, 7, 399, 400, 401, 1234])
def test_any_clip_length_gives_logits(length: int) -> None:
    clf = ClipClassifier(Linear400().eval(), window=400)
    with torch.no_grad():
        out = clf(torch.randn(2, length, generator=torch.Generator().manual_seed(length)))
    assert out.shape == (2, 3)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(2))


def test_odd_window_and_empty_clip_are_padded_to_a_window() -> None:
    assert pad_clip(torch.zeros(2, 0), 401).shape == (2, 401)
    assert pad_clip(torch.zeros(5), 400).shape == (405,)


def test_gradients_reach_the_input_waveform() -> None:
    clf = ClipClassifier(Linear400().eval(), window=400)
    x = torch.randn(2, 900, generator=torch.Generator().manual_seed(3), requires_grad=True)
    clf(x)[:, 0].sum().backward()
    assert x.grad is not None
    assert x.grad.abs().sum(dim=1).min() > 0


def test_gradcheck_float64() -> None:
    net = Linear400().double().eval()
    clf = ClipClassifier(net, window=400, n_crops=3)
    x = torch.randn(1, 450, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    assert torch.autograd.gradcheck(clf, (x.requires_grad_(),), eps=1e-6, atol=1e-5)


def test_batch_and_single_clip_agree_in_eval(tiny_victim: TinyVictim) -> None:
    clf = ClipClassifier(tiny_victim, window=2000, n_crops=10)
    x, _ = synth_batch(4, 5000, seed=5)
    with torch.no_grad():
        batch = clf(x)
        single = torch.cat([clf(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(batch, single, rtol=1e-4, atol=1e-5)


def test_crop_batch_chunks_give_the_same_logits(tiny_victim: TinyVictim) -> None:
    x, _ = synth_batch(3, 5000, seed=6)
    with torch.no_grad():
        ref = ClipClassifier(tiny_victim, window=2000)(x)
        chunked = ClipClassifier(tiny_victim, window=2000, crop_batch=7)(x)
    torch.testing.assert_close(chunked, ref, rtol=1e-4, atol=1e-5)


def test_clip_classifier_keeps_the_tiny_victims_accuracy(tiny_victim: TinyVictim) -> None:
    x, y = synth_batch(16, 6000, seed=7)
    pred = ClipClassifier(tiny_victim, window=2000).predict(x)
    assert (pred == y).float().mean() >= 0.9


def test_predict_clips_handles_mixed_lengths(tiny_victim: TinyVictim) -> None:
    clf = ClipClassifier(tiny_victim, window=2000)
    clips = [synth_batch(1, n, seed=n)[0][0] for n in (3000, 5000, 3000, 4100, 5000)]
    labels, probs = predict_clips(clf, clips, batch_size=2)
    with torch.no_grad():
        expected = torch.cat([clf(c[None]) for c in clips]).argmax(-1)
    assert torch.equal(labels, expected)
    assert probs.shape == (5, 4)


def test_random_crop_is_seeded_and_inside_the_padded_clip() -> None:
    x = torch.arange(1, 1001, dtype=torch.float32).repeat(3, 1)
    a = random_crop(x, 400, torch.Generator().manual_seed(0))
    b = random_crop(x, 400, torch.Generator().manual_seed(0))
    assert a.shape == (3, 400)
    assert torch.equal(a, b)
    padded = pad_clip(x[0], 400)
    for row in a:
        start = int(torch.nonzero(padded == row[row.nonzero()[0, 0]])[0, 0]) - int(
            row.nonzero()[0, 0]
        )
        assert torch.equal(padded[start : start + 400], row)
    assert random_crop(x[0], 400, torch.Generator().manual_seed(1)).shape == (400,)


def test_random_crop_covers_the_padding() -> None:
    x = torch.ones(1, 10)
    g = torch.Generator().manual_seed(0)
    sums = {float(random_crop(x, 8, g).sum()) for _ in range(200)}
    # padded clip: 4 zeros, 10 ones, 4 zeros; every start 0..10 is possible
    assert sums == {4.0, 5.0, 6.0, 7.0, 8.0}


def test_wrap_victim() -> None:
    net = Linear400()
    wrapped = wrap_victim(net, window=400)
    assert isinstance(wrapped, ClipClassifier) and wrapped.window == 400
    assert wrap_victim(wrapped) is wrapped
    tiny = TinyVictim()
    assert wrap_victim(tiny) is tiny  # already takes any length
    net.window = 400  # type: ignore[assignment]
    assert isinstance(wrap_victim(net), ClipClassifier)


def test_bad_protocol_options() -> None:
    with pytest.raises(ValueError, match="window=0"):
        ClipClassifier(Linear400(), window=0)
    with pytest.raises(ValueError, match="n_crops=0"):
        ClipClassifier(Linear400(), window=400, n_crops=0)
    with pytest.raises(ValueError, match=r"\(400,\)"):
        ClipClassifier(Linear400(), window=400)(torch.zeros(400))


def test_load_victim_missing_run(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_victim(tmp_path / "nope")


def test_load_victim_refuses_another_kind(tmp_path) -> None:
    from ssgan.io import save_checkpoint

    save_checkpoint(tmp_path, "last", {"G.w": torch.zeros(2)}, {"kind": "ssgan-gan"})
    with pytest.raises(CheckpointError, match="not a victim checkpoint"):
        load_victim(tmp_path)


def test_log_mean_softmax_is_stable_for_huge_logits() -> None:
    class Huge(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x.sum(-1) * 1e4, -x.sum(-1) * 1e4], -1)

    out = ClipClassifier(Huge(), window=4, n_crops=2)(torch.ones(1, 6))
    assert torch.isfinite(out).all()
    assert math.isclose(float(out.exp().sum()), 1.0, rel_tol=1e-5)


def test_n_classes_is_read_from_the_wrapped_network() -> None:
    from ssgan.models.envnet import EnvNet

    assert ClipClassifier(EnvNet(7, fc_width=8), window=24_014).n_classes == 7
    assert ClipClassifier(TinyVictim(), window=4000).n_classes is None  # no attribute: unknown
