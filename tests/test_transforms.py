"""Channel transforms: shape, dtype, seeds, neutral settings, MP3 alignment, spec parsing, EOT."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from ssgan.transforms import EOT, TRANSFORMS, parse_transform, parse_transforms
from ssgan.transforms import functional as F

SR = 16_000

# One spec per registered transform, each with a setting that changes the clip.
SPECS = {
    "mp3": "mp3:kbps=64",
    "resample": "resample:rate_hz=8000",
    "noise": "noise:snr_db=20",
    "bgnoise": "bgnoise:snr_db=10,path={bg}",
    "bandpass": "bandpass:low_hz=300,high_hz=3400",
    "gain": "gain:min_db=-6,max_db=-1",
    "shift": "shift:max_ms=20",
    "reverb": "reverb:rt60_s=0.4,drr_db=0",
}
NEUTRAL = {
    "resample": "resample:rate_hz=16000",
    "noise": "noise:snr_db=inf",
    "bgnoise": "bgnoise:snr_db=inf,path={bg}",
    "bandpass": "bandpass",
    "gain": "gain:min_db=0,max_db=0",
    "shift": "shift:max_ms=0",
    "reverb": "reverb:rt60_s=0",
}
RANDOM = {"noise", "bgnoise", "gain", "shift", "reverb"}


@pytest.fixture(scope="module")
def bg(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A folder of two fake background recordings (brown-ish noise, 0.3 s and 2 s)."""
    root = tmp_path_factory.mktemp("bg")
    rng = np.random.default_rng(5)
    for name, seconds in (("a.wav", 0.3), ("b.flac", 2.0)):
        noise = np.cumsum(rng.standard_normal(int(seconds * SR)))
        sf.write(root / name, (0.5 * noise / np.abs(noise).max()).astype(np.float32), SR)
    return str(root)


