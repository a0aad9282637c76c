"""C&W-L2 (Carlini & Wagner, IEEE S&P 2017) on [-1, 1] waveforms.

The box is removed by the change of variables ``x_adv = tanh(w)``; Adam minimises
``||x_adv - x||_2^2 + c * f(x_adv)`` with the logit-margin loss
``f = max(z_y - max_{j != y} z_j, -kappa)`` (untargeted) or
``f = max(max_{j != t} z_j - z_t, -kappa)`` (targeted). A per-clip binary search over ``c``
(``binary_search_steps`` rounds of ``steps`` Adam steps) keeps, for each clip, the successful
example with the smallest L2 distortion; a clip never fooled is returned unchanged.

With an SNR budget (``snr_db``) the result is projected onto the budget's L2 ball: a clip whose
smallest successful distortion is within the budget keeps it, a louder one is scaled down to the
budget, where the victim (not C&W) decides whether it still fools. Since no success inside the
ball can be smaller than the smallest success overall, this is the minimum-norm result read at
the budget (as foolbox reads its minimum-norm attacks at an epsilon).
"""

from __future__ import annotations

import logging
import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from ssgan.attacks.base import Attack
from ssgan.attacks.budget import Budget, project
from ssgan.attacks.checks import check_int, check_positive
from ssgan.losses import logit_margin
from ssgan.metrics import check_convention

logger = logging.getLogger(__name__)

# Clean samples at exactly +-1 (peak-normalised clips always have one) would map to atanh(+-1) =
# inf; shrinking by this factor keeps w finite and changes those samples by ~1e-6.
_TANH_SHRINK = 1.0 - 1e-6
_C_UPPER_UNKNOWN = 1e10


class CW(Attack):
    """Carlini & Wagner L2 attack (Carlini & Wagner 2017, "Towards evaluating the robustness of
    neural networks").

    Distance: L2, minimised; no budget unless ``snr_db`` sets one (the result always respects
    the [-1, 1] box).

    Args:
        c: initial trade-off constant (default 0.1).
        kappa: confidence margin on the logits (default 0).
        steps: Adam steps per binary-search round (default 100).
        binary_search_steps: rounds of the search over ``c`` (default 5).
        lr: Adam learning rate in tanh space (default 0.01).
        snr_db: a budget: the result is at least this SNR in dB (per clip; see the module
            docstring). ``None`` (default): no budget.
        snr_convention: what ``snr_db`` is measured against: ``"true"`` (``x``, default) or
            ``"box"`` (``x + 1``, [16]'s convention; ``ssgan.metrics``).

    Example::

        x_adv = CW(steps=200)(model, x, y, target=t)   # x: (batch, time) in [-1, 1]
        x_adv = CW(snr_db=36.0, snr_convention="box")(model, x, y)   # the paper's budget
    """

    name: ClassVar[str] = "cw"
    targeted_supported: ClassVar[bool] = True

    def __init__(
        self,
        *,
        c: float = 0.1,
        kappa: float = 0.0,
        steps: int = 100,
        binary_search_steps: int = 5,
        lr: float = 0.01,
        snr_db: float | None = None,
        snr_convention: str = "true",
    ) -> None:
        self.c = check_positive("c", c)
        self.kappa = check_positive("kappa", kappa, allow_zero=True)
        self.steps = check_int("steps", steps, minimum=1)
        self.binary_search_steps = check_int("binary_search_steps", binary_search_steps, minimum=1)
        self.lr = check_positive("lr", lr)
        if snr_db is not None and not -60.0 <= float(snr_db) <= 120.0:
            raise ValueError(f"snr_db={snr_db!r}: an SNR budget needs a value in [-60, 120] dB")
        self.snr_db = None if snr_db is None else float(snr_db)
        self.snr_convention = check_convention(snr_convention)

    def _margin_loss(self, logits: Tensor, y: Tensor, target: Tensor | None) -> Tensor:
        """``f`` of the docstring per clip, ``(batch,)``; success where it reaches ``-kappa``."""
        if target is None:
            return logit_margin(logits, y).clamp_min(-self.kappa)
        return (-logit_margin(logits, target)).clamp_min(-self.kappa)

    def _success(self, logits: Tensor, y: Tensor, target: Tensor | None) -> Tensor:
        if target is None:
            return (
                logit_margin(logits, y) < -self.kappa if self.kappa > 0 else logits.argmax(1) != y
            )
        return (
            logit_margin(logits, target) > self.kappa
            if self.kappa > 0
            else logits.argmax(1) == target
        )

    def _run(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        target: Tensor | None,
        generator: torch.Generator,
    ) -> Tensor:
        batch = x.shape[0]
        w0 = torch.atanh(x * _TANH_SHRINK)
        c = torch.full((batch,), self.c, device=x.device, dtype=x.dtype)
        lower = torch.zeros_like(c)
        upper = torch.full_like(c, _C_UPPER_UNKNOWN)
        best_l2 = torch.full_like(c, math.inf)
        best_x = x.clone()
        for round_ in range(self.binary_search_steps):
            w = w0.clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=self.lr)
            succeeded = torch.zeros(batch, dtype=torch.bool, device=x.device)
            for _ in range(self.steps):
                x_adv = torch.tanh(w)
                l2_sq = (x_adv - x).pow(2).flatten(1).sum(1)
                logits = model(x_adv)
                loss = (l2_sq + c * self._margin_loss(logits, y, target)).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    # Judge the iterate the logits were computed on (before this Adam step).
                    ok = self._success(logits, y, target)
                    l2 = l2_sq.sqrt()
                    better = ok & (l2 < best_l2)
                    best_l2 = torch.where(better, l2, best_l2)
                    best_x[better] = x_adv[better].detach()
                    succeeded |= ok
            # Binary search: shrink c where this round succeeded, grow it (x10 until an upper
            # bound is known) where it failed.
            upper = torch.where(succeeded, torch.minimum(upper, c), upper)
            lower = torch.where(succeeded, lower, torch.maximum(lower, c))
            known = upper < _C_UPPER_UNKNOWN
            c = torch.where(known, (lower + upper) / 2, c * 10)
            logger.debug(
                "cw round %d: %d/%d clips fooled", round_, int(torch.isfinite(best_l2).sum()), batch
            )
        if self.snr_db is None:
            return best_x
        budget = Budget("l2", 0.0, snr_db=self.snr_db, snr_convention=self.snr_convention)
        return project(x, best_x, budget)
