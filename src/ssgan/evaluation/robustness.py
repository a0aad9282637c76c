"""Scoring adversarial clips after channel transforms (``ssgan evaluate --transform ...``).

For each transform ``T`` the victim classifies ``T(x)`` and ``T(x_adv)`` with the *same* random
draw (one generator seeded from the run's seed, the transform's spec and the batch, created
afresh for each of the two calls), so that a noise realisation, gain, shift or room is shared by
the clean and the adversarial clip and only the perturbation differs. Then, per transform:

- ``correct``: the victim still gets the transformed clean clip right;
- ``success``: it does, and the transformed adversarial clip is misclassified (untargeted) or
  assigned to the target (targeted), as ``ssgan.evaluation.decisions`` defines it;
- ``acc = n_right / n`` and ``asr = n_success / n_right`` (the paper's eq. 9, counted on the
  clips the transform itself does not already break; the targeted success rate for a targeted
  evaluation);
- ``kept = asr / asr_clean``: the share of the attack's success the transform leaves it.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ssgan.evaluation.decisions import Decision, decide, rates
from ssgan.transforms import Transform, parse_transforms

__all__ = ["resolve_transforms", "score_transforms", "summarize_transforms", "transform_generator"]


def resolve_transforms(items: Sequence[str | Transform]) -> list[Transform]:
    """Parsed transforms, each spec once (``ValueError`` for a bad spec or a repeated one)."""
    transforms = parse_transforms(items)
    specs = [t.spec for t in transforms]
    repeated = sorted({s for s in specs if specs.count(s) > 1})
    if repeated:
        raise ValueError(f"transform given twice: {', '.join(repeated)}")
    return transforms


def transform_generator(seed: int, spec: str, first_index: int) -> torch.Generator:
    """The generator of one transform on one batch (identified by its first clip's index).

    Independent of the batch order and of the other transforms, so adding a transform to an
    evaluation does not change another's numbers.
    """
    mixed = (seed * 1_000_003 + zlib.crc32(spec.encode()) * 65_537 + first_index) % 2**63
    return torch.Generator().manual_seed(mixed)


def score_transforms(
    victim: nn.Module,
    x: Tensor,
    x_adv: Tensor,
    y: Tensor,
    transforms: Sequence[Transform],
    *,
    seed: int,
    first_index: int,
    target: Tensor | None = None,
) -> list[dict[str, Decision]]:
    """Per clip of the batch: ``{spec: {clean_pred, adv_pred, correct, success}}``.

    ``x``, ``x_adv``: ``(batch, time)`` on the victim's device; ``y``: labels ``(batch,)``;
    ``target``: the targets ``(batch,)`` of a targeted attack, None for an untargeted one.
    The victim is called without gradient; its mode is the caller's business (eval).
    """
    out: list[dict[str, Decision]] = [{} for _ in range(x.shape[0])]
    for t in transforms:
        with torch.no_grad():
            clean = t(x, generator=transform_generator(seed, t.spec, first_index))
            adv = t(x_adv, generator=transform_generator(seed, t.spec, first_index))
        for k, decision in enumerate(decide(victim, clean, adv, y, target)):
            out[k][t.spec] = decision
    return out


def summarize_transforms(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{spec: {n, n_right, n_success, acc, asr, kept}}`` from records holding ``transforms``.

    ``kept`` divides by the untransformed ASR of the same records (nan when either is undefined).
    """
    asr0 = rates(records)["asr"]
    specs: list[str] = []
    for r in records:
        specs += [s for s in r.get("transforms", {}) if s not in specs]
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        figures = rates([r["transforms"][spec] for r in records if spec in r.get("transforms", {})])
        asr = figures["asr"]
        figures["kept"] = asr / asr0 if asr0 and not math.isnan(asr0) else math.nan
        out[spec] = figures
    return out
