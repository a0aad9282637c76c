"""PGD: projected gradient descent (Madry et al., ICLR 2018), Linf or L2.

Each step ascends the attack objective (signed gradient for Linf, L2-normalised gradient for L2),
then projects onto the eps-ball around ``x`` and the [-1, 1] box. An optional random start draws
the initial point uniformly in the Linf ball, or uniformly in radius along a random direction in
the L2 ball, from the generator passed at call time.

EOT variant (Athalye et al., ICML 2018, "Synthesizing robust adversarial examples"): with
``eot`` transform specs (``ssgan.transforms``), each step ascends the objective averaged over
``eot_samples`` random channel transforms of the candidate (MP3 and resampling with a
straight-through gradient), the fair counterpart of SSGAN trained with ``eot``.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from ssgan.attacks.base import (
    Attack,
    Budget,
    check_choice,
    check_int,
    check_positive,
    objective,
    project,
    rand_like_cpu,
)
from ssgan.transforms import EOT

logger = logging.getLogger(__name__)


def _row_norms(t: Tensor) -> Tensor:
    """L2 norm of each row of ``(batch, time)`` as ``(batch, 1)``, floored to avoid 0/0."""
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1)


class PGD(Attack):
    """Projected gradient descent (Madry et al. 2018, "Towards deep learning models resistant to
    adversarial attacks"), in Linf or L2.

    Args:
        norm: ``"linf"`` (default) or ``"l2"``.
        eps: budget in waveform units; default 0.002 (sensible for Linf; for L2 on a 1.6 s clip
            try ~0.3).
        steps: number of gradient steps (default 10).
        step_size: per-step size; ``None`` means ``2.5 * eps / steps`` (Madry et al.).
        random_start: start from a random point in the ball (default True), drawn from the
            ``generator`` passed to the call.
        loss: ``"ce"`` (cross-entropy, default) or ``"margin"`` (logit margin).
        eot: channel transform specs to average each step's gradient over (default none), e.g.
            ``("mp3:kbps=64", "resample:rate_hz=8000")``; one is drawn per clip and sample.
        eot_samples: transformed copies per step (default 1; each costs a forward + backward).

    Example::

        attack = PGD(norm="l2", eps=0.3, steps=20)
        x_adv = attack(model, x, y, target=t, generator=torch.Generator().manual_seed(0))
    """

    name: ClassVar[str] = "pgd"
    targeted_supported: ClassVar[bool] = True

    def __init__(
        self,
        *,
        norm: Literal["linf", "l2"] = "linf",
        eps: float = 0.002,
        steps: int = 10,
        step_size: float | None = None,
        random_start: bool = True,
        loss: Literal["ce", "margin"] = "ce",
        eot: tuple[str, ...] = (),
        eot_samples: int = 1,
    ) -> None:
        self.norm: Literal["linf", "l2"] = check_choice(  # type: ignore[assignment]
            "norm", norm, ("linf", "l2")
        )
        self.eps = check_positive("eps", eps)
        self.steps = check_int("steps", steps, minimum=1)
        self.step_size = None if step_size is None else check_positive("step_size", step_size)
        if not isinstance(random_start, bool):
            raise ValueError(f"random_start={random_start!r}: expected a boolean")
        self.random_start = random_start
        self.loss: Literal["ce", "margin"] = check_choice(  # type: ignore[assignment]
            "loss", loss, ("ce", "margin")
        )
        self._eot = EOT(eot) if eot else None
        self.eot = tuple(self._eot.specs()) if self._eot else ()
        self.eot_samples = check_int("eot_samples", eot_samples, minimum=1)

    def budget(self) -> Budget:
        return Budget(self.norm, self.eps)

    def _gradient(
        self,
        model: nn.Module,
        x_var: Tensor,
        y: Tensor,
        target: Tensor | None,
        generator: torch.Generator,
    ) -> Tensor:
        """d objective / d x at ``x_var``; with EOT summed over ``eot_samples`` transformed
        copies, one backward each (memory of one copy, not of all)."""
        grad = torch.zeros_like(x_var)
        for _ in range(self.eot_samples if self._eot is not None else 1):
            heard = self._eot(x_var, generator=generator) if self._eot is not None else x_var
            gain = objective(model(heard), y, target, self.loss).sum()
            grad += torch.autograd.grad(gain, x_var)[0]
        return grad

    def _run(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        target: Tensor | None,
        generator: torch.Generator,
    ) -> Tensor:
        budget = self.budget()
        alpha = self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps
        x_adv = x.clone()
        if self.random_start:
            if self.norm == "linf":
                delta = (2 * rand_like_cpu(x, generator) - 1) * self.eps
            else:
                direction = rand_like_cpu(x, generator, kind="normal")
                direction = direction / _row_norms(direction)
                radius = rand_like_cpu(x[:, :1], generator) * self.eps
                delta = direction * radius
            x_adv = (x + delta).clamp(-1.0, 1.0)
        for _ in range(self.steps):
            x_var = x_adv.detach().requires_grad_(True)
            grad = self._gradient(model, x_var, y, target, generator)
            step = grad.sign() if self.norm == "linf" else grad / _row_norms(grad)
            x_adv = project(x, x_adv.detach() + alpha * step, budget).clamp(-1.0, 1.0)
        return x_adv