def _tone(n: int = 8000, batch: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / SR
    freqs = torch.tensor([440.0, 1000.0, 2500.0])[:batch, None]
    x = 0.4 * torch.sin(2 * math.pi * freqs * t) + 0.05 * torch.randn(batch, n, generator=g)
    return x.float()


def _lag(y: np.ndarray, x: np.ndarray, max_lag: int = 400) -> int:
    """The shift of ``y`` against ``x`` with the highest correlation, in [-max_lag, max_lag]."""
    lags = range(-max_lag, max_lag + 1)
    scores = [np.dot(np.roll(y, -lag)[max_lag:-max_lag], x[max_lag:-max_lag]) for lag in lags]
    return list(lags)[int(np.argmax(scores))]


def test_every_registered_transform_is_covered() -> None:
    assert set(SPECS) == set(TRANSFORMS)


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_range_and_change(name: str, dtype: torch.dtype, bg: str) -> None:
    t = parse_transform(SPECS[name].format(bg=bg))
    x = _tone(n=7777).to(dtype)  # an odd length
    y = t(x, generator=torch.Generator().manual_seed(1))
    assert y.shape == x.shape and y.dtype == dtype
    assert y.abs().max() <= 1.0
    assert not torch.allclose(y, x, atol=1e-4), f"{name} left the clip unchanged"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_same_seed_same_output(name: str, bg: str) -> None:
    t = parse_transform(SPECS[name].format(bg=bg))
    x = _tone()
    a = t(x, generator=torch.Generator().manual_seed(7))
    b = t(x, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    c = t(x, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, c) != (name in RANDOM)  # only random transforms depend on the seed


@pytest.mark.parametrize("name", sorted(NEUTRAL))
def test_identity_at_neutral_settings(name: str, bg: str) -> None:
    x = _tone()
    y = parse_transform(NEUTRAL[name].format(bg=bg))(x, generator=torch.Generator())
    torch.testing.assert_close(y, x, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["mp3", "resample", "bandpass"])
def test_batch_equals_items_for_deterministic_transforms(name: str) -> None:
    t = parse_transform(SPECS[name])
    x = _tone()
    whole = t(x)
    for i in range(x.shape[0]):
        torch.testing.assert_close(t(x[i : i + 1])[0], whole[i], rtol=0, atol=1e-6)


@pytest.mark.parametrize("kbps", [24, 64, 128])
@pytest.mark.parametrize("n", [4000, 12345])
def test_mp3_round_trip_is_aligned_and_close(kbps: int, n: int) -> None:
    """24 kbit/s is one of the rates whose raw decode is 1105 samples late and longer."""
    x = _tone(n=n)
    y = F.mp3_roundtrip(x, kbps=kbps)
    assert y.shape == x.shape
    for row_x, row_y in zip(x.numpy(), y.numpy(), strict=True):
        assert _lag(row_y, row_x) == 0
    err = (y - x)[:, 500:-500].pow(2).mean() / x.pow(2).mean()
    assert 10 * math.log10(1 / float(err)) > (15 if kbps >= 64 else 5)


def test_mp3_delay_is_measured_not_assumed() -> None:
    assert F.mp3_delay(24) > 1000  # LAME resamples internally and libsndfile keeps the delay
    assert F.mp3_delay(128) == 0  # gapless decoding removes it


@pytest.mark.parametrize("kbps", [32, 128])
def test_mp3_uses_the_requested_bit_rate(kbps: int) -> None:
    x = np.random.default_rng(0).standard_normal(SR * 4).astype(np.float32) * 0.1
    assert len(F.mp3_encode(x, kbps)) * 8 / 4 / 1000 == pytest.approx(kbps, rel=0.05)


def test_gaussian_and_background_noise_hit_the_snr(bg: str) -> None:
    x = _tone(n=16000)
    for spec in ("noise:snr_db=20", f"bgnoise:snr_db=20,path={bg}"):
        y = parse_transform(spec)(x, generator=torch.Generator().manual_seed(0))
        snr = 10 * torch.log10(x.pow(2).sum(1) / (y - x).pow(2).sum(1))
        torch.testing.assert_close(snr, torch.full_like(snr, 20.0), atol=0.3, rtol=0)


def test_background_noise_pattern_and_missing_files(bg: str, tmp_path) -> None:
    with pytest.raises(ValueError, match="no audio files"):
        parse_transform(f"bgnoise:path={bg},pattern=*.ogg")
    with pytest.raises(ValueError, match="neither a file nor a folder"):
        parse_transform(f"bgnoise:path={tmp_path / 'nope'}")


def test_resample_removes_content_above_the_new_nyquist_and_stays_aligned() -> None:
    g = torch.Generator().manual_seed(0)
    low = F.band_limit(0.2 * torch.randn(1, 16000, generator=g), high_hz=3000)  # kept by 8 kHz
    t = torch.arange(16000) / SR
    x = low + 0.3 * torch.sin(2 * math.pi * 6000 * t)  # gone at 8 kHz
    y = F.resample_roundtrip(x, rate_hz=8000)
    spec = torch.fft.rfft(y[0]).abs()
    assert spec[6000] < 1e-3 * torch.fft.rfft(x[0]).abs()[6000]  # 1 Hz bins
    err = (y - low)[:, 200:-200].pow(2).mean() / low.pow(2).mean()
    assert 10 * math.log10(1 / float(err)) > 30  # the kept band comes back in place


def test_shift_moves_whole_samples_with_zero_fill() -> None:
    x = _tone(n=2000)
    y = F.random_time_shift(x, max_ms=5, generator=torch.Generator().manual_seed(3))
    for row_x, row_y in zip(x, y, strict=True):
        matches = [
            s for s in range(-80, 81) if torch.equal(torch.roll(row_x, s)[80:-80], row_y[80:-80])
        ]
        assert len(matches) == 1
        s = matches[0]
        assert (row_y[:s] == 0).all() if s > 0 else (row_y[len(row_y) + s :] == 0).all()


def test_room_impulse_response_decays_and_starts_with_the_direct_path() -> None:
    rir = F.synthetic_rir(4, rt60_s=0.5, drr_db=0, generator=torch.Generator().manual_seed(0))
    assert rir.shape == (4, 8000)
    assert (rir[:, 0] == 1).all()
    torch.testing.assert_close(rir[:, 1:].pow(2).sum(1), torch.ones(4))  # drr 0 dB
    early, late = rir[:, 1:800].pow(2).sum(1), rir[:, -800:].pow(2).sum(1)
    assert (late < early * 1e-4).all()  # ~ -50 dB over the 0.4 s between those windows


def test_differentiable_transforms_pass_gradcheck() -> None:
    g = torch.Generator().manual_seed(0)
    x = (0.3 * torch.randn(2, 64, generator=g, dtype=torch.float64)).requires_grad_()
    for fn in (
        lambda v: F.band_limit(v, low_hz=1000, high_hz=5000),
        lambda v: F.reverberate(v, rt60_s=0.002, generator=torch.Generator().manual_seed(1)),
        lambda v: F.random_gain(v, min_db=-3, max_db=-1, generator=torch.Generator()),
    ):
        assert torch.autograd.gradcheck(fn, (x,))


@pytest.mark.parametrize("name", sorted(set(SPECS) - {"bgnoise"}))  # bgnoise: scaled detached
def test_a_silent_row_gets_a_finite_gradient(name: str) -> None:
    # ESC-10 clips hold stretches of digital silence: a silent crop in an EOT batch must not
    # turn the generator's gradient (and then its weights) to NaN.
    x = torch.cat([torch.zeros(1, 4000), 0.3 * _tone(n=4000)]).requires_grad_()
    y = parse_transform(SPECS[name])(x, generator=torch.Generator().manual_seed(0),
                                     straight_through=True)  # fmt: skip
    (y * torch.linspace(-1, 1, 4000)).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all()), name


def test_resampling_passes_the_gradient_of_its_low_pass() -> None:
    # Down to 8 kHz and back keeps nothing above 4 kHz: a gradient that says so (not the
    # identity's) lets EOT move a perturbation's energy where the channel keeps it.
    t = parse_transform("resample:rate_hz=8000")
    x = _tone(n=4000).requires_grad_()
    y = t(x, straight_through=True)
    torch.testing.assert_close(y, t(x.detach()))  # the value is the resampler's
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(0))
    (y * w).sum().backward()
    freqs = torch.fft.rfftfreq(4000, d=1 / SR)
    low = torch.fft.irfft(torch.fft.rfft(w, dim=1) * (freqs <= 4000), n=4000, dim=1)
    torch.testing.assert_close(x.grad, low, rtol=1e-4, atol=1e-5)  # the mask's adjoint
    spectrum = torch.fft.rfft(x.grad, dim=1).abs()
    assert float(spectrum[:, freqs > 4100].max()) < 1e-3 * float(spectrum.max())


