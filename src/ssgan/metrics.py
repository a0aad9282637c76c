"""The figures ssgan reports, each defined here with its formula (SNR conventions: docs/snr.md).

Paper-comparable figures follow the SSGAN paper (section V.A.2.b), which takes its SNR from
Abdoli et al. 2019 ("Universal adversarial audio perturbations", arXiv:1908.03173):

- ``ACC = N_right / N`` (clip-level accuracy of the victim on clean clips);
- ``ASR = N_success / N_right`` (eq. 9), where ``N_right`` counts clips classified correctly and
  ``N_success`` those of them whose adversarial version is classified wrongly (untargeted);
- ``SNR(x_adv) = 20 log10(P(x) / P(delta))`` (eq. 10), ``P(v) = sqrt(sum_i v_i^2 / n)`` (eq. 11,
  the RMS), ``delta = x_adv - x``; ``MSNR`` = mean SNR over the successful examples.

Two SNR conventions (docs/snr.md). The *true* SNR (``snr_db``) is eq. 10 on the audio as it is:
what a listener hears. The *box* SNR (``snr_box_db``) is eq. 10 as [16]'s public code computes
it (repository sajabdoli/UAP, ``misc.py`` / ``UAP_validation.py``), on audio held in the box
``[0, 1]``: ``x01 = (x + 1) / 2``, ``delta01 = delta / 2``, so
``SNR_box = 20 log10(P(x + 1) / P(delta))``; the 0.5 offset dominates the signal's level, and on
ESC-10 the box figure reads 6.7-42.7 dB (median 18.2) above the true one. The paper's and [16]'s
figures are in the box convention; every record and summary carries both, each under its own
name (``snr_db`` / ``snr_box_db``, ``msnr_db`` / ``msnr_box_db``).

Beyond the paper: ASR after the adversarial audio is written as 16-bit PCM and read back
(``pcm16_roundtrip``), the segmental SNR and the log-spectral distance.

Waveforms are ``(batch, time)`` or ``(time,)`` float tensors in ``[-1, 1]``; per-clip functions
return ``(batch,)`` or a 0-d tensor accordingly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

# Hansen & Pellom (1998) clamp frame SNRs to this range so that silent frames (-inf) and frames
# without perturbation (+inf) do not dominate the average.
SEGMENTAL_SNR_MIN_DB = -10.0
SEGMENTAL_SNR_MAX_DB = 35.0


# ----------------------------------------------------------------------------- helpers


def _as_long(name: str, v: Tensor | list[int]) -> Tensor:
    t = torch.as_tensor(v)
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D (batch,), got shape {tuple(t.shape)}")
    if t.is_floating_point() and t.numel() > 0:  # [] is float by default
        raise ValueError(f"{name} must hold integer class indices, got dtype {t.dtype}")
    return t.long().cpu()


def _pair(x: Tensor, x_adv: Tensor) -> tuple[Tensor, Tensor, bool]:
    """Both as float64 ``(batch, time)``; also whether the input was a single ``(time,)`` clip."""
    if x.shape != x_adv.shape:
        raise ValueError(f"x and x_adv differ in shape: {tuple(x.shape)} vs {tuple(x_adv.shape)}")
    if x.dim() not in (1, 2) or x.shape[-1] == 0:
        raise ValueError(f"expected (time,) or (batch, time) with time > 0, got {tuple(x.shape)}")
    single = x.dim() == 1
    x64 = x.detach().double().reshape(-1, x.shape[-1])
    a64 = x_adv.detach().double().reshape(-1, x.shape[-1])
    return x64, a64, single


def _out(v: Tensor, single: bool) -> Tensor:
    return v[0] if single else v


def rms(v: Tensor) -> Tensor:
    """``P(v) = sqrt(sum_i v_i^2 / n)``, the RMS over the last axis (paper eq. 11).

    ``(..., time) -> (...)`` float64.
    """
    return v.double().pow(2).mean(dim=-1).sqrt()


# ----------------------------------------------------------------------------- decisions


def accuracy(pred: Tensor | list[int], y: Tensor | list[int]) -> float:
    """``ACC = N_right / N``: the fraction of clips whose predicted class equals the label.

    ``pred``, ``y``: ``(batch,)`` class indices. Returns ``nan`` for an empty batch.
    """
    p, t = _as_long("pred", pred), _as_long("y", y)
    if p.shape != t.shape:
        raise ValueError(f"pred and y differ in shape: {tuple(p.shape)} vs {tuple(t.shape)}")
    if p.numel() == 0:
        return math.nan
    return float((p == t).double().mean())


def success_mask(
    y: Tensor | list[int],
    clean_pred: Tensor | list[int],
    adv_pred: Tensor | list[int],
    *,
    target: Tensor | list[int] | None = None,
) -> Tensor:
    """Which clips count in ``N_success``: a bool ``(batch,)`` tensor.

    Untargeted (``target=None``): ``clean_pred == y and adv_pred != y``. Targeted:
    ``clean_pred == y and adv_pred == target``. A clip the victim already gets wrong is never a
    success: the paper counts successes only among the ``N_right`` correctly classified clips.
    """
    t, c, a = _as_long("y", y), _as_long("clean_pred", clean_pred), _as_long("adv_pred", adv_pred)
    if not (t.shape == c.shape == a.shape):
        raise ValueError(
            f"y, clean_pred, adv_pred differ in shape: {tuple(t.shape)}, {tuple(c.shape)}, "
            f"{tuple(a.shape)}"
        )
    right = c == t
    if target is None:
        return right & (a != t)
    tg = _as_long("target", target)
    if tg.shape != t.shape:
        raise ValueError(f"target has shape {tuple(tg.shape)}, expected {tuple(t.shape)}")
    return right & (a == tg)


def attack_success_rate(
    y: Tensor | list[int],
    clean_pred: Tensor | list[int],
    adv_pred: Tensor | list[int],
    *,
    target: Tensor | list[int] | None = None,
) -> float:
    """``ASR = N_success / N_right`` (paper eq. 9).

    ``N_right`` = clips with ``clean_pred == y``; ``N_success`` = those of them with
    ``adv_pred != y`` (untargeted) or ``adv_pred == target`` (targeted, ``target`` given), see
    ``success_mask``. All arguments are ``(batch,)`` class indices.

    Edge case: when ``N_right = 0`` (no clip classified correctly, or an empty batch) the rate is
    undefined and ``nan`` is returned, never 0, so that it cannot be mistaken for "the attack
    failed everywhere". Note Abdoli et al. count ASR over all clips; we use the paper's N_right.
    """
    n_right = int((_as_long("clean_pred", clean_pred) == _as_long("y", y)).sum())
    n_success = int(success_mask(y, clean_pred, adv_pred, target=target).sum())
    return math.nan if n_right == 0 else n_success / n_right


# ----------------------------------------------------------------------------- distortion


def snr_db(x: Tensor, x_adv: Tensor) -> Tensor:
    """``SNR = 20 log10(P(x) / P(delta))`` in dB per clip (paper eq. 10), ``delta = x_adv - x``.

    ``P`` is the RMS over the whole clip (eq. 11). ``(batch, time) -> (batch,)`` float64, or
    ``(time,) -> ()``. ``delta = 0`` gives ``+inf`` (no perturbation at all); a silent ``x`` with
    a non-zero ``delta`` gives ``-inf``. ``delta = 0.1 x`` gives exactly 20 dB.
    """
    x64, a64, single = _pair(x, x_adv)
    p_x = rms(x64)
    p_d = rms(a64 - x64)
    with torch.no_grad():
        out = 20.0 * (torch.log10(p_x) - torch.log10(p_d))
    # 0/0 (silent x, no perturbation) is still "no perturbation": +inf rather than nan.
    out = torch.where(p_d == 0, torch.full_like(out, math.inf), out)
    return _out(out, single)


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
    x64, a64, single = _pair(x, x_adv)
    p_x = rms(x64 + 1.0)
    p_d = rms(a64 - x64)
    with torch.no_grad():
        out = 20.0 * (torch.log10(p_x) - torch.log10(p_d))
    out = torch.where(p_d == 0, torch.full_like(out, math.inf), out)
    return _out(out, single)


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
    x64, a64, single = _pair(x, x_adv)
    n = x64.shape[-1]
    frame = min(frame_length, n)
    n_frames = n // frame
    xf = x64[:, : n_frames * frame].reshape(x64.shape[0], n_frames, frame)
    df = (a64 - x64)[:, : n_frames * frame].reshape(x64.shape[0], n_frames, frame)
    e_x = xf.pow(2).sum(-1)
    e_d = df.pow(2).sum(-1)
    frame_snr = 10.0 * (torch.log10(e_x) - torch.log10(e_d))
    frame_snr = torch.where(e_d == 0, torch.full_like(frame_snr, max_db), frame_snr)
    return _out(frame_snr.clamp(min_db, max_db).mean(-1), single)


def log_spectral_distance_db(
    x: Tensor,
    x_adv: Tensor,
    *,
    n_fft: int = 512,
    hop_length: int = 128,
    floor_db: float = -100.0,
) -> Tensor:
    """Log-spectral distance in dB per clip (Gray & Markel 1976, "Distance measures for speech
    processing").

    Power spectra from an STFT with a periodic Hann window of ``n_fft`` samples (default 512 =
    32 ms at 16 kHz) and hop ``hop_length`` (128 = 8 ms), centred with reflect padding (zero
    padding for clips shorter than ``n_fft // 2 + 1``). Per frame ``t``:
    ``LSD_t = sqrt(mean_f (10 log10 P_x(t,f) - 10 log10 P_adv(t,f))^2)``, with both log powers
    floored at ``floor_db`` (-100 dB) so that digital silence stays finite. The result is the
    mean of ``LSD_t`` over frames; 0 for ``x_adv == x``. ``(batch, time) -> (batch,)`` or
    ``(time,) -> ()``.
    """
    for name, v in (("n_fft", n_fft), ("hop_length", hop_length)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}={v!r}: must be an integer >= 1")
    x64, a64, single = _pair(x, x_adv)
    window = torch.hann_window(n_fft, dtype=torch.float64)
    mode = "reflect" if x64.shape[-1] > n_fft // 2 else "constant"

    def log_power(v: Tensor) -> Tensor:
        spec = torch.stft(
            v, n_fft, hop_length, window=window, center=True, pad_mode=mode, return_complex=True
        )
        return 10.0 * torch.log10(spec.abs().pow(2).clamp_min(10.0 ** (floor_db / 10.0)))

    diff = log_power(x64) - log_power(a64)  # (batch, freq, frames)
    return _out(diff.pow(2).mean(dim=1).sqrt().mean(dim=-1), single)


def pcm16_roundtrip(x: Tensor) -> Tensor:
    """``x`` quantised exactly as writing a 16-bit PCM WAV with soundfile and reading it back does.

    libsndfile (>= 1.1, bundled with soundfile) converts float to 16 bit by scaling to 32 bits
    and shifting: ``q = round(x * 2^31) >> 16`` (round half to even, an arithmetic shift, i.e.
    floor), saturating to ``[-32768, 32767]``; reading back gives ``q / 32768``. So values are
    floored to the 2^-15 grid, not rounded, and ``+1.0`` becomes ``32767 / 32768``. Any shape;
    returns the input's dtype and device. Not differentiable (it is a measurement).
    """
    with torch.no_grad():
        scaled = torch.round(x.detach().double() * 2.0**31)
        scaled = scaled.clamp(-(2.0**31), 2.0**31 - 1)
        q = torch.div(scaled, 65536.0, rounding_mode="floor").clamp(-32768, 32767)
        return (q / 32768.0).to(x.dtype)


# ----------------------------------------------------------------------------- timing


def _synchronize(device: torch.device) -> None:
    # CUDA kernels run asynchronously: without a sync the timer would measure the launch only.
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize(device)


class Timer:
    """Wall time of a block, synchronising the device first and last so GPU time is included.

    ::

        with Timer(device) as t:
            x_adv = attack(model, x, y)
        t.seconds
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.seconds = math.nan
        self._start = 0.0

    def __enter__(self) -> Timer:
        _synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        _synchronize(self.device)
        self.seconds = time.perf_counter() - self._start


@dataclass
class TimePerExample:
    """Accumulates ``(seconds, n_examples)`` of batches; the first ``warmup_batches`` are excluded.

    ``seconds_per_example = sum(seconds) / sum(n_examples)`` over the batches after the warm-up
    (the first call pays for lazy initialisation, allocator growth and kernel selection). When
    there are no batches after the warm-up, all batches are used and ``warm`` is False.
    """

    device: str = "cpu"
    warmup_batches: int = 1
    batches: list[tuple[float, int]] = field(default_factory=list)

    def add(self, seconds: float, n_examples: int) -> None:
        self.batches.append((float(seconds), int(n_examples)))

    @property
    def warm(self) -> bool:
        return len(self.batches) > self.warmup_batches

    @property
    def seconds_per_example(self) -> float:
        used = self.batches[self.warmup_batches :] if self.warm else self.batches
        n = sum(k for _, k in used)
        return math.nan if n == 0 else sum(s for s, _ in used) / n

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds_per_example": self.seconds_per_example,
            "device": self.device,
            "warm": self.warm,
            "timed_batches": len(self.batches),
            "warmup_batches": min(self.warmup_batches, len(self.batches)) if self.warm else 0,
        }


def time_per_example(
    fn: Callable[[], object],
    n_examples: int,
    *,
    device: torch.device | str = "cpu",
    warmup: int = 1,
    repeats: int = 3,
) -> float:
    """Seconds per example of ``fn()`` (which processes ``n_examples``), warm and averaged.

    Calls ``fn`` ``warmup`` times untimed, then ``repeats`` times timed with ``Timer(device)``;
    returns ``total_seconds / (repeats * n_examples)``.
    """
    if n_examples < 1:
        raise ValueError(f"n_examples={n_examples!r}: must be >= 1")
    if warmup < 0 or repeats < 1:
        raise ValueError(f"warmup={warmup!r} must be >= 0 and repeats={repeats!r} >= 1")
    for _ in range(warmup):
        fn()
    with Timer(device) as t:
        for _ in range(repeats):
            fn()
    return t.seconds / (repeats * n_examples)


__all__ = [
    "SEGMENTAL_SNR_MAX_DB",
    "SEGMENTAL_SNR_MIN_DB",
    "SNR_CONVENTIONS",
    "TimePerExample",
    "Timer",
    "accuracy",
    "attack_success_rate",
    "check_convention",
    "log_spectral_distance_db",
    "msnr_db",
    "pcm16_roundtrip",
    "rms",
    "segmental_snr_db",
    "snr_box_db",
    "snr_db",
    "snr_in",
    "snr_reference",
    "success_mask",
    "time_per_example",
]
