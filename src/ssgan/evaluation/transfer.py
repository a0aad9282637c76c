"""Transfer: do adversarial clips made against one victim fool another?

``evaluate_attack(..., transfer_victims={name: victim})`` classifies every clean and adversarial
clip also with each of those victims (``score_transfer``); records gain ``transfer: {name:
{clean_pred, adv_pred, correct, success}}`` and ``summarize_transfer`` counts them.

Definition (the paper's ASR, eq. 9, evaluated on the other victim): ``n_right`` = clips the
other victim classifies correctly when clean; ``n_success`` = those of them whose adversarial
version (made against the attacked victim) it misclassifies (or, targeted, assigns to the
target); ``asr = n_success / n_right``; ``msnr_db`` = mean SNR over those successes
(``msnr_box_db``: the same in [16]'s box convention, ``ssgan.metrics``). A clip the other victim
already gets wrong is never counted, whatever the attacked victim did with it. Scoring the
attacked victim itself gives its own ASR.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from ssgan.evaluation.decisions import Decision, decide, rates
from ssgan.metrics import msnr_db

__all__ = ["score_transfer", "summarize_transfer"]


def score_transfer(
    victims: Mapping[str, nn.Module], x: Tensor, x_adv: Tensor, y: Tensor, target: Tensor | None
) -> list[dict[str, Decision]]:
    """Per clip of the batch: ``{name: {clean_pred, adv_pred, correct, success}}``.

    The victims are called without gradient; their mode is the caller's business (eval).
    """
    out: list[dict[str, Decision]] = [{} for _ in range(x.shape[0])]
    for name, victim in victims.items():
        for k, decision in enumerate(decide(victim, x, x_adv, y, target)):
            out[k][name] = decision
    return out


def summarize_transfer(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{name: {n, n_right, n_success, acc, asr, msnr_db, msnr_box_db}}`` from records holding
    ``transfer`` (read back from JSON too: ``null`` SNRs count as nan)."""

    def num(v: Any) -> float:
        return math.nan if v is None else float(v)

    names: list[str] = []
    for r in records:
        names += [n for n in r.get("transfer", {}) if n not in names]
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        held = [r for r in records if name in r.get("transfer", {})]
        decisions = [r["transfer"][name] for r in held]
        success = [bool(d["success"]) for d in decisions]
        figures = rates(decisions)
        figures["msnr_db"] = msnr_db([num(r["snr_db"]) for r in held], success)
        figures["msnr_box_db"] = msnr_db([num(r["snr_box_db"]) for r in held], success)
        out[name] = figures
    return out
