"""FGSM, PGD, C&W and the registry: exact formulas, projections, validation, conversions."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import synth_batch
from ssgan.attacks import ATTACKS, CW, FGSM, PGD, UAPIterative, UAPPenalty, make_attack
from ssgan.attacks.budget import Budget, project
from ssgan.attacks.objective import objective
from ssgan.losses import logit_margin
from ssgan.metrics import snr_in


def test_fgsm_is_one_signed_gradient_step(tiny_victim):
    x, y = synth_batch(4, 2000, seed=3)
    x = x * 0.5  # stay away from the box so the step is not clipped
    x_var = x.clone().requires_grad_(True)
    tiny_victim(x_var)  # frozen victim: gradients flow to the input only
    loss = torch.nn.functional.cross_entropy(tiny_victim(x_var), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x_var)
    x_adv = FGSM(eps=0.01)(tiny_victim, x, y)
    torch.testing.assert_close(x_adv, x + 0.01 * grad.sign(), rtol=0, atol=1e-7)


def test_project_is_exact():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(3, 100)
    x_adv = torch.randn(3, 100, generator=g)
    linf = project(x, x_adv, Budget("linf", 0.1))
    assert bool(((linf - x).abs() <= torch.tensor(0.1)).all())  # 0.1 as float32, exactly
    l2 = project(x, x_adv, Budget("l2", 0.5))
    norms = (l2 - x).norm(dim=1)
    assert bool((norms <= 0.5).all()) and bool((norms > 0.5 * (1 - 1e-5)).all())
    small = x + 1e-3
    assert torch.equal(project(x, small, Budget("l2", 0.5)), small)  # inside: untouched
    # Inside the ball, bit-identical even where x + (x_adv - x) would round (L2 rows, Linf samples).
    x = 0.05 * torch.randn(3, 100, generator=g)
    near = 1e-6 * torch.randn(3, 100, generator=g)  # ~silence: x_adv - x is ~-x, rounded
    assert not torch.equal(x + (near - x), near)
    assert torch.equal(project(x, near, Budget("l2", 1.0)), near)
    assert torch.equal(project(x, near, Budget("linf", 0.25)), near)
    far = x + 3 * (near - x)  # rows outside the ball, one inside: only those change
    mixed = torch.cat([near[:2], far[2:]])
    out = project(x, mixed, Budget("l2", 1.0))
    assert torch.equal(out[:2], near[:2]) and float((out[2] - x[2]).norm()) <= 1.0


def test_margin_and_objective():
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    torch.testing.assert_close(
        logit_margin(logits, torch.tensor([0, 2])), torch.tensor([1.0, -4.0])
    )
    y = torch.tensor([0, 1])
    assert torch.equal(objective(logits, y, None, "margin"), -logit_margin(logits, y))
    t = torch.tensor([2, 2])
    assert torch.equal(objective(logits, y, t, "margin"), logit_margin(logits, t))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_random_start_follows_the_generator(tiny_victim, norm):
    x, y = synth_batch(2, 2000, seed=4)
    attack = PGD(norm=norm, eps=0.05, steps=1)
    a = attack(tiny_victim, x, y, generator=torch.Generator().manual_seed(1))
    b = attack(tiny_victim, x, y, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(a, b)
    fixed = PGD(norm=norm, eps=0.05, steps=1, random_start=False)
    c = fixed(tiny_victim, x, y, generator=torch.Generator().manual_seed(1))
    d = fixed(tiny_victim, x, y, generator=torch.Generator().manual_seed(2))
    assert torch.equal(c, d)


def test_cw_returns_unfooled_clips_unchanged(tiny_victim):
    x, y = synth_batch(2, 2000, seed=5)
    # One tiny step cannot fool the victim: the clean clip comes back, not a failed iterate.
    x_adv = CW(steps=1, binary_search_steps=1, lr=1e-4)(tiny_victim, x, y)
    assert torch.equal(x_adv, x)


def test_cw_with_a_budget_is_its_minimum_norm_result_read_at_the_budget(tiny_victim):
    x, y = synth_batch(4, 2000, seed=5)
    settings = {"c": 100.0, "lr": 0.1, "steps": 30, "binary_search_steps": 1}
    free = CW(**settings)(tiny_victim, x, y)
    snr_free = snr_in("box", x, free)
    fooled = tiny_victim(free).argmax(1) != y
    assert bool(fooled.any()) and bool(torch.isfinite(snr_free[fooled]).all())
    # A budget every result is already inside changes nothing.
    loose = float(snr_free.min()) - 1.0
    assert torch.equal(CW(**settings, snr_db=loose, snr_convention="box")(tiny_victim, x, y), free)
    # A tighter one scales the louder results down to exactly the budget, the others untouched.
    loudest, second = sorted(snr_free.tolist())[:2]
    tight = (loudest + second) / 2 if math.isfinite(second) else loudest + 1.0
    capped = CW(**settings, snr_db=tight, snr_convention="box")(tiny_victim, x, y)
    snr_capped = snr_in("box", x, capped)
    louder = snr_free < tight
    assert bool(louder.any())
    torch.testing.assert_close(
        snr_capped[louder], torch.full_like(snr_capped[louder], tight), atol=1e-3, rtol=0
    )
    assert torch.equal(capped[~louder], free[~louder])
    budget = Budget("l2", 0.0, snr_db=tight, snr_convention="box")
    assert torch.equal(capped[louder], project(x, free, budget)[louder])


def test_cw_refuses_a_budget_out_of_range():
    with pytest.raises(ValueError, match="snr_db"):
        CW(snr_db=500.0)
    with pytest.raises(ValueError, match="snr_convention"):
        CW(snr_db=30.0, snr_convention="peak")


@pytest.mark.parametrize(
    ("cls", "kwargs", "named"),
    [
        (FGSM, {"eps": 0.0}, "eps"),
        (FGSM, {"eps": -1.0}, "eps"),
        (FGSM, {"loss": "hinge"}, "loss"),
        (PGD, {"norm": "l1"}, "norm"),
        (PGD, {"steps": 0}, "steps"),
        (PGD, {"step_size": float("nan")}, "step_size"),
        (PGD, {"eps": float("inf")}, "eps"),
        (PGD, {"steps": 2.5}, "steps"),
        (CW, {"kappa": -1.0}, "kappa"),
        (CW, {"binary_search_steps": 0}, "binary_search_steps"),
        (CW, {"lr": 0}, "lr"),
        (UAPIterative, {"xi": 0.0}, "xi"),
        (UAPIterative, {"delta": 1.0}, "delta"),
        (UAPIterative, {"ddn_gamma": 1.5}, "ddn_gamma"),
        (UAPIterative, {"length": 0}, "length"),
        (UAPPenalty, {"max_epochs": 0}, "max_epochs"),
        (UAPPenalty, {"c": -0.2}, "c"),
    ],
)
def test_invalid_hyperparameters_name_the_value(cls, kwargs, named):
    with pytest.raises(ValueError, match=named):
        cls(**kwargs)


def test_hyperparameters_are_keyword_only():
    with pytest.raises(TypeError):
        FGSM(0.1)  # type: ignore[misc]


def test_make_attack_converts_by_annotation():
    attack = make_attack("pgd", ["norm=l2", "eps=0.3", "steps=7", "random-start=false"])
    assert isinstance(attack, PGD)
    assert attack.config() == {
        "norm": "l2",
        "eps": 0.3,
        "snr_db": None,
        "snr_convention": "true",
        "steps": 7,
        "step_size": None,
        "random_start": False,
        "loss": "ce",
        "eot": (),
        "eot_samples": 1,
    }
    assert make_attack("uap-penalty", {"length": "none"}).config()["length"] is None
    assert make_attack("fgsm", {"eps": "0.01"}).config()["eps"] == 0.01


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("nope", [], "unknown attack 'nope'"),
        ("pgd", ["epsilon=1"], "unknown setting 'epsilon'"),
        ("pgd", ["steps=many"], "steps='many'"),
        ("pgd", ["norm=l1"], "norm='l1'"),
        ("pgd", ["steps=0"], "steps=0"),
        ("fgsm", ["eps"], "key=value"),
    ],
)
def test_make_attack_errors_name_the_problem(name, overrides, message):
    with pytest.raises(ValueError, match=message):
        make_attack(name, overrides)


def test_ssgan_is_registered_lazily():
    assert ATTACKS["ssgan"] == "ssgan.attacks.ssgan:SSGANAttack"
    assert set(ATTACKS) == {
        "noise",
        "fgsm",
        "fgm",
        "pgd",
        "cw",
        "ddn",
        "uap-iterative",
        "uap-penalty",
        "ssgan",
    }
