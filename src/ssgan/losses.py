"""SSGAN losses (paper section IV-C), as pure functions of batched tensors.

- ``discriminator_loss``: least-squares GAN (Mao et al. 2017), eq. 3 with the sign fixed:
  ``L_D = E[(real_label - D(x))^2] + E[(D(x_adv) - fake_label)^2]``. The paper prints a minus
  between the two terms, which would reward D for calling fakes real; docs/design.md ("Losses")
  reads it as the usual LSGAN sum.
- ``fool_loss``: ``L_fool = E[(1 - D(x_adv))^2]`` (eq. 5).
- ``margin_loss``: ``L_adv = E[max(z_y - max_{j != y} z_j + m, 0)]`` on the victim's logits
  (eq. 6, the Carlini-Wagner margin); ``targeted_margin_loss`` the targeted form
  ``E[max(max_{j != t} z_j - z_t + m, 0)]``.
- ``perturbation_loss``: ``L_pert = E[||delta||_2]`` (eq. 7), the per-example L2 norm over time.
- ``generator_loss``: ``L_G = L_fool + alpha * L_adv + beta * L_pert`` (eq. 4).
- ``input_gradient``: ``d CE(model(x), y) / dx`` per example, the victim's input gradient that
  gradient-based attacks and a ``grad_input`` generator follow.

All return 0-d tensors; ``D(.)`` are probabilities ``(batch,)``, logits ``(batch, classes)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "discriminator_loss",
    "fool_loss",
    "generator_loss",
    "input_gradient",
    "margin_loss",
    "perturbation_loss",
    "targeted_margin_loss",
]


def discriminator_loss(
    d_real: torch.Tensor,
    d_fake: torch.Tensor,
    real_label: float | torch.Tensor = 1.0,
    fake_label: float | torch.Tensor = 0.0,
) -> torch.Tensor:
    """LSGAN discriminator loss ``E[(real_label - D(x))^2] + E[(D(x_adv) - fake_label)^2]``.

    ``real_label`` / ``fake_label`` may be per-example tensors ``(batch,)`` (soft or flipped
    labels) or scalars.
    """
    return ((real_label - d_real) ** 2).mean() + ((d_fake - fake_label) ** 2).mean()


def fool_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """``L_fool = E[(1 - D(x_adv))^2]``: G wants D to call its output real."""
    return ((1.0 - d_fake) ** 2).mean()


def _check_logits(logits: torch.Tensor, labels: torch.Tensor, margin: float) -> None:
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"expected logits (batch, classes >= 2), got {tuple(logits.shape)}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(
            f"expected labels of shape ({logits.shape[0]},), got {tuple(labels.shape)}"
        )
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")


def logit_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``z_label - max_{j != label} z_j`` per row; ``(batch, n_classes), (batch,) -> (batch,)``.

    The one logit margin of the package: the generator's losses below, the attacks' objectives
    and C&W's ``f`` (``ssgan.attacks``) all use it.
    """
    z_label = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.masked_fill(
        torch.nn.functional.one_hot(labels, logits.shape[1]).bool(), float("-inf")
    )
    return z_label - others.amax(dim=1)


def _reduce(hinge: torch.Tensor, still_right: torch.Tensor, unfooled_only: bool) -> torch.Tensor:
    if not unfooled_only:
        return hinge.mean()
    # Mean over the examples the victim still gets right: fooled ones stop pulling the batch
    # towards ever larger margins, the rest keep a gradient of full size however few they are.
    mask = still_right.float()
    return (hinge * mask).sum() / mask.sum().clamp_min(1.0)


def margin_loss(
    logits: torch.Tensor, y: torch.Tensor, margin: float = 10.0, *, unfooled_only: bool = False
) -> torch.Tensor:
    """Untargeted ``E[max(z_y - max_{j != y} z_j + margin, 0)]``; 0 once every example has the
    true class at least ``margin`` below the best other class. ``unfooled_only``: the mean over
    the examples whose prediction is still ``y`` (0 when there are none)."""
    _check_logits(logits, y, margin)
    gap = logit_margin(logits, y)
    return _reduce(torch.clamp(gap + margin, min=0), gap >= 0, unfooled_only)


