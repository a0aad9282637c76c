"""Scoring adversarial clips after channel transforms (``ssgan evaluate --transform ...``).

For each transform ``T`` the victim classifies ``T(x)`` and ``T(x_adv)`` with the *same* random
draw (one generator seeded from the run's seed, the transform's spec and the batch, created
afresh for each of the two calls), so that a noise realisation, gain, shift or room is shared by
the clean and the adversarial clip and only the perturbation differs. Then, per transform:

- ``correct``: the victim still gets the transformed clean clip right;
- ``success``: it does, and the transformed adversarial clip is misclassified (untargeted);
- ``acc = n_right / n`` and ``asr = n_success / n_right`` (the paper's eq. 9, counted on the
  clips the transform itself does not already break);
- ``kept = asr / asr_clean``: the share of the attack's success the transform leaves it.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

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
) -> list[dict[str, dict[str, Any]]]:
    """Per clip of the batch: ``{spec: {clean_pred, adv_pred, correct, success}}``.

    ``x``, ``x_adv``: ``(batch, time)`` on the victim's device; ``y``: labels ``(batch,)``.
    The victim is called without gradient; its mode is the caller's business (eval).
    """
    out: list[dict[str, dict[str, Any]]] = [{} for _ in range(x.shape[0])]
    for t in transforms:
        with torch.no_grad():
            clean = victim(t(x, generator=transform_generator(seed, t.spec, first_index)))
            adv = victim(t(x_adv, generator=transform_generator(seed, t.spec, first_index)))
        for k, (c, a, label) in enumerate(
            zip(clean.argmax(1).tolist(), adv.argmax(1).tolist(), y.tolist(), strict=True)
        ):
            out[k][t.spec] = {
                "clean_pred": c,
                "adv_pred": a,
                "correct": c == label,
                "success": c == label and a != label,
            }
    return out


def summarize_transforms(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{spec: {n, n_right, n_success, acc, asr, kept}}`` from records holding ``transforms``.

    ``kept`` divides by the untransformed ASR of the same records (nan when either is undefined).
    """
    n_right0 = sum(bool(r["correct"]) for r in records)
    asr0 = sum(bool(r["success"]) for r in records) / n_right0 if n_right0 else math.nan
    specs: list[str] = []
    for r in records:
        specs += [s for s in r.get("transforms", {}) if s not in specs]
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        rows = [r["transforms"][spec] for r in records if spec in r.get("transforms", {})]
        n_right = sum(bool(v["correct"]) for v in rows)
        n_success = sum(bool(v["success"]) for v in rows)
        asr = n_success / n_right if n_right else math.nan
        out[spec] = {
            "n": len(rows),
            "n_right": n_right,
            "n_success": n_success,
            "acc": n_right / len(rows) if rows else math.nan,
            "asr": asr,
            "kept": asr / asr0 if asr0 and not math.isnan(asr0) else math.nan,
        }
    return out
