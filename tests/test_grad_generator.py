"""The gradient-informed generator: G reads the victim's input gradient, starts as the L2 fast
gradient method at its SNR, trains through the G step, and survives a save / load."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from conftest import synth_batch
from helpers import SNR_CONFIG
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.gan_validation import validate_generator
from ssgan.losses import input_gradient
from ssgan.metrics import snr_db
from ssgan.models.generators import build_generator
from ssgan.models.generators.spec import GeneratorSpec
from ssgan.models.victim import ClipClassifier
from ssgan.training.gan import PROFILES, g_step, make_state, train_gan

CONFIG = dataclasses.replace(SNR_CONFIG, g_grad=True)  # the recipe tests' tiny setup


def _victim(seed: int = 0) -> ClipClassifier:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(400, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    return ClipClassifier(net, window=400, n_crops=3).eval()


def test_untrained_gradient_generator_is_the_l2_fast_gradient_method() -> None:
    G = build_generator(
        GeneratorSpec(channels=4, n_blocks=1, output="snr", snr_db=30.0, grad_input=True)
    )
    attack = SSGANAttack.from_generator(G.eval(), segment_seconds=800 / 16000)
    victim = _victim()
    x, y = synth_batch(3, 800, seed=4)
    y = y % 3
    x_adv = attack(victim, x, y)
    grad = input_gradient(victim, x, y)
    delta = attack.perturbation(x, grad)
    assert torch.allclose(x_adv, (x + delta).clamp(-1, 1))
    cos = torch.cosine_similarity(delta.double(), grad.double(), dim=1)
    assert bool((cos > 0.9999).all()), cos
    assert torch.allclose(snr_db(x, x_adv).float(), torch.full((3,), 30.0), atol=0.05)
    assert attack.queries_victim and attack.config()["grad_input"] is True


def test_gradient_generator_refuses_a_missing_or_unwanted_gradient() -> None:
    G = build_generator(GeneratorSpec(channels=2, n_blocks=0, output="snr", grad_input=True))
    x = torch.randn(2, 500)
    with pytest.raises(ValueError, match="gradient"):
        G(x)
    with pytest.raises(ValueError, match="grad_input"):
        build_generator(GeneratorSpec(channels=2, n_blocks=0, output="snr"))(x, torch.randn(2, 500))
    with pytest.raises(ValueError, match="does not match"):
        G(x, torch.randn(2, 499))
    with pytest.raises(ValueError, match="output='snr'"):
        build_generator(GeneratorSpec(grad_input=True))
    attack = SSGANAttack.from_generator(G, segment_seconds=0.01)
    with pytest.raises(ValueError, match="input gradient"):
        attack.perturbation(x)


def test_g_step_trains_the_gradient_generator_beyond_its_start() -> None:
    victim = _victim(1)
    state = make_state(CONFIG)
    assert state.G.grad_scale is not None
    last = state.G.net[-1].weight.detach().clone()
    assert float(last.abs().sum()) == 0.0  # starts as pure gradient direction
    x, y = synth_batch(4, 800, seed=5)
    for _ in range(2):
        out = g_step(state, x, y % 3, victim)
    assert torch.isfinite(torch.tensor(out["g/loss"]))
    assert float(state.G.net[-1].weight.detach().abs().sum()) > 0.0
    assert float(state.G.net[0].weight.grad.abs().sum()) > 0.0  # type: ignore[union-attr]


def test_gradient_generator_run_reloads_with_its_gradient_input(tmp_path: Path) -> None:
    victim = _victim(2)
    clips = [synth_batch(1, 1600, seed=s)[0][0] for s in range(6)]
    labels = [s % 3 for s in range(6)]
    cfg = dataclasses.replace(CONFIG, epochs=1, steps_per_epoch=2, val_clips=2)
    train_gan(
        cfg, victim, (clips, labels), (clips[:2], labels[:2]), tmp_path / "run", progress=False,
        validate=validate_generator,
    )  # fmt: skip
    attack = SSGANAttack.from_run(tmp_path / "run", checkpoint="last")
    assert attack.generator.grad_input
    x = torch.stack(clips[:2])
    x_adv = attack(victim, x, torch.tensor(labels[:2]))
    assert torch.allclose(snr_db(x, x_adv).float(), torch.full((2,), 30.0), atol=0.1)


def test_cpu_grad_profile_is_the_recipe_with_the_gradient_on_the_clip_victim() -> None:
    cfg = PROFILES["cpu-grad"]
    assert cfg.g_grad and cfg.victim_view == "clip" and cfg.victim_crops == 2
    assert (
        dataclasses.replace(cfg, g_grad=False, victim_view="windows", victim_crops=None)
        == (PROFILES["cpu"])
    )


def test_d_and_g_steps_share_one_victim_gradient(monkeypatch) -> None:
    import ssgan.training.gan as gan
    import ssgan.training.gan_steps as gan_steps

    calls = []
    real = gan_steps.input_gradient

    def counting(model, x, y):  # type: ignore[no-untyped-def]
        calls.append(x.shape[0])
        return real(model, x, y)

    monkeypatch.setattr(gan_steps, "input_gradient", counting)
    victim = _victim(3)
    clips = [synth_batch(1, 1600, seed=s)[0][0] for s in range(4)]
    cfg = dataclasses.replace(CONFIG, gamma=1.0, epochs=1, steps_per_epoch=2, val_clips=0)
    gan.fit_gan(cfg, victim, (clips, [s % 3 for s in range(4)]), progress=False)
    assert calls == [4, 4]  # one gradient per step, though D and G both perturb
