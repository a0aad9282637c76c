"""Signal-to-noise ratios: the two SNR conventions and every SNR figure (docs/snr.md).

The *true* SNR is paper eq. 10 on the audio as it is; the *box* SNR is eq. 10 as [16]'s code
computes it, against ``x + 1`` (``ssgan.metrics`` explains why both exist). Beside them: the mean
SNR over the successful examples (MSNR) and the segmental SNR.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ssgan.metrics.clips import as_clip_pair, per_clip

# Hansen & Pellom (1998) clamp frame SNRs to this range so that silent frames (-inf) and frames
# without perturbation (+inf) do not dominate the average.
SEGMENTAL_SNR_MIN_DB = -10.0
SEGMENTAL_SNR_MAX_DB = 35.0


def rms(v: Tensor) -> Tensor:
    """``P(v) = sqrt(sum_i v_i^2 / n)``, the RMS over the last axis (paper eq. 11).

    ``(..., time) -> (...)`` float64.
    """
    return v.double().pow(2).mean(dim=-1).sqrt()


def snr_db(x: Tensor, x_adv: Tensor) -> Tensor:
    """``SNR = 20 log10(P(x) / P(delta))`` in dB per clip (paper eq. 10), ``delta = x_adv - x``.

    ``P`` is the RMS over the whole clip (eq. 11). ``(batch, time) -> (batch,)`` float64, or
    ``(time,) -> ()``. ``delta = 0`` gives ``+inf`` (no perturbation at all); a silent ``x`` with
    a non-zero ``delta`` gives ``-inf``. ``delta = 0.1 x`` gives exactly 20 dB.
    """
    x64, a64, single = as_clip_pair(x, x_adv)
    p_x = rms(x64)
    p_d = rms(a64 - x64)
    with torch.no_grad():
        out = 20.0 * (torch.log10(p_x) - torch.log10(p_d))
    # 0/0 (silent x, no perturbation) is still "no perturbation": +inf rather than nan.
    out = torch.where(p_d == 0, torch.full_like(out, math.inf), out)
    return per_clip(out, single)


SNR_CONVENTIONS = ("true", "box")
"""Where an SNR sets or reports a loudness: ``"true"`` measures it against ``x``, ``"box"``
against ``x + 1`` (the signal [16]'s code measures, see the module docstring)."""


def check_convention(convention: str) -> str:
    """``convention`` if it is one of ``SNR_CONVENTIONS``, else a ``ValueError`` naming it."""
    if convention not in SNR_CONVENTIONS:
        raise ValueError(
            f"snr_convention={convention!r}: expected one of {', '.join(SNR_CONVENTIONS)}"
        )
    return convention


def snr_reference(x: Tensor, convention: str = "true") -> Tensor:
    """The signal an SNR in ``convention`` is measured against: ``x`` (true) or ``x + 1`` (box).

    Scaling a perturbation to ``snr`` dB in a convention means ``P(delta) = P(reference) *
    10 ** (-snr / 20)``; both conventions then agree on what ``delta`` is.
    """
    return x if check_convention(convention) == "true" else x + 1.0


def snr_box_db(x: Tensor, x_adv: Tensor) -> Tensor:
    """The box SNR of [16]'s code: ``20 log10(P(x + 1) / P(delta))`` per clip, in dB.

    The same as ``snr_db`` computed on ``(x + 1) / 2`` and ``(x_adv + 1) / 2`` (audio held in
    ``[0, 1]``); the factor 1/2 cancels. Shapes and the ``delta = 0`` case as ``snr_db``.
    """
    x64, a64, single = as_clip_pair(x, x_adv)
    p_x = rms(x64 + 1.0)
    p_d = rms(a64 - x64)
    with torch.no_grad():
        out = 20.0 * (torch.log10(p_x) - torch.log10(p_d))
    out = torch.where(p_d == 0, torch.full_like(out, math.inf), out)
    return per_clip(out, single)


def snr_in(convention: str, x: Tensor, x_adv: Tensor) -> Tensor:
    """``snr_db`` (``"true"``) or ``snr_box_db`` (``"box"``) of ``x_adv``."""
    return snr_db(x, x_adv) if check_convention(convention) == "true" else snr_box_db(x, x_adv)


def msnr_db(snr: Tensor | list[float], success: Tensor | list[bool]) -> float:
    """``MSNR``: the mean of ``snr`` (dB, ``(batch,)``) over the successful examples.

    ``success`` is the bool ``(batch,)`` mask from ``success_mask``. ``nan`` when there is no
    successful example.
    """
    s = torch.as_tensor(snr, dtype=torch.float64)
    m = torch.as_tensor(success, dtype=torch.bool)
    if s.shape != m.shape:
        raise ValueError(f"snr and success differ in shape: {tuple(s.shape)} vs {tuple(m.shape)}")
    if not bool(m.any()):
        return math.nan
    return float(s[m].mean())


def segmental_snr_db(
    x: Tensor,
    x_adv: Tensor,
    *,
    frame_length: int = 320,
    min_db: float = SEGMENTAL_SNR_MIN_DB,
    max_db: float = SEGMENTAL_SNR_MAX_DB,
) -> Tensor:
    """Segmental SNR in dB per clip (Hansen & Pellom 1998, "An effective quality evaluation
    protocol for speech enhancement algorithms").

    The clip is cut into consecutive non-overlapping frames of ``frame_length`` samples (default
    320 = 20 ms at 16 kHz; a trailing partial frame is dropped unless the clip is shorter than one
    frame, which is then one frame). Per frame ``k``:
    ``SNR_k = 10 log10(sum x^2 / sum delta^2)``, clamped to ``[min_db, max_db]`` = [-10, 35] dB
    (so frames without perturbation count as 35 dB and silent frames as -10 dB); the result is
    the mean of ``SNR_k``. ``(batch, time) -> (batch,)`` or ``(time,) -> ()``.
    """
    if isinstance(frame_length, bool) or not isinstance(frame_length, int) or frame_length < 1:
        raise ValueError(f"frame_length={frame_length!r}: must be an integer >= 1")
    if not min_db < max_db:
        raise ValueError(f"min_db={min_db!r} must be below max_db={max_db!r}")
    x64, a64, single = as_clip_pair(x, x_adv)
    n = x64.shape[-1]
    frame = min(frame_length, n)
    n_frames = n // frame
    xf = x64[:, : n_frames * frame].reshape(x64.shape[0], n_frames, frame)
    df = (a64 - x64)[:, : n_frames * frame].reshape(x64.shape[0], n_frames, frame)
    e_x = xf.pow(2).sum(-1)
    e_d = df.pow(2).sum(-1)
    frame_snr = 10.0 * (torch.log10(e_x) - torch.log10(e_d))
    frame_snr = torch.where(e_d == 0, torch.full_like(frame_snr, max_db), frame_snr)
    return per_clip(frame_snr.clamp(min_db, max_db).mean(-1), single)
