"""The time-frequency generator: a complex mask on the segment's own STFT."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import synth_batch, train_tiny_snr_gan
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.metrics import snr_db
from ssgan.models.generators import build_generator
from ssgan.models.generators.base import Generator
from ssgan.models.generators.spec import GeneratorSpec
from ssgan.models.generators.spectral import SpectralMask
from ssgan.training.gan import GANTrainConfig


def _spectral(seed: int = 0, **kwargs) -> Generator:
    torch.manual_seed(seed)
    return build_generator(GeneratorSpec(output="snr", spectral=True, channels=2, **kwargs))


@pytest.mark.parametrize("time", [1, 100, 257, 4000, 25_601])
def test_any_length_exact_snr_and_every_weight_gets_a_gradient(time: int) -> None:
    G = _spectral(seed=1)
    torch.manual_seed(2)
    x = 0.1 * torch.randn(3, time)
    delta = G(x)
    assert delta.shape == x.shape and delta.dtype == torch.float32
    torch.testing.assert_close(
        snr_db(x, x + delta), torch.full((3,), 30.0, dtype=torch.float64), atol=1e-3, rtol=0
    )
    (delta * torch.randn_like(delta)).sum().backward()
    for name, p in G.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


def test_a_louder_copy_of_x_gets_the_same_perturbation_louder_by_as_much() -> None:
    G = _spectral(seed=3)
    x, _ = synth_batch(2, 8000, seed=4)
    with torch.no_grad():
        torch.testing.assert_close(G(4.0 * x), 4.0 * G(x), atol=1e-6, rtol=1e-4)


def test_the_perturbation_lies_under_the_signals_own_spectrum() -> None:
    # A 1 kHz tone: a mask on its STFT can only put energy where the tone has it.
    t = torch.arange(16_000) / 16_000
    x = 0.3 * torch.sin(2 * math.pi * 1000.0 * t)[None]
    with torch.no_grad():
        delta = _spectral(seed=5)(x)[0, 2000:-2000]  # away from the edges' window effects
    power = torch.fft.rfft(delta).abs().square()
    freqs = torch.fft.rfftfreq(delta.numel(), 1 / 16_000)
    near = power[(freqs - 1000.0).abs() < 100.0].sum()
    assert float(near / power.sum()) > 0.99


def test_receptive_field_is_two_to_the_layers_plus_one_frames_plus_one() -> None:
    # One frame's input changes only the masks of frames within the receptive field.
    torch.manual_seed(6)
    mask = SpectralMask(width=4, layers=2)
    power = torch.zeros(1, 257, 40, requires_grad=True)
    out = mask.out(mask.blocks(torch.relu(mask.inp(power))))
    out[0, :, 20].sum().backward()
    assert power.grad is not None
    reached = (power.grad[0].abs().sum(0) > 0).nonzero().flatten()
    assert int(reached.max() - reached.min() + 1) == 2 ** (2 + 1) + 1


def test_spectral_generator_refuses_options_it_does_not_combine_with() -> None:
    for kwargs in ({"output": "tanh"}, {"front": (40, 8, 1, 40, 8, 1, 160)},
                   {"grad_input": True}, {"context": True}, {"num_classes": 3},
                   {"pattern_samples": 100}, {"loudness_range_db": 5.0}, {"n_blocks": 0}):  # fmt: skip
        args = {"output": "snr", "spectral": True, **kwargs}
        with pytest.raises(ValueError, match="spectral=True needs"):
            build_generator(GeneratorSpec(**args))
    with pytest.raises(ValueError, match="not class-conditional"):
        _spectral()(torch.zeros(1, 1000), target=torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="spectral=True needs"):
        GANTrainConfig(g_spectral=True)  # the paper's tanh output


def test_training_a_spectral_generator_and_rebuilding_it_from_the_run(tmp_path) -> None:
    x = train_tiny_snr_gan(tmp_path / "run", seed=7, data_seed=8, g_spectral=True)
    attack = SSGANAttack.from_run(tmp_path / "run", checkpoint="last")
    assert attack.spectral and attack.generator.spectral_mask is not None
    clip = x[4:5]
    with torch.no_grad():
        delta = attack.perturbation(clip)
    assert delta.shape == clip.shape and float(delta.abs().sum()) > 0
    again = SSGANAttack.from_generator(attack.generator, segment_seconds=0.05)
    assert again.spectral
