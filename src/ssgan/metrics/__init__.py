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

The figures live one family a module: ``decisions`` (ACC, ASR), ``snr`` (the SNR conventions and
every SNR figure), ``spectral`` (LSD), ``pcm16`` (the 16-bit round trip) and ``timing``; every
public name is importable from ``ssgan.metrics``.
"""

from __future__ import annotations

from ssgan.metrics.decisions import accuracy, attack_success_rate, success_mask
from ssgan.metrics.pcm16 import pcm16_roundtrip
from ssgan.metrics.snr import (
    SEGMENTAL_SNR_MAX_DB,
    SEGMENTAL_SNR_MIN_DB,
    SNR_CONVENTIONS,
    check_convention,
    msnr_db,
    rms,
    segmental_snr_db,
    snr_box_db,
    snr_db,
    snr_in,
    snr_reference,
)
from ssgan.metrics.spectral import log_spectral_distance_db
from ssgan.metrics.timing import TimePerExample, Timer, time_per_example

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
