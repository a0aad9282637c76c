"""ssgan.audio: decoding every format/depth/rate, resampling, normalisation, and each bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ssgan.audio import AudioError, load_audio, load_audio_with_peak, resample, save_audio


def sine(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * math.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize(
    ("suffix", "subtype"),
    [
        (".wav", "PCM_U8"),
        (".wav", "PCM_16"),
        (".wav", "PCM_24"),
        (".wav", "PCM_32"),
        (".wav", "FLOAT"),
        (".flac", "PCM_16"),
        (".flac", "PCM_24"),
        (".ogg", "VORBIS"),
    ],
)
@pytest.mark.parametrize("rate", [8000, 44100, 96000])
def test_load_any_format_depth_rate(tmp_path: Path, suffix: str, subtype: str, rate: int) -> None:
    x = sine(440.0, rate, 0.5)
    stereo = np.stack([x, 0.5 * x], axis=1)
    path = tmp_path / f"clip{suffix}"
    sf.write(path, stereo, rate, subtype=subtype)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 8000) <= 1
    assert np.max(np.abs(y)) == pytest.approx(1.0)


@pytest.mark.parametrize(("rate", "freq"), [(44100, 1000.0), (22050, 440.0), (48000, 3000.0)])
def test_resample_keeps_frequency_and_length(rate: int, freq: float) -> None:
    x = sine(freq, rate, 1.0)
    y = resample(x, rate, 16000)
    assert abs(len(y) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    peak_hz = np.argmax(spectrum) * 16000 / len(y)
    assert peak_hz == pytest.approx(freq, abs=2.0)


def test_peak_normalisation_and_scale_back(tmp_path: Path) -> None:
    x = sine(300.0, 16000, 0.25, amp=0.2)
    path = tmp_path / "q.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    y, peak = load_audio_with_peak(path)
    assert peak == pytest.approx(0.2, rel=1e-3)
    np.testing.assert_allclose(y * peak, x, atol=1e-6)


def test_save_round_trip(tmp_path: Path) -> None:
    x = sine(500.0, 16000, 0.1)
    for name, subtype, tol in [
        ("a.wav", "PCM_16", 1 / 32768),
        ("b.wav", "FLOAT", 0),
        ("c.flac", "PCM_16", 1 / 32768),
    ]:
        p = save_audio(tmp_path / name, x, subtype=subtype)
        y, rate = sf.read(p, dtype="float32")
        assert rate == 16000
        np.testing.assert_allclose(y, x, atol=tol)
    assert not list(tmp_path.glob(".*tmp"))
    with pytest.raises(ValueError, match="unsupported output format"):
        save_audio(tmp_path / "x.mp4", x)
    with pytest.raises(ValueError, match="subtype"):
        save_audio(tmp_path / "x.wav", x, subtype="PCM_12")


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    good = tmp / "good.wav"
    sf.write(good, sine(440, 16000, 0.5), 16000, subtype="PCM_16")
    raw = good.read_bytes()
    cases: dict[str, tuple[Path, str]] = {}
    cases["missing"] = (tmp / "nope.wav", "not found")
    (tmp / "empty.wav").write_bytes(b"")
    cases["empty"] = (tmp / "empty.wav", "empty file")
    (tmp / "trunc.wav").write_bytes(raw[: len(raw) // 2])
    cases["truncated"] = (tmp / "trunc.wav", "truncated")
    (tmp / "text.wav").write_text("this is not audio\n")
    cases["text"] = (tmp / "text.wav", "not audio")
    (tmp / "random.flac").write_bytes(np.random.default_rng(0).bytes(4096))
    cases["random"] = (tmp / "random.flac", "not audio")
    sf.write(tmp / "silent.wav", np.zeros(1600, np.float32), 16000, subtype="PCM_16")
    cases["silent"] = (tmp / "silent.wav", "silent")
    bad = sine(440, 16000, 0.1)
    bad[10] = np.nan
    sf.write(tmp / "nan.wav", bad, 16000, subtype="FLOAT")
    cases["nan"] = (tmp / "nan.wav", "NaN or Inf")
    bad[10] = np.inf
    sf.write(tmp / "inf.wav", bad, 16000, subtype="FLOAT")
    cases["inf"] = (tmp / "inf.wav", "NaN or Inf")
    sf.write(tmp / "noframes.wav", np.zeros((0,), np.float32), 16000, subtype="PCM_16")
    cases["no frames"] = (tmp / "noframes.wav", "no samples")
    flac = tmp / "good.flac"
    sf.write(flac, sine(440, 16000, 0.5), 16000)
    (tmp / "trunc.flac").write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    cases["truncated flac"] = (tmp / "trunc.flac", "truncated")
    return cases


def test_each_bad_input_raises_typed_error_naming_file(tmp_path: Path) -> None:
    for case, (path, reason) in _bad_files(tmp_path).items():
        with pytest.raises(AudioError) as info:
            load_audio(path)
        assert str(path) in str(info.value), case
        assert reason in info.value.reason, (case, info.value.reason)


def test_path_with_spaces_and_non_ascii(tmp_path: Path) -> None:
    d = tmp_path / "dir with spaces" / "héllo wörld"
    d.mkdir(parents=True)
    p = d / "chien aboie ünï.flac"
    sf.write(p, sine(440, 44100, 0.2), 44100)
    assert len(load_audio(p)) == 3200
