"""The adversary of adversarial fine-tuning (``ssgan train victim --adversarial``), built from
the command line's spec: an SSGAN generator run or a registered per-sample attack.

``Adversary`` (the batch mixing) and ``fine_tune_victim`` live in ``ssgan.training.defence``;
building the attack belongs here, in the attacks layer, so training never imports upwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ssgan.attacks import ATTACKS, LearnedAttack, make_attack
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.training.defence import Adversary

__all__ = ["load_adversary"]


def load_adversary(
    spec: str,
    *,
    attack_args: Sequence[str] = (),
    fraction: float = 0.5,
    device: str | torch.device = "cpu",
) -> Adversary:
    """The adversary of ``spec``: an ``ssgan train gan`` run directory (its ``last`` generator)
    or a registered attack name with ``key=value`` settings (``ValueError`` for anything else,
    and for learned attacks other than SSGAN, which need a fitted state)."""

    if Path(spec).is_dir():
        if attack_args:
            raise ValueError("attack settings are for a named attack, not a generator run")
        attack: Any = SSGANAttack.from_run(spec, checkpoint="last", device=device)
        for p in attack.generator.parameters():
            p.requires_grad_(False)
    elif spec in ATTACKS and spec != "ssgan":
        attack = make_attack(spec, list(attack_args))
        if isinstance(attack, LearnedAttack):
            raise ValueError(f"{spec!r} is a learned attack: pass a generator run instead")
    else:
        known = ", ".join(sorted(k for k in ATTACKS if k != "ssgan"))
        raise ValueError(f"adversarial={spec!r}: not a generator run directory nor one of {known}")
    return Adversary(attack, fraction=fraction, name=spec)
