"""PGD: projected gradient descent (Madry et al., ICLR 2018), Linf or L2.

Each step ascends the attack objective (signed gradient for Linf, L2-normalised gradient for L2),
then projects onto the eps-ball around ``x`` and the [-1, 1] box. An optional random start draws
the initial point uniformly in the Linf ball, or uniformly in radius along a random direction in
the L2 ball, from the generator passed at call time.

L2 by SNR: with ``snr_db`` each clip gets its own radius ``eps_i = ||r_i|| 10^(-snr_db / 20)``,
``r = x`` (``snr_convention="true"``) or ``x + 1`` (``"box"``, the convention of Abdoli et al.'s
code, ``ssgan.metrics``), so ``x_adv`` is at least ``snr_db`` dB below the clip in that
convention (before clipping to [-1, 1]). FGM (``ssgan.attacks.fgm``) is the one-step case.

EOT variant (Athalye et al., ICML 2018, "Synthesizing robust adversarial examples"): with
``eot`` transform specs (``ssgan.transforms``), each step ascends the objective averaged over
``eot_samples`` random channel transforms of the candidate (MP3 and resampling with a
straight-through gradient), the fair counterpart of SSGAN trained with ``eot``.
"""

from __future__ import annotations

import logging
import math
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from ssgan.attacks.base import Attack
from ssgan.attacks.budget import Budget, project
from ssgan.attacks.checks import check_choice, check_int, check_positive
from ssgan.attacks.objective import objective
from ssgan.attacks.randomness import rand_like_cpu
from ssgan.metrics import check_convention
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
            try ~0.3). Unused with ``snr_db``.
        snr_db: L2 only: the budget as an SNR in dB instead of ``eps``, each clip's radius
            ``||r|| 10^(-snr_db / 20)`` (module docstring); ``None`` (default): ``eps``.
        snr_convention: what ``snr_db`` is measured against: ``"true"`` (``x``, default) or
            ``"box"`` (``x + 1``, [16]'s convention; ``ssgan.metrics``).
        steps: number of gradient steps (default 10).
        step_size: per-step size in waveform units; ``None`` means ``2.5 * eps / steps``
            (Madry et al.; with ``snr_db``, of each clip's own radius).
        random_start: start from a random point in the ball (default True), drawn from the
            ``generator`` passed to the call.
        loss: ``"ce"`` (cross-entropy, default) or ``"margin"`` (logit margin).
        eot: channel transform specs to average each step's gradient over (default none), e.g.
            ``("mp3:kbps=64", "resample:rate_hz=8000")``; one is drawn per clip and sample.
        eot_samples: transformed copies per step (default 1; each costs a forward + backward).

    Example::

        attack = PGD(norm="l2", eps=0.3, steps=20)
        x_adv = attack(model, x, y, target=t, generator=torch.Generator().manual_seed(0))
        x_adv = PGD(norm="l2", snr_db=35.7, snr_convention="box")(model, x, y)
    """

    name: ClassVar[str] = "pgd"
    targeted_supported: ClassVar[bool] = True

    def __init__(
        self,
        *,
        norm: Literal["linf", "l2"] = "linf",
        eps: float = 0.002,
        snr_db: float | None = None,
        snr_convention: str = "true",
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
        self.snr_convention = check_convention(snr_convention)
        if snr_db is not None and (self.norm != "l2" or not -60.0 <= float(snr_db) <= 120.0):
            raise ValueError(
                f"snr_db={snr_db!r} with norm={norm!r}: an SNR budget needs norm='l2' and a value "
                "in [-60, 120] dB"
            )
        self.snr_db = None if snr_db is None else float(snr_db)
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
        if self.snr_db is not None:
            return Budget("l2", math.inf, snr_db=self.snr_db, snr_convention=self.snr_convention)
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
        eps = budget.radius(x)  # a number, or (batch, 1) radii with snr_db
        alpha = self.step_size if self.step_size is not None else 2.5 * eps / self.steps
        x_adv = x.clone()
        if self.random_start:
            if self.norm == "linf":
                delta = (2 * rand_like_cpu(x, generator) - 1) * self.eps
            else:
                direction = rand_like_cpu(x, generator, kind="normal")
                direction = direction / _row_norms(direction)
                radius = rand_like_cpu(x[:, :1], generator) * eps
                delta = direction * radius
            x_adv = (x + delta).clamp(-1.0, 1.0)
        for _ in range(self.steps):
            x_var = x_adv.detach().requires_grad_(True)
            grad = self._gradient(model, x_var, y, target, generator)
            step = grad.sign() if self.norm == "linf" else grad / _row_norms(grad)
            x_adv = project(x, x_adv.detach() + alpha * step, budget).clamp(-1.0, 1.0)
        return x_adv
