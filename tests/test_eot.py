"""EOT in the SSGAN G step (GANTrainConfig.eot) and in PGD (PGD(eot=...))."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from conftest import TinyVictim, synth_batch
from helpers import TINY_GAN
from ssgan.attacks import PGD, make_attack
from ssgan.config import apply_overrides, from_dict, to_dict
from ssgan.training.gan import GANTrainConfig, g_step, make_state
from ssgan.transforms import eot_for, parse_transform

ADV_ONLY = dataclasses.replace(TINY_GAN, gamma=0.0, beta=0.0, alpha=1.0)  # only L_adv trains G


class Spy(nn.Module):
    """A victim that remembers what it heard."""

    def __init__(self, victim: nn.Module) -> None:
        super().__init__()
        self.victim = victim
        self.heard: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.heard.append(x.detach().clone())
        return self.victim(x)


def _crops(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return synth_batch(4, ADV_ONLY.segment_samples, seed=seed)


def test_g_step_scores_the_transformed_clip() -> None:
    cfg = dataclasses.replace(ADV_ONLY, eot=("gain:min_db=-20,max_db=-20",))
    spy = Spy(TinyVictim())
    x, y = _crops()
    g_step(make_state(cfg), x, y, spy)
    (heard,) = spy.heard
    ratio = heard.pow(2).mean().sqrt() / x.pow(2).mean().sqrt()
    assert ratio == pytest.approx(0.1, rel=0.05)  # -20 dB: the victim heard the channel's output
    spy.heard.clear()
    g_step(make_state(ADV_ONLY), x, y, spy)
    assert spy.heard[0].pow(2).mean().sqrt() / x.pow(2).mean().sqrt() == pytest.approx(1, rel=0.05)


def test_gradients_reach_g_through_the_mp3_straight_through_path() -> None:
    """MP3 has no gradient of its own; with only L_adv, G learns only if the straight-through
    estimator carries the victim's gradient back through the codec."""
    cfg = dataclasses.replace(ADV_ONLY, eot=("mp3:kbps=64",))
    state = make_state(cfg)
    before = {k: v.clone() for k, v in state.G.state_dict().items()}
    x, y = _crops(1)
    out = g_step(state, x, y, TinyVictim())
    grads = [p.grad for p in state.G.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0
    assert any(not torch.equal(before[k], v) for k, v in state.G.state_dict().items())
    assert out["g/loss"] == out["g/adv"]  # alpha = 1, no other term


def test_eot_from_the_command_line_and_through_a_checkpoint_config() -> None:
    cfg = apply_overrides(TINY_GAN, ["eot=reverb:rt60_s=0.1,drr_db=3,mp3:kbps=64", "eot_prob=0.5"])
    assert cfg.eot == ("reverb:rt60_s=0.1", "drr_db=3", "mp3:kbps=64")  # comma-split by --set
    eot = eot_for(cfg.eot, cfg.eot_prob)
    assert eot.specs() == ["reverb:rt60_s=0.1,drr_db=3", "mp3:kbps=64"] and eot.prob == 0.5
    assert from_dict(GANTrainConfig, to_dict(cfg)) == cfg
    with pytest.raises(ValueError, match="unknown transform 'wobble'"):
        dataclasses.replace(TINY_GAN, eot=("wobble",))
    with pytest.raises(ValueError, match="prob=2"):
        dataclasses.replace(TINY_GAN, eot=("mp3",), eot_prob=2.0)


class Through(nn.Module):
    """``victim(T(x))`` with T deterministic: what PGD-EOT should be attacking."""

    def __init__(self, victim: nn.Module, spec: str) -> None:
        super().__init__()
        self.victim, self.t = victim, parse_transform(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.victim(self.t(x, straight_through=True))


@pytest.mark.parametrize("spec", ["gain:min_db=-6,max_db=-6", "mp3:kbps=64"])
def test_pgd_eot_ascends_the_loss_of_the_transformed_clip(tiny_victim, spec: str) -> None:
    x, y = synth_batch(4, 3000, seed=3)
    g = torch.Generator
    eot = PGD(eps=0.3, steps=3, eot=(spec,))(tiny_victim, x, y, generator=g().manual_seed(0))
    ref = PGD(eps=0.3, steps=3)(Through(tiny_victim, spec), x, y, generator=g().manual_seed(0))
    plain = PGD(eps=0.3, steps=3)(tiny_victim, x, y, generator=g().manual_seed(0))
    torch.testing.assert_close(eot, ref, rtol=0, atol=1e-6)
    assert not torch.allclose(eot, plain)


def test_pgd_eot_settings() -> None:
    attack = make_attack("pgd", ["eot=reverb:rt60_s=0.1,drr_db=3,mp3", "eot_samples=2"])
    assert isinstance(attack, PGD)
    assert attack.config()["eot"] == ("reverb:rt60_s=0.1,drr_db=3", "mp3:kbps=128")
    assert attack.config()["eot_samples"] == 2
    assert PGD().config()["eot"] == ()
    with pytest.raises(ValueError, match="eot_samples=0"):
        PGD(eot=("mp3",), eot_samples=0)
    with pytest.raises(ValueError, match="unknown transform"):
        PGD(eot=("wobble",))
