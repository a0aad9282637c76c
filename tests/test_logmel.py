"""The log-mel CNN victim (ssgan.models.logmel): filterbank, spectrogram, shapes, gradients, and a
tiny training through ``ssgan.training.victim`` with the shared crop protocol and checkpoints."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import SR, synth_batch
from helpers import MemoryClips
from ssgan.cli import build_parser
from ssgan.models.logmel import LOGMEL_WINDOW, LogMelCNN, log_mel, mel_filterbank, mel_to_hz
from ssgan.models.registry import build_model
from ssgan.models.victim import load_victim, predict_clips
from ssgan.training.victim import VictimTrainConfig, get_profile, train_victim


def test_filterbank_triangles_peak_at_their_centres() -> None:
    fb = mel_filterbank(40, 1024, f_min_hz=20.0, f_max_hz=8000.0)
    assert fb.shape == (513, 40)
    assert bool((fb >= 0).all())
    freqs = torch.linspace(0, SR / 2, 513)
    peaks = freqs[fb.argmax(dim=0)]
    assert bool((peaks[1:] > peaks[:-1]).all())  # ordered low to high
    assert float(fb.max(dim=0).values.min()) > 0.5  # every filter sees at least one bin
    assert float(fb[freqs < 20.0].sum()) == 0.0  # nothing below f_min
    # Centres follow the mel scale: each peak lies within one FFT bin of its mel point.
    lo, hi = 2595 * math.log10(1 + 20 / 700), 2595 * math.log10(1 + 8000 / 700)
    centres = mel_to_hz(torch.linspace(lo, hi, 42))[1:-1]
    assert float((peaks - centres).abs().max()) <= SR / 1024
    with pytest.raises(ValueError, match="f_min_hz < f_max_hz"):
        mel_filterbank(40, 1024, f_min_hz=9000.0)


def test_a_sine_lights_the_mel_band_of_its_frequency() -> None:
    t = torch.arange(8000) / SR
    fb = mel_filterbank(64, 1024, f_min_hz=20.0, f_max_hz=8000.0)
    for f_hz in (300.0, 2500.0):
        x = torch.sin(2 * math.pi * f_hz * t)[None]
        spec = log_mel(x, fb, n_fft=1024, hop_length=256, window=torch.hann_window(1024))
        assert spec.shape == (1, 64, 8000 // 256 + 1)
        band = int(spec[0].mean(dim=1).argmax())
        # The band is one of the (at most two) triangles that overlap at the sine's FFT bin.
        overlapping = fb[round(f_hz / (SR / 1024))].nonzero().flatten().tolist()
        assert band in overlapping and len(overlapping) <= 2


def test_log_mel_gradcheck_float64() -> None:
    fb = mel_filterbank(4, 16).double()
    x = torch.randn(1, 48, dtype=torch.float64, requires_grad=True)
    window = torch.hann_window(16, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda v: log_mel(v, fb, n_fft=16, hop_length=8, window=window), (x,)
    )


def test_shapes_errors_and_input_gradients() -> None:
    net = LogMelCNN(5).eval()
    x, _ = synth_batch(3, LOGMEL_WINDOW, seed=1)
    assert net.spectrogram(x).shape == (3, 1, 64, LOGMEL_WINDOW // 256 + 1)
    x = x.requires_grad_(True)
    logits = net(x)
    assert logits.shape == (3, 5)
    (grad,) = torch.autograd.grad(logits[:, 0].sum(), x)
    assert bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(net(x.detach()).float()).all()  # the STFT stays float32
    with pytest.raises(ValueError, match="expects \\(batch, 24014\\)"):
        net(torch.zeros(1, 1000))
    with pytest.raises(ValueError, match="window=1000"):
        LogMelCNN(5, window=1000)
    assert isinstance(build_model("logmel", 4, fc_width=16), LogMelCNN)
    assert get_profile("cpu", "logmel").fc_width == 512


def test_cli_accepts_the_model_name() -> None:
    args = build_parser().parse_args(
        ["train", "victim", "--model", "logmel", "--dataset", "esc10", "--root", "x", "--out", "o"]
    )
    assert args.model == "logmel"


@pytest.mark.slow
def test_tiny_training_learns_and_reloads(tmp_path) -> None:
    """The synthetic sines differ only in frequency; 60 SGD steps on padded random crops take
    the log-mel CNN well above chance (measured: 100 % on fresh clips after 60 steps)."""
    config = VictimTrainConfig(model="logmel", window=4000, fc_width=32, epochs=10, batch_size=8,
                               lr=0.01, n_crops=2, seed=0, lr_milestones=(0.9,), eval_every=5,
                               checkpoint_every=10)  # fmt: skip
    train = MemoryClips(*synth_batch(48, 6000, seed=20))
    test = MemoryClips(*synth_batch(16, 6000, seed=21))
    summary = train_victim(config, train, test, tmp_path / "run", progress=False)
    lines = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").open()]
    assert lines[-1]["loss"] < lines[0]["loss"]
    assert summary["best_accuracy"] >= 0.5  # chance is 0.25
    clf, meta = load_victim(tmp_path / "run", checkpoint="best")
    assert meta["model"]["name"] == "logmel" and clf.window == 4000
    pred, _ = predict_clips(clf, test.waveforms())
    assert float((pred == test.y).float().mean()) == pytest.approx(meta["accuracy"])
