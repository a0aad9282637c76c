"""FGM: the fast gradient method in L2 (Goodfellow et al., ICLR 2015; Miyato et al., 2016).

Distance: L2. One step ``x_adv = x + eps * g / ||g||`` along the gradient ``g`` of the attack
objective, then clipped to [-1, 1]: PGD-L2 with one step from ``x`` (``ssgan.attacks.pgd``). Its
budget is ``eps`` in waveform units or, with ``snr_db``, each clip's own radius
``||r|| 10^(-snr_db / 20)`` (``r = x``, or ``x + 1`` in [16]'s box convention), so the step lands
at exactly ``snr_db`` dB of SNR in that convention before clipping.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from ssgan.attacks.pgd import PGD


class FGM(PGD):
    """Fast gradient method, L2: one normalised-gradient step of length ``eps`` (or of the
    radius at ``snr_db``).

    Args:
        eps: the step's L2 length in waveform units (default 0.3, for ~1.6 s clips); unused with
            ``snr_db``.
        snr_db: the step's length as an SNR in dB (per clip); ``None`` (default): ``eps``.
        snr_convention: what ``snr_db`` is measured against: ``"true"`` (``x``, default) or
            ``"box"`` (``x + 1``; ``ssgan.metrics``).
        loss: ``"ce"`` (cross-entropy, default) or ``"margin"`` (logit margin).

    Example::

        x_adv = FGM(snr_db=30)(model, x, y)    # x: (batch, time), y: (batch,)
    """

    name: ClassVar[str] = "fgm"

    def __init__(
        self,
        *,
        eps: float = 0.3,
        snr_db: float | None = None,
        snr_convention: str = "true",
        loss: Literal["ce", "margin"] = "ce",
    ) -> None:
        # One step of 2.5 radii (PGD's default step) from x, projected back onto the sphere:
        # exactly one step of length eps along the gradient.
        super().__init__(
            norm="l2",
            eps=eps,
            snr_db=snr_db,
            snr_convention=snr_convention,
            steps=1,
            random_start=False,
            loss=loss,
        )
