"""The minimum-norm search (DDN) on its own and as SSGAN's attack-time refinement.

Behaviour checked on the tiny synthetic victim: each clip's result is the quietest fooling
perturbation the search saw (never louder than its start when the start already fools, never
louder than the floor), the search finds quieter examples than one loud gradient step, and
``SSGANAttack(refine_steps=k)`` fools at least the clips its generator fooled, more quietly.
"""

from __future__ import annotations

import pytest
import torch

from conftest import synth_batch
from ssgan.attacks import DDN, FGSM, make_attack
from ssgan.attacks.ddn import refine_min_norm
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.metrics import snr_db

LENGTH = 4000


@pytest.fixture(scope="module")
def clean():
    return synth_batch(8, LENGTH, seed=11)


def _fooled(model, x_adv, y):
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


def test_ddn_is_registered_and_validates_its_options():
    assert isinstance(make_attack("ddn", ["steps=3"]), DDN)
    for bad in (["gamma=1.5"], ["steps=0"], ["loss=hinge"], ["step_scale=0"]):
        with pytest.raises(ValueError):
            make_attack("ddn", bad)


def test_ddn_respects_its_loudness_floor(tiny_victim, clean):
    x, y = clean
    x_adv = DDN(steps=10, init_snr_db=0.0, min_snr_db=5.0)(tiny_victim, x, y)
    assert (snr_db(x, x_adv) >= 5.0 - 1e-3).all()


def test_ddn_finds_quieter_examples_than_its_loud_first_step(tiny_victim, clean):
    x, y = clean
    first = refine_min_norm(
        tiny_victim, x, y, None, torch.zeros_like(x), steps=1, init_snr_db=-10.0, min_snr_db=-20.0
    )
    first_rate = _fooled(tiny_victim, x + first, y).float().mean()
    x_adv = DDN(steps=40, init_snr_db=-10.0, min_snr_db=-20.0, gamma=0.2)(tiny_victim, x, y)
    fooled = _fooled(tiny_victim, x_adv, y)
    assert fooled.float().mean() >= max(0.75, float(first_rate))
    # The search walked each fooled clip well below the loud start (-10 dB).
    assert snr_db(x, x_adv)[fooled].mean() > -10.0 + 3.0


def test_refine_never_returns_a_louder_fooling_example_than_its_start(tiny_victim, clean):
    x, y = clean
    grad_step = FGSM(eps=0.5)(tiny_victim, x, y) - x  # loud, fools most clips
    start_fools = _fooled(tiny_victim, x + grad_step, y)
    assert start_fools.any()
    out = refine_min_norm(tiny_victim, x, y, None, grad_step, steps=5, min_snr_db=-30.0)
    norms_in = grad_step.norm(dim=1)
    norms_out = out.norm(dim=1)
    assert (norms_out[start_fools] <= norms_in[start_fools] * (1 + 1e-5)).all()
    assert _fooled(tiny_victim, (x + out).clamp(-1, 1), y)[start_fools].all()


def test_targeted_search_reaches_the_target(tiny_victim, clean):
    x, y = clean
    target = (y + 1) % 4
    x_adv = DDN(steps=30, init_snr_db=-10.0, min_snr_db=-20.0)(tiny_victim, x, y, target=target)
    with torch.no_grad():
        hit = tiny_victim(x_adv).argmax(1) == target
    assert hit.float().mean() >= 0.75


@pytest.mark.slow
def test_ssgan_refine_fools_more_quietly_than_its_generator(tiny_victim, clean):
    x, y = clean
    plain = SSGANAttack(segment_seconds=0.125, snr_db=-5.0, epochs=2)
    plain.fit(tiny_victim, x, y, generator=torch.Generator().manual_seed(0))
    refined = SSGANAttack(
        segment_seconds=0.125, snr_db=-5.0, refine_steps=20, search_min_snr_db=-20
    )
    refined.generator = plain.generator
    refined._fitted = True
    assert refined.queries_victim and not plain.queries_victim
    x_g = plain(tiny_victim, x, y)
    x_r = refined(tiny_victim, x, y)
    fooled_g, fooled_r = _fooled(tiny_victim, x_g, y), _fooled(tiny_victim, x_r, y)
    assert fooled_r[fooled_g].all()
    assert (snr_db(x, x_r)[fooled_g] >= snr_db(x, x_g)[fooled_g] - 1e-3).all()
    assert snr_db(x, x_r)[fooled_g].mean() > snr_db(x, x_g)[fooled_g].mean() + 1.0


def test_ddn_quietest_keeps_every_fooled_clip_and_is_never_louder(tiny_victim, clean):
    x, y = clean
    kwargs = {"steps": 3, "init_snr_db": 0.0, "min_snr_db": -20.0}
    plain = DDN(**kwargs)(tiny_victim, x, y)
    quiet = DDN(**kwargs, quietest=True)(tiny_victim, x, y)
    fooled = _fooled(tiny_victim, plain, y)
    assert fooled.any()
    assert _fooled(tiny_victim, quiet, y)[fooled].all()
    assert (snr_db(x, quiet)[fooled] >= snr_db(x, plain)[fooled] - 1e-3).all()


def test_quietest_scale_leaves_a_zero_perturbation_zero(tiny_victim, clean):
    """A clip the attack before gave up on (zero delta) has no direction to rescale: it stays
    the clean clip, never NaN (its norm ratio overflows float32; inf * 0 is NaN)."""
    from ssgan.attacks.ddn import quietest_scale

    x, y = clean
    delta = torch.zeros_like(x)
    delta[1] = 0.01 * torch.sign(x[1] + 1e-6)
    out = quietest_scale(tiny_victim, x, y, None, delta)
    assert torch.isfinite(out).all()
    assert torch.equal(out[0], torch.zeros_like(out[0]))
    assert out[1].abs().sum() > 0