def test_mp3_refuses_non_finite_input_instead_of_aborting() -> None:
    x = _tone(n=2000)
    x[1, 10] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        F.mp3_roundtrip(x)


def test_straight_through_gives_the_identity_gradient() -> None:
    t = parse_transform("mp3:kbps=64")
    x = _tone(n=3000).requires_grad_()
    assert not t(x).requires_grad  # a codec has no gradient of its own
    y = t(x, straight_through=True)
    torch.testing.assert_close(y, t(x.detach()))  # the value is the codec's
    (y * 2).sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 2.0))


def test_eot_draws_a_transform_per_clip_and_passes_gradients() -> None:
    eot = EOT(["mp3:kbps=64", "gain:min_db=-6,max_db=-6"], prob=1.0)
    x = _tone(n=3000, batch=3).repeat(4, 1).requires_grad_()
    y = eot(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    gain_rows = torch.isclose(y, x * 10 ** (-6 / 20), atol=1e-6).all(dim=1)
    assert 0 < int(gain_rows.sum()) < x.shape[0]  # both transforms drawn over 12 clips
    y.sum().backward()
    expected = torch.where(gain_rows[:, None], 10 ** (-6 / 20), 1.0).expand_as(x)
    torch.testing.assert_close(x.grad, expected)
    untouched = EOT(["mp3"], prob=0.0)(x, generator=torch.Generator())
    torch.testing.assert_close(untouched, x)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("wobble", "unknown transform 'wobble'; known: bandpass"),
        ("mp3:bitrate=64", "has no setting 'bitrate'; known: kbps"),
        ("mp3:kbps=63", "kbps=63: expected one of"),
        ("mp3:kbps=fast", "kbps='fast' is not int"),
        ("noise:snr_db", "'snr_db' is not key=value"),
        ("bgnoise:snr_db=3", "needs path=..."),
        ("bandpass:low_hz=5000,high_hz=1000", "need 0 <= low < high"),
        ("gain:min_db=3,max_db=-3", "need min_db <= max_db"),
        ("reverb:rt60_s=-1", "rt60_s=-1.0: must be >= 0"),
        ("resample:rate_hz=nan", "is not a number"),
    ],
)
def test_bad_specs_name_the_problem(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match.replace("(", r"\(")):
        parse_transform(spec)


def test_specs_round_trip_and_comma_split_lists_rejoin() -> None:
    for spec in ("mp3", "reverb:rt60_s=0.5,drr_db=3", "resample:rate_hz=11025"):
        t = parse_transform(spec)
        assert parse_transform(t.spec) == t
    parsed = parse_transforms(["reverb:rt60_s=0.5", "drr_db=3", "mp3:kbps=64", "gain"])
    assert [t.spec for t in parsed] == [
        "reverb:rt60_s=0.5,drr_db=3",
        "mp3:kbps=64",
        "gain:min_db=-6,max_db=6",
    ]