def targeted_margin_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    margin: float = 10.0,
    *,
    unfooled_only: bool = False,
) -> torch.Tensor:
    """Targeted ``E[max(max_{j != t} z_j - z_t + margin, 0)]``; 0 once the target leads by
    ``margin``. ``unfooled_only``: the mean over examples not yet classified as the target."""
    _check_logits(logits, target, margin)
    gap = logit_margin(logits, target)  # the target's lead
    return _reduce(torch.clamp(margin - gap, min=0), gap <= 0, unfooled_only)


def perturbation_loss(
    delta: torch.Tensor,
    x: torch.Tensor | None = None,
    *,
    target_snr_db: float | None = None,
) -> torch.Tensor:
    """``L_pert = E[||delta||_2]``: mean over the batch of each example's L2 norm over time.

    ``delta``, ``x``: ``(batch, time)``. With ``target_snr_db`` (an addition to the paper, in
    the spirit of AdvGAN's hinge loss) the norm is only penalised above the norm that SNR allows:
    ``E[max(||delta||_2 - ||x||_2 * 10^(-target_snr_db / 20), 0)]`` -- zero for every example
    whose SNR = 20 log10(||x|| / ||delta||) is at least ``target_snr_db``. Without it the L2
    term's unit-norm gradient shrinks ``delta`` towards zero faster than a short training lets
    ``L_adv`` shape it (measured on ESC-10: ``||delta||`` 0.45 -> 0.05 in 30 steps, ASR 0).
    """
    if delta.dim() != 2:
        raise ValueError(f"expected delta (batch, time), got {tuple(delta.shape)}")
    norms = delta.norm(p=2, dim=1)
    if target_snr_db is None:
        return norms.mean()
    if x is None or x.shape != delta.shape:
        raise ValueError("target_snr_db needs x of the same shape as delta")
    allowed = x.norm(p=2, dim=1) * 10 ** (-target_snr_db / 20)
    return torch.clamp(norms - allowed, min=0).mean()


def generator_loss(
    d_fake: torch.Tensor,
    logits: torch.Tensor,
    labels: torch.Tensor,
    delta: torch.Tensor,
    *,
    alpha: float = 10.0,
    beta: float = 1.0,
    margin: float = 10.0,
    targeted: bool = False,
    x: torch.Tensor | None = None,
    target_snr_db: float | None = None,
    gamma: float = 1.0,
    unfooled_only: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``L_G = gamma * L_fool + alpha * L_adv + beta * L_pert`` and its parts (``gamma = 1``
    in the paper; 0 drops the discriminator's term).

    ``labels`` are the true classes (untargeted) or the targets (``targeted=True``).
    ``x`` and ``target_snr_db``: the hinge form of ``L_pert`` (see ``perturbation_loss``).
    Returns ``(total, {"fool": ..., "adv": ..., "pert": ...})``.
    """
    if alpha < 0 or beta < 0 or gamma < 0:
        raise ValueError(
            f"alpha, beta and gamma must be >= 0, got alpha={alpha}, beta={beta}, gamma={gamma}"
        )
    adv_fn = targeted_margin_loss if targeted else margin_loss
    parts = {
        "fool": fool_loss(d_fake),
        "adv": adv_fn(logits, labels, margin, unfooled_only=unfooled_only),
        "pert": perturbation_loss(delta, x, target_snr_db=target_snr_db),
    }
    total = gamma * parts["fool"] + alpha * parts["adv"] + beta * parts["pert"]
    return total, parts


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``d CE(model(x), y) / dx`` per example: the direction in which the victim's loss grows.

    The model's weights get no gradient when frozen (``victim_frozen``); the batch's losses are
    summed, so each row is its own example's gradient.
    """
    x_var = x.detach().float().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x_var).float(), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_var)
    return grad
