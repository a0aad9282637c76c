"""A generator whose output is band-limited (``lowpass_hz``): all of its budget in the band a
channel keeps."""

from __future__ import annotations

import pytest
import torch

from conftest import train_tiny_snr_gan
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.metrics import snr_db
from ssgan.models.envnet import EnvNet
from ssgan.models.generators import build_generator
from ssgan.models.generators.base import low_pass
from ssgan.models.generators.spec import GeneratorSpec
from ssgan.training.gan import GANTrainConfig
from ssgan.transforms.functional import resample_roundtrip


def _share_above(delta: torch.Tensor, hz: float) -> float:
    power = torch.fft.rfft(delta.detach().double(), dim=-1).abs().square()
    freqs = torch.fft.rfftfreq(delta.shape[-1], 1 / 16_000)
    return float(power[..., freqs > hz].sum() / power.sum())


@pytest.mark.parametrize("kwargs", [{}, {"spectral": True}, {"front": (40, 8, 1, 40, 8, 1, 160)}])
def test_output_has_no_energy_above_the_cutoff_and_keeps_the_exact_snr(kwargs) -> None:
    torch.manual_seed(0)
    G = build_generator(GeneratorSpec(output="snr", channels=2, lowpass_hz=3800, **kwargs))
    if kwargs.get("front"):
        G.load_front(EnvNet(4, fc_width=16))
    x = 0.1 * torch.randn(3, 8000)
    delta = G(x)
    assert delta.shape == x.shape
    assert _share_above(delta, 3800) < 1e-10
    torch.testing.assert_close(
        snr_db(x, x + delta), torch.full((3,), 30.0, dtype=torch.float64), atol=1e-3, rtol=0
    )
    delta.square().sum().backward()  # the mask passes gradients to G's weights
    assert all(p.grad is not None for p in G.parameters() if p.requires_grad)


def test_a_band_limited_perturbation_survives_resampling_to_8_khz() -> None:
    # What the option is for: resampling through 8 kHz removes (almost) nothing of it, and
    # more of the same generator's output without the cutoff.
    torch.manual_seed(1)
    x = 0.1 * torch.randn(2, 16_000)
    kept = {}
    for hz in (0.0, 3800.0):
        torch.manual_seed(2)
        delta = build_generator(GeneratorSpec(output="snr", lowpass_hz=hz))(x).detach()
        through = resample_roundtrip(delta.clamp(-1, 1), rate_hz=8000)
        kept[hz] = float(through.norm() / delta.norm())
    assert kept[3800.0] > 0.9999 and kept[0.0] < kept[3800.0] - 0.005


def test_bad_cutoffs_and_outputs_are_refused() -> None:
    with pytest.raises(ValueError, match="only with output='snr'"):
        build_generator(GeneratorSpec(output="tanh", lowpass_hz=3800))
    for hz in (-1.0, 8000.0, 9000.0):
        with pytest.raises(ValueError, match=r"cutoff_hz|lowpass_hz"):
            build_generator(GeneratorSpec(output="snr", lowpass_hz=hz))
    with pytest.raises(ValueError, match="only with output='snr'"):
        GANTrainConfig(g_lowpass_hz=3800)
    for hz in (-1.0, 8000.0):
        with pytest.raises(ValueError, match="lowpass_hz must be in"):
            GANTrainConfig(g_output="snr", g_lowpass_hz=hz)
    with pytest.raises(ValueError, match="cutoff_hz"):
        low_pass(torch.zeros(1, 10), 0.0)


def test_training_and_rebuilding_a_low_passed_generator_from_its_run(tmp_path) -> None:
    x = train_tiny_snr_gan(tmp_path / "run", seed=3, data_seed=4, g_lowpass_hz=2000.0)
    attack = SSGANAttack.from_run(tmp_path / "run", checkpoint="last")
    assert attack.lowpass_hz == 2000.0 and attack.generator.lowpass_hz == 2000.0
    with torch.no_grad():
        delta = attack.perturbation(x[4:5])
    # one 800-sample segment per 0.05 s, each band-limited on its own: the seams add a little
    assert delta.shape == (1, 4000) and _share_above(delta, 2500) < 0.05
    assert SSGANAttack.from_generator(attack.generator, segment_seconds=0.05).lowpass_hz == 2000.0
