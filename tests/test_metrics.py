"""Metric values on hand-made signals (ssgan.metrics)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from ssgan.metrics import (
    TimePerExample,
    Timer,
    accuracy,
    attack_success_rate,
    log_spectral_distance_db,
    msnr_db,
    pcm16_roundtrip,
    segmental_snr_db,
    snr_db,
    success_mask,
    time_per_example,
)


def _noise(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 0.3


def test_snr_of_tenth_delta_is_20_db_exactly() -> None:
    x = _noise((3, 1000)).double()
    # In float64 the only rounding is that of 0.1 * x: 20 dB to 1e-9.
    expected = torch.full((3,), 20.0, dtype=torch.float64)
    assert torch.allclose(snr_db(x, x + 0.1 * x), expected, rtol=0, atol=1e-9)
    # float32 clips (the library's dtype) agree to float32 rounding.
    x32 = x.float()
    assert torch.allclose(snr_db(x32, x32 + 0.1 * x32), expected, rtol=0, atol=1e-5)
    assert snr_db(x[0], x[0] - 0.01 * x[0]).shape == ()
    assert float(snr_db(x[0], x[0] - 0.01 * x[0])) == pytest.approx(40.0, abs=1e-5)


def test_snr_is_per_clip_and_infinite_without_perturbation() -> None:
    x = _noise((2, 500))
    x_adv = x.clone()
    x_adv[1] += 0.5 * x[1]
    out = snr_db(x, x_adv)
    assert out[0] == math.inf
    assert float(out[1]) == pytest.approx(20 * math.log10(2), abs=1e-5)
    silent = torch.zeros(400)
    assert float(snr_db(silent, silent + 0.1)) == -math.inf


def test_snr_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(2, 10\) vs \(2, 11\)"):
        snr_db(torch.zeros(2, 10), torch.zeros(2, 11))


def test_accuracy_and_asr_definitions() -> None:
    y = [0, 1, 2, 3]
    clean = [0, 1, 2, 0]  # 3 right
    adv = [1, 1, 0, 2]  # clips 0 and 2 flipped; clip 3 was wrong already
    assert accuracy(clean, y) == 0.75
    assert attack_success_rate(y, clean, adv) == pytest.approx(2 / 3)
    assert success_mask(y, clean, adv).tolist() == [True, False, True, False]


def test_asr_edge_cases() -> None:
    y = [0, 1, 2]
    # No clip classified correctly: undefined, nan (not 0).
    assert math.isnan(attack_success_rate(y, [1, 2, 0], [0, 1, 2]))
    assert math.isnan(attack_success_rate([], [], []))
    assert math.isnan(accuracy([], []))
    # All fooled, none fooled.
    assert attack_success_rate(y, y, [1, 2, 0]) == 1.0
    assert attack_success_rate(y, y, y) == 0.0


def test_targeted_asr_counts_only_hits_on_the_target() -> None:
    y = torch.tensor([0, 0, 0, 0])
    clean = torch.tensor([0, 0, 0, 1])
    adv = torch.tensor([2, 1, 2, 2])
    target = torch.tensor([2, 2, 2, 2])
    assert attack_success_rate(y, clean, adv, target=target) == pytest.approx(2 / 3)
    assert attack_success_rate(y, clean, adv) == 1.0


def test_asr_rejects_float_predictions() -> None:
    with pytest.raises(ValueError, match="integer class indices"):
        attack_success_rate(torch.tensor([0.0]), [0], [1])


def test_msnr_averages_successes_only() -> None:
    snr = torch.tensor([10.0, 20.0, 60.0])
    assert msnr_db(snr, [True, True, False]) == 15.0
    assert math.isnan(msnr_db(snr, [False, False, False]))


def test_segmental_snr_clamps_frames() -> None:
    x = _noise((1, 3200))
    # delta only in the first half, at exactly 20 dB there; the clean half counts as 35 dB.
    x_adv = x.clone()
    x_adv[:, :1600] += 0.1 * x[:, :1600]
    assert float(segmental_snr_db(x, x_adv)[0]) == pytest.approx((20 + 35) / 2, abs=1e-6)
    # Loud perturbation: clamped to -10 dB.
    assert float(segmental_snr_db(x[0], x[0] + 1000 * x[0])) == pytest.approx(-10.0)
    with pytest.raises(ValueError, match="frame_length=0"):
        segmental_snr_db(x, x_adv, frame_length=0)


def test_log_spectral_distance_of_gain() -> None:
    x = _noise((2, 4000))
    assert torch.allclose(log_spectral_distance_db(x, x), torch.zeros(2, dtype=torch.float64))
    # A gain g shifts every log power by 20 log10 g dB, except where both hit the floor.
    lsd = log_spectral_distance_db(x, 2 * x)
    assert torch.allclose(lsd, torch.full((2,), 20 * math.log10(2), dtype=torch.float64))
    assert log_spectral_distance_db(x[0, :100], 2 * x[0, :100]).shape == ()


def test_pcm16_roundtrip_equals_soundfile() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            rng.uniform(-1.2, 1.2, 20000),
            rng.normal(0, 1e-4, 2000),
            np.arange(-40, 41) / 65536,
            [1.0, -1.0, 0.0],
        ]
    ).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, 16000, format="WAV", subtype="PCM_16")
    buf.seek(0)
    expected, _ = sf.read(buf, dtype="float32")
    got = pcm16_roundtrip(torch.from_numpy(x))
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), expected)
    # A second trip is the identity: values are on the grid.
    assert torch.equal(pcm16_roundtrip(got), got)


def test_timer_and_time_per_example() -> None:
    with Timer("cpu") as t:
        sum(range(1000))
    assert 0 <= t.seconds < 1
    calls = []
    per = time_per_example(lambda: calls.append(1), 4, warmup=2, repeats=3)
    assert len(calls) == 5 and per >= 0
    with pytest.raises(ValueError, match="n_examples=0"):
        time_per_example(lambda: None, 0)


def test_time_per_example_excludes_warmup_batch() -> None:
    tpe = TimePerExample(device="cpu")
    tpe.add(10.0, 2)
    assert not tpe.warm and tpe.seconds_per_example == 5.0
    tpe.add(1.0, 2)
    tpe.add(3.0, 2)
    assert tpe.warm and tpe.seconds_per_example == 1.0
    assert tpe.as_dict()["device"] == "cpu"
