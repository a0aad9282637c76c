"""FGSM: the fast gradient sign method (Goodfellow, Shlens & Szegedy, ICLR 2015).

Distance: Linf. One step ``x_adv = x + eps * sign(grad_x loss)`` (minus for targeted attacks),
then clipped to [-1, 1].
"""

from __future__ import annotations

import logging
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from ssgan.attacks.base import Attack
from ssgan.attacks.budget import Budget
from ssgan.attacks.checks import check_choice, check_positive
from ssgan.attacks.objective import objective

logger = logging.getLogger(__name__)


class FGSM(Attack):
    """Fast gradient sign method, Linf (Goodfellow et al. 2015, "Explaining and harnessing
    adversarial examples").

    Args:
        eps: Linf budget in waveform units ([-1, 1] scale); default 0.002 (about -54 dBFS).
        loss: ``"ce"`` (cross-entropy, default) or ``"margin"`` (logit margin).

    Example::

        x_adv = FGSM(eps=0.002)(model, x, y)    # x: (batch, time), y: (batch,)
    """

    name: ClassVar[str] = "fgsm"
    targeted_supported: ClassVar[bool] = True

    def __init__(self, *, eps: float = 0.002, loss: Literal["ce", "margin"] = "ce") -> None:
        self.eps = check_positive("eps", eps)
        self.loss: Literal["ce", "margin"] = check_choice(  # type: ignore[assignment]
            "loss", loss, ("ce", "margin")
        )

    def budget(self) -> Budget:
        return Budget("linf", self.eps)

    def _run(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        target: Tensor | None,
        generator: torch.Generator,
    ) -> Tensor:
        x_var = x.clone().requires_grad_(True)
        gain = objective(model(x_var), y, target, self.loss).sum()
        (grad,) = torch.autograd.grad(gain, x_var)
        return x + self.eps * grad.sign()
