"""SSGAN losses against hand-computed values (ssgan.losses)."""

from __future__ import annotations

import math

import pytest
import torch

from ssgan.losses import (
    discriminator_loss,
    fool_loss,
    generator_loss,
    margin_loss,
    perturbation_loss,
    targeted_margin_loss,
)


def test_discriminator_loss_is_lsgan() -> None:
    d_real = torch.tensor([0.9, 0.5])
    d_fake = torch.tensor([0.2, 0.4])
    # mean((1 - [0.9, 0.5])^2) + mean([0.2, 0.4]^2) = (0.01 + 0.25)/2 + (0.04 + 0.16)/2
    assert float(discriminator_loss(d_real, d_fake)) == pytest.approx(0.13 + 0.10)
    # soft labels per example: mean(([0.95, 0.9] - d_real)^2) + mean((d_fake - [0.05, 0.0])^2)
    got = discriminator_loss(d_real, d_fake, torch.tensor([0.95, 0.9]), torch.tensor([0.05, 0.0]))
    want = (0.05**2 + 0.4**2) / 2 + (0.15**2 + 0.4**2) / 2
    assert float(got) == pytest.approx(want)
    # a perfect discriminator has zero loss (the paper's minus sign would give -1 here)
    assert float(discriminator_loss(torch.ones(3), torch.zeros(3))) == 0.0


def test_fool_loss() -> None:
    assert float(fool_loss(torch.tensor([0.5, 1.0]))) == pytest.approx(0.125)


def test_margin_loss_hand_values_and_zero_once_satisfied() -> None:
    logits = torch.tensor([[5.0, 1.0, 2.0], [0.0, 3.0, 9.0]])
    y = torch.tensor([0, 2])
    # row 0: 5 - 2 + 10 = 13; row 1: 9 - 3 + 10 = 16
    assert float(margin_loss(logits, y, 10.0)) == pytest.approx((13 + 16) / 2)
    # margin 1 with the true class 11 below another: max(-11 + 1, 0) = 0
    assert float(margin_loss(torch.tensor([[0.0, 11.0]]), torch.tensor([0]), 1.0)) == 0.0


def test_targeted_margin_loss() -> None:
    logits = torch.tensor([[5.0, 1.0, 2.0]])
    # target 1: max_{j != 1} = 5; 5 - 1 + 10 = 14
    assert float(targeted_margin_loss(logits, torch.tensor([1]), 10.0)) == pytest.approx(14.0)
    assert float(targeted_margin_loss(logits, torch.tensor([0]), 2.0)) == 0.0  # 2 - 5 + 2 < 0


def test_perturbation_loss_is_mean_l2_norm() -> None:
    delta = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    assert float(perturbation_loss(delta)) == pytest.approx((5.0 + 1.0) / 2)


def test_generator_loss_weights_its_parts() -> None:
    d_fake = torch.tensor([0.5])
    logits = torch.tensor([[2.0, 1.0]])
    delta = torch.tensor([[3.0, 4.0]])
    total, parts = generator_loss(
        d_fake, logits, torch.tensor([0]), delta, alpha=10, beta=2, margin=1
    )
    assert float(parts["fool"]) == pytest.approx(0.25)
    assert float(parts["adv"]) == pytest.approx(2.0)  # 2 - 1 + 1
    assert float(parts["pert"]) == pytest.approx(5.0)
    assert float(total) == pytest.approx(0.25 + 10 * 2.0 + 2 * 5.0)
    _, tparts = generator_loss(d_fake, logits, torch.tensor([1]), delta, margin=1, targeted=True)
    assert float(tparts["adv"]) == pytest.approx(2.0)  # 2 - 1 + 1 towards class 1


def test_margin_gradient_only_on_the_two_competing_logits() -> None:
    logits = torch.tensor([[5.0, 1.0, 2.0]], requires_grad=True)
    margin_loss(logits, torch.tensor([0]), 10.0).backward()
    assert logits.grad is not None
    assert logits.grad.tolist() == [[1.0, 0.0, -1.0]]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: margin_loss(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long)), "labels"),
        (lambda: margin_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), -1), "margin"),
        (lambda: perturbation_loss(torch.zeros(4)), "delta"),
        (
            lambda: generator_loss(
                torch.zeros(1),
                torch.zeros(1, 2),
                torch.zeros(1, dtype=torch.long),
                torch.zeros(1, 2),
                alpha=-1,
            ),
            "alpha",
        ),
    ],
)
def test_bad_arguments(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_losses_are_finite_for_extreme_inputs() -> None:
    assert math.isfinite(float(discriminator_loss(torch.zeros(2), torch.ones(2))))


def test_perturbation_hinge_is_zero_above_the_target_snr() -> None:
    x = torch.ones(2, 100)
    delta = torch.stack([0.01 * torch.ones(100), 0.1 * torch.ones(100)])  # 40 dB and 20 dB
    loss = perturbation_loss(delta, x, target_snr_db=30.0)
    allowed = 10.0 * 10 ** (-30 / 20)  # ||x|| = 10
    expected = (0.0 + (1.0 - allowed)) / 2  # ||delta_1|| = 1.0
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(perturbation_loss(delta[:1], x[:1], target_snr_db=30.0)) == 0.0
    with pytest.raises(ValueError, match="needs x"):
        perturbation_loss(delta, None, target_snr_db=30.0)
