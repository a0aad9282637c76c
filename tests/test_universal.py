"""Abdoli et al. universal perturbations: one v for all clips, any length, fit/save/load."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import synth_batch
from ssgan.attacks import UAPIterative, UAPPenalty
from ssgan.attacks.universal import ddn, fold_to, perturbation_db, tile_to
from ssgan.errors import CheckpointError

LENGTH = 1000


def test_tile_and_fold():
    v = torch.arange(4.0)
    assert torch.equal(tile_to(v, 10), torch.tensor([0.0, 1, 2, 3, 0, 1, 2, 3, 0, 1]))
    assert torch.equal(tile_to(v, 3), torch.tensor([0.0, 1, 2]))
    d = torch.tensor([1.0, 2, 3, 4, 5, 6])
    assert torch.equal(fold_to(d, 4), torch.tensor([3.0, 4, 3, 4]))
    assert torch.equal(fold_to(d[:2], 4), torch.tensor([1.0, 2, 0, 0]))


def test_ddn_finds_a_small_adversarial_delta(tiny_victim):
    x, y = synth_batch(4, 2000, seed=11)
    delta = ddn(tiny_victim, x, y, steps=30, init_norm=20.0)
    fooled = tiny_victim(x + delta).argmax(1) != y
    assert fooled.sum() >= 2
    assert float((x + delta).abs().max()) <= 1.0
    assert torch.equal(delta[~fooled], torch.zeros_like(delta[~fooled]))


@pytest.fixture(scope="module")
def fitted(tiny_victim):
    x, y = synth_batch(4, LENGTH, seed=12)
    g = torch.Generator().manual_seed(0)
    it = UAPIterative(xi=0.5, length=LENGTH, max_passes=1, ddn_steps=5, ddn_init_norm=10.0)
    pen = UAPPenalty(length=LENGTH, max_epochs=3, lr=0.01)
    return {
        "iterative": it.fit(tiny_victim, x, y, generator=g),
        "penalty": pen.fit(tiny_victim, x, y),
    }


@pytest.mark.parametrize("kind", ["iterative", "penalty"])
def test_one_v_for_clips_of_any_length(kind, fitted, tiny_victim):
    attack = fitted[kind]
    assert attack.v.shape == (LENGTH,) and float(attack.v.abs().max()) > 0
    for time in (300, LENGTH, 2500):
        x, y = synth_batch(3, time, seed=time)
        x = x * 0.3  # quiet clips: nothing clipped, so the formula is checked exactly
        x_adv = attack(tiny_victim, x, y)
        v = tile_to(attack.v, time)
        tanh_box = torch.tanh(torch.atanh(x * (1 - 1e-6)) + v)
        expected = x + v if kind == "iterative" else tanh_box
        torch.testing.assert_close(x_adv, expected.clamp(-1, 1), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["iterative", "penalty"])
def test_save_load_identical(kind, fitted, tiny_victim, tmp_path):
    attack = fitted[kind]
    attack.save(tmp_path)
    loaded = type(attack).load(tmp_path)
    assert loaded.config() == attack.config()
    x, y = synth_batch(2, 1500, seed=13)
    assert torch.equal(loaded(tiny_victim, x, y), attack(tiny_victim, x, y))
    other = UAPPenalty if kind == "iterative" else UAPIterative
    with pytest.raises(CheckpointError, match="holds attack"):
        other.load(tmp_path)


def test_iterative_v_stays_in_the_linf_ball(fitted):
    assert float(fitted["iterative"].v.abs().max()) <= 0.5


def test_penalty_db_term_has_a_gradient():
    """The term UAPPenalty minimises (perturbation_db) is 20 log10(rms(v)) with its gradient."""
    v = torch.full((8,), 0.1, requires_grad=True)
    term = perturbation_db(v)
    torch.testing.assert_close(term, torch.tensor(-20.0), atol=1e-4, rtol=0)
    term.backward()
    assert v.grad is not None
    torch.testing.assert_close(v.grad, torch.full((8,), 20 / math.log(10) / 0.1 / 8))


def test_unfitted_attack_refuses_to_run(tiny_victim):
    x, y = synth_batch(1, 500, seed=1)
    with pytest.raises(RuntimeError, match="not fitted"):
        UAPPenalty()(tiny_victim, x, y)


def test_fit_rejects_bad_clips(tiny_victim):
    with pytest.raises(ValueError, match="clip 0"):
        UAPPenalty(max_epochs=1).fit(tiny_victim, [torch.zeros(2, 10)], [0])
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        UAPPenalty(max_epochs=1).fit(tiny_victim, [torch.full((100,), 2.0)], [0])


@pytest.mark.parametrize("kind", ["iterative", "penalty"])
def test_targeted_universal_perturbation_reaches_its_class(kind, tiny_victim, tmp_path):
    x, y = synth_batch(12, LENGTH, seed=21)
    target = 2
    if kind == "iterative":
        uap = UAPIterative(xi=0.9, length=LENGTH, max_passes=3, ddn_steps=20, ddn_init_norm=10.0,
                           target_class=target)  # fmt: skip
    else:
        uap = UAPPenalty(length=LENGTH, max_epochs=40, lr=0.05, kappa=2.0, c=5.0,
                         target_class=target)  # fmt: skip
    uap.fit(tiny_victim, x, y, generator=torch.Generator().manual_seed(0))
    others = y != target
    t = torch.full_like(y[others], target)
    with torch.no_grad():
        clean_hits = int((tiny_victim(x[others]).argmax(1) == target).sum())
        adv = uap(tiny_victim, x[others], y[others], target=t)
        hits = int((tiny_victim(adv).argmax(1) == target).sum())
    assert hits >= clean_hits + len(t) // 2, (hits, clean_hits, len(t))
    with pytest.raises(ValueError, match="fitted for target class 2"):
        uap(
            tiny_victim,
            x[others][:1],
            y[others][:1],
            target=torch.tensor([3 if y[others][0] != 3 else 1]),
        )
    uap.save(tmp_path / "u")
    again = type(uap).load(tmp_path / "u")
    assert again.target_class == target and again.targeted_supported
    untargeted = UAPPenalty(length=LENGTH)
    assert not untargeted.targeted_supported
