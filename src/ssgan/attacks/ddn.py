"""DDN: decoupled direction and norm (Rony et al., CVPR 2019), a minimum-norm L2 attack.

Each step moves the perturbation along the normalised gradient of the victim's loss, then
rescales it to a per-clip norm ``eps`` that shrinks by ``(1 - gamma)`` where the current iterate
fools the victim and grows by ``(1 + gamma)`` where it does not. Each clip thus walks towards the
quietest loudness at which it can be fooled, and the smallest successful perturbation seen is
kept. Loudness is counted in dB of SNR relative to each clip (``eps = ||r|| 10^(-snr/20)``, with
``r = x`` in the true SNR convention or ``r = x + 1`` in [16]'s box convention, ``snr_convention``,
``ssgan.metrics``), so one setting fits quiet and loud clips alike.

``min_norm_search`` is the loop on its own, starting from any perturbation, and the one DDN of
the package: the ``DDN`` attack starts from zero at ``init_snr_db`` (``refine_min_norm``);
``SSGANAttack(refine_steps=k)`` starts from the generator's output; ``ddn`` (absolute norms, as
the reference code) is the per-sample attack of Abdoli et al.'s universal perturbation.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from ssgan.attacks.base import Attack
from ssgan.attacks.checks import check_choice, check_int, check_positive
from ssgan.attacks.objective import objective
from ssgan.attacks.randomness import default_generator, rand_like_cpu
from ssgan.metrics import check_convention, snr_reference


def _norms(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1)


def _reference_norms(x: Tensor, convention: str) -> Tensor:
    """``||r||`` per clip, ``r`` the SNR reference of ``convention``, floored above 0."""
    ref = snr_reference(x.float(), convention)
    return _norms(ref).clamp_min(torch.finfo(torch.float32).tiny)


def _fools(logits: Tensor, y: Tensor, target: Tensor | None) -> Tensor:
    pred = logits.argmax(1)
    return pred != y if target is None else pred == target


def min_norm_search(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    target: Tensor | None,
    delta: Tensor,
    eps: Tensor,
    *,
    steps: int,
    gamma: float,
    eps_max: Tensor | None = None,
    step_size: float = 1.0,
    relative_step: bool = True,
    keep_last: bool = True,
    loss: Literal["ce", "margin"] = "ce",
    generator: torch.Generator | None = None,
) -> Tensor:
    """The DDN loop: ``steps`` iterations from ``delta`` with per-clip norms ``eps`` ``(batch,)``.

    Returns, per clip, the smallest perturbation that fooled the victim (untargeted: any other
    class than ``y``; targeted: ``target``); for a clip never fooled, the last iterate
    (``keep_last``) or zeros. The gradient step has length ``step_size`` (times the current
    ``eps`` when ``relative_step``), annealed by a cosine to 1 % of it over the steps; ``eps``
    never exceeds ``eps_max`` nor the norm that pushes every sample to the [-1, 1] box.
    """
    tiny = torch.finfo(torch.float32).tiny
    x = x.detach()
    worst = torch.maximum(1 + x, 1 - x).float().flatten(1).norm(dim=1)
    cap = worst if eps_max is None else torch.minimum(eps_max.float(), worst)
    eps = torch.minimum(eps.float(), cap)
    delta = delta.detach().clone()
    best = torch.zeros_like(delta)
    best_norm = torch.full_like(eps, math.inf)

    def keep_if_better(fooled: Tensor, candidate: Tensor) -> None:
        nonlocal best, best_norm
        now = _norms(candidate.float())
        better = fooled & (now < best_norm)
        best = torch.where(better[:, None], candidate, best)
        best_norm = torch.where(better, now, best_norm)

    for k in range(steps):
        alpha = step_size * (0.01 + 0.99 * (1 + math.cos(math.pi * k / steps)) / 2)
        x_var = (x + delta).clamp(-1.0, 1.0).requires_grad_(True)
        with torch.enable_grad():
            logits = model(x_var)
            gain = objective(logits.float(), y, target, loss).sum()
            (grad,) = torch.autograd.grad(gain, x_var)
        with torch.no_grad():
            fooled = _fools(logits, y, target)
            keep_if_better(fooled, x_var - x)
            g_norm = _norms(grad.float())
            direction = grad / g_norm.clamp_min(tiny)[:, None].to(grad.dtype)
            if bool((g_norm == 0).any()):  # a flat victim: move somewhere rather than nowhere
                noise = rand_like_cpu(x, default_generator(generator), kind="normal")
                noise = noise / _norms(noise.float()).clamp_min(tiny)[:, None].to(x.dtype)
                direction = torch.where((g_norm == 0)[:, None], noise, direction)
            length = alpha * eps if relative_step else torch.full_like(eps, alpha)
            delta = delta + length[:, None].to(delta.dtype) * direction
            eps = torch.where(fooled, eps * (1 - gamma), torch.minimum(eps * (1 + gamma), cap))
            scale = eps / _norms(delta.float()).clamp_min(tiny)
            delta = (x + delta * scale[:, None].to(delta.dtype)).clamp(-1.0, 1.0) - x
    with torch.no_grad():  # the last iterate was never judged
        keep_if_better(_fools(model((x + delta).clamp(-1.0, 1.0)), y, target), delta)
        fallback = delta if keep_last else torch.zeros_like(delta)
        return torch.where(torch.isfinite(best_norm)[:, None], best, fallback)


def quietest_scale(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    target: Tensor | None,
    delta: Tensor,
    *,
    min_snr_db: float = 10.0,
    max_snr_db: float = 50.0,
    steps: int = 6,
    snr_convention: str = "true",
) -> Tensor:
    """Each clip's ``delta`` rescaled (its direction kept) to the highest SNR in
    ``[min_snr_db, max_snr_db]`` that still fools the victim: a bisection of ``steps`` halvings,
    ``steps + 2`` victim forward passes, no gradient. Where ``delta`` itself fools, the search
    starts at its SNR, so the result is never louder than a fooling start; a clip not fooled
    even at ``min_snr_db`` keeps that loudest scale. SNRs are in ``snr_convention`` (``"true"``
    or ``"box"``, ``ssgan.metrics``)."""
    tiny = torch.finfo(torch.float32).tiny
    x_norm = _reference_norms(x, check_convention(snr_convention))
    d_norm = delta.float().norm(dim=1).clamp_min(tiny)
    # A zero delta (a clip the attack before gave up on) has no direction to scale: it stays
    # zero. Its x_norm / tiny ratio overflows float32, and inf * 0 would be NaN audio.
    has_direction = delta.flatten(1).ne(0).any(dim=1)

    def at(snr: Tensor) -> Tensor:
        scale = torch.where(has_direction, x_norm / d_norm * 10.0 ** (-snr / 20.0), 0.0)
        return (x + delta * scale[:, None].to(delta.dtype)).clamp(-1.0, 1.0)

    def fooled(snr: Tensor) -> Tensor:
        with torch.no_grad():
            return _fools(model(at(snr)), y, target)

    start = 20.0 * torch.log10(x_norm / d_norm)
    with torch.no_grad():
        start_fools = _fools(model((x + delta).clamp(-1.0, 1.0)), y, target)
    start_fools &= (start >= min_snr_db) & (start < max_snr_db)
    # lo: the loudest SNR searched, which fools if anything in the range does.
    lo = torch.where(start_fools, start, torch.full_like(x_norm, min_snr_db))
    hi = torch.full_like(x_norm, max_snr_db)
    ok = start_fools | fooled(lo)
    for _ in range(steps):
        mid = (lo + hi) / 2
        works = fooled(mid) & ok
        lo = torch.where(works, mid, lo)
        hi = torch.where(works, hi, mid)
    return at(lo) - x


def refine_min_norm(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    target: Tensor | None,
    delta: Tensor,
    *,
    steps: int,
    gamma: float = 0.1,
    step_scale: float = 1.0,
    init_snr_db: float = 30.0,
    min_snr_db: float = 10.0,
    loss: Literal["ce", "margin"] = "ce",
    snr_convention: str = "true",
) -> Tensor:
    """``steps`` DDN iterations from ``delta`` (``(batch, time)``, may be zero), loudness in dB
    of SNR relative to each clip; returns the smallest perturbation that fooled the victim for
    each clip, or the last iterate for a clip never fooled.

    Args:
        delta: the start. Its norm is each clip's first ``eps``; a zero row starts at
            ``init_snr_db``.
        gamma: the per-step relative change of ``eps`` (0.1: about 0.9 dB a step).
        step_scale: the gradient step's length relative to the current ``eps``.
        min_snr_db: the loudest the search may go (``eps`` is capped at this SNR).
        loss: the objective ascended (``ssgan.attacks.objective.objective``).
        snr_convention: what the SNRs are measured against: ``"true"`` (``x``) or ``"box"``
            (``x + 1``, [16]'s convention; ``ssgan.metrics``).
    """
    x_norm = _reference_norms(x, check_convention(snr_convention))
    d_norm = _norms(delta.float())
    eps = torch.where(d_norm > 0, d_norm, x_norm * 10.0 ** (-init_snr_db / 20.0))
    return min_norm_search(
        model,
        x,
        y,
        target,
        delta,
        eps,
        steps=steps,
        gamma=gamma,
        eps_max=x_norm * 10.0 ** (-min_snr_db / 20.0),
        step_size=step_scale,
        relative_step=True,
        keep_last=True,
        loss=loss,
    )


def ddn(
    model: nn.Module,
    x: Tensor,
    labels: Tensor,
    *,
    targeted: bool = False,
    steps: int = 50,
    gamma: float = 0.05,
    init_norm: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """DDN as in the reference code (absolute norms): the smallest-L2 successful ``delta``
    ``(batch, time)`` per clip, zeros where none was found; ``x + delta`` stays in [-1, 1].
    ``labels`` are true labels (untargeted) or targets. The step has length 1 annealed by a
    cosine to 0.01; the norm starts at ``init_norm``. Abdoli et al.'s universal perturbation
    uses it as its per-sample attack (``ssgan.attacks.universal``)."""
    eps = torch.full((x.shape[0],), float(init_norm), device=x.device)
    return min_norm_search(
        model,
        x,
        labels,
        labels if targeted else None,
        torch.zeros_like(x),
        eps,
        steps=steps,
        gamma=gamma,
        step_size=1.0,
        relative_step=False,
        keep_last=False,
        generator=generator,
    )


class DDN(Attack):
    """Decoupled direction and norm (Rony et al. 2019, "Decoupling direction and norm for
    efficient gradient-based L2 adversarial attacks and defenses"): a minimum-norm L2 attack.

    Distance: L2, minimised per clip (no fixed budget; never louder than ``min_snr_db``).

    Args:
        steps: gradient steps (one victim forward + backward each; default 20).
        gamma: relative change of each clip's norm per step (default 0.1).
        step_scale: gradient step length relative to the current norm, cosine-annealed
            (default 1.0).
        init_snr_db: the SNR of the first step (default 30).
        min_snr_db: the loudest allowed SNR (default 10).
        loss: ``"ce"`` (default) or ``"margin"``.
        quietest: then rescale each clip's result to the quietest SNR in ``[min_snr_db, 50]``
            that still fools (``quietest_scale``: 8 more forward passes, no gradient).
        snr_convention: what the SNRs are measured against: ``"true"`` (``x``, default) or
            ``"box"`` (``x + 1``, [16]'s convention; ``ssgan.metrics``).

    Example::

        x_adv = DDN(steps=20)(model, x, y)
    """

    name: ClassVar[str] = "ddn"
    targeted_supported: ClassVar[bool] = True

    def __init__(
        self,
        *,
        steps: int = 20,
        gamma: float = 0.1,
        step_scale: float = 1.0,
        init_snr_db: float = 30.0,
        min_snr_db: float = 10.0,
        loss: Literal["ce", "margin"] = "ce",
        quietest: bool = False,
        snr_convention: str = "true",
    ) -> None:
        self.steps = check_int("steps", steps, minimum=1)
        self.quietest = bool(quietest)
        self.gamma = check_positive("gamma", gamma)
        if self.gamma >= 1:
            raise ValueError(f"gamma={gamma!r}: expected a value in (0, 1)")
        self.step_scale = check_positive("step_scale", step_scale)
        self.init_snr_db = float(init_snr_db)
        self.min_snr_db = float(min_snr_db)
        self.snr_convention = check_convention(snr_convention)
        self.loss: Literal["ce", "margin"] = check_choice(  # type: ignore[assignment]
            "loss", loss, ("ce", "margin")
        )

    def _run(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        target: Tensor | None,
        generator: torch.Generator,
    ) -> Tensor:
        delta = refine_min_norm(
            model,
            x,
            y,
            target,
            torch.zeros_like(x),
            steps=self.steps,
            gamma=self.gamma,
            step_scale=self.step_scale,
            init_snr_db=self.init_snr_db,
            min_snr_db=self.min_snr_db,
            loss=self.loss,
            snr_convention=self.snr_convention,
        )
        if self.quietest:
            delta = quietest_scale(
                model,
                x,
                y,
                target,
                delta,
                min_snr_db=self.min_snr_db,
                snr_convention=self.snr_convention,
            )
        return x + delta
