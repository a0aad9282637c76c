"""Targeted evaluation: every clip aimed at a chosen class; success per (true, target).

``evaluate_attack(attack, victim, dataset, target="random")`` (``ssgan.evaluation.loop``) picks
one target per clip (``TargetPlan``: ``"random"``, ``"least-likely"`` or a fixed class, as
``ssgan.targets`` defines them), calls ``attack(victim, x, y, target=t)`` and records whether
the victim then outputs the target.

Definitions (the paper's eqs. 9-11 with the targeted success of its eq. 1):

- ``n_right``: attacked clips the victim classifies correctly (clean);
- ``n_success``: those of them whose adversarial version the victim assigns to the target
  (``n_success_pcm16``: after a 16-bit PCM round trip);
- ``success_rate = n_success / n_right`` (``success_rate_pcm16`` likewise); ``msnr_db`` = mean
  SNR over the successes (``msnr_box_db``: the same in [16]'s box convention, ``ssgan.metrics``);
- ``untargeted_asr``: the share of the ``n_right`` clips whose decision changed at all;
- ``matrix``: for each (true class i, target class j) the same rate over the clips of class i
  aimed at j (``null`` where no such right clip was attacked), with the counts beside it.

With a fixed target class, clips of that class cannot be aimed at it and are skipped
(``n_skipped``). Records hold the untargeted evaluation's fields (``success`` and
``success_pcm16`` meaning "sent to the target") plus ``target`` and ``changed``; the report is
``targeted.md`` (the matrix table) and ``targeted_matrix.png`` (its heat map).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ssgan.targets import choose_targets, fixed_target_keep

__all__ = [
    "TargetPlan",
    "summarize_targeted",
]


@dataclass(frozen=True)
class TargetPlan:
    """Which clips a targeted evaluation attacks and the class each is aimed at.

    Random targets are drawn once for all the attacked clips, from their own generator seeded
    with the run's seed, so a clip's target depends neither on the batches nor on how many
    torchrun processes share them: a sharded evaluation aims every clip as one process does.
    """

    mode: str | int
    n_classes: int
    attacked: list[int]  # dataset indices, in order
    drawn: dict[int, int]  # dataset index -> random target ("random" mode only)

    @classmethod
    def plan(cls, mode: str | int, labels: Sequence[int], n_classes: int, seed: int) -> TargetPlan:
        y = torch.tensor(list(labels), dtype=torch.long)
        if isinstance(mode, int) and not isinstance(mode, bool):
            keep = fixed_target_keep(y, mode)
            attacked = [i for i, ok in enumerate(keep.tolist()) if ok]
        else:
            attacked = list(range(len(labels)))
        drawn: dict[int, int] = {}
        if mode == "random" and attacked:
            generator = torch.Generator().manual_seed(seed)
            targets = choose_targets("random", y[attacked], n_classes=n_classes,
                                     generator=generator)  # fmt: skip
            drawn = dict(zip(attacked, targets.tolist(), strict=True))
        return cls(mode=mode, n_classes=n_classes, attacked=attacked, drawn=drawn)

    def targets(self, batch: Sequence[int], y: Tensor, clean_logits: Tensor) -> Tensor:
        """The targets ``(batch,)`` of the clips ``batch`` (dataset indices; labels ``y``)."""
        if self.mode == "random":
            return torch.tensor([self.drawn[i] for i in batch], device=y.device)
        return choose_targets(self.mode, y, n_classes=self.n_classes, logits=clean_logits)

    def mode_name(self, class_names: Sequence[str]) -> str:
        """The summary's ``target_mode``: the mode, or the fixed class's name."""
        return self.mode if isinstance(self.mode, str) else class_names[self.mode]


def summarize_targeted(records: Sequence[dict[str, Any]], n_classes: int) -> dict[str, Any]:
    """The summary and the (true x target) matrix of the module docstring from ``records``."""
    right = [r for r in records if r["correct"]]
    ok = [r for r in right if r["success"]]
    n_ok_pcm16 = sum(bool(r["success_pcm16"]) for r in right)

    def mean_over_ok(key: str) -> float:
        vals = [float(r[key]) for r in ok if r.get(key) is not None]
        finite = [v for v in vals if math.isfinite(v)]
        return sum(finite) / len(finite) if finite else math.nan

    n_right = [[0] * n_classes for _ in range(n_classes)]
    n_ok = [[0] * n_classes for _ in range(n_classes)]
    for r in right:
        n_right[r["label"]][r["target"]] += 1
        n_ok[r["label"]][r["target"]] += int(bool(r["success"]))
    rates = [[n_ok[i][j] / n_right[i][j] if n_right[i][j] else None for j in range(n_classes)]
             for i in range(n_classes)]  # fmt: skip
    return {
        "n": len(records),
        "n_right": len(right),
        "n_success": len(ok),
        "n_success_pcm16": n_ok_pcm16,
        "acc": len(right) / len(records) if records else math.nan,
        "success_rate": len(ok) / len(right) if right else math.nan,
        "success_rate_pcm16": n_ok_pcm16 / len(right) if right else math.nan,
        "untargeted_asr": (
            sum(bool(r["changed"]) for r in right) / len(right) if right else math.nan
        ),
        "msnr_db": mean_over_ok("snr_db"),
        "msnr_box_db": mean_over_ok("snr_box_db"),
        "matrix": {"success_rate": rates, "n_right": n_right, "n_success": n_ok},
    }
