"""The SSGAN training loop's validation: the full any-length attack on whole held-out clips.

``ssgan.training.gan.train_gan`` takes its validation as a callable (``validate=``, a
``ssgan.training.gan.Validator``), so the training layer never imports the attack or the
evaluation; ``validate_generator`` is that callable, scored by the evaluation itself::

    from ssgan.gan_validation import validate_generator
    train_gan(config, victim, train, val, out_dir, validate=validate_generator)
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor, nn

from ssgan.attacks.ssgan import SSGANAttack
from ssgan.evaluation import evaluate_attack, evaluate_targeted
from ssgan.models.victim import victim_frozen
from ssgan.training.gan import victim_classes
from ssgan.training.gan_steps import GANState

__all__ = ["validate_generator"]


def validate_generator(
    state: GANState,
    victim: nn.Module,
    clips: list[Tensor],
    labels: list[int],
    *,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Attack whole held-out clips with the any-length SSGAN attack; ASR and MSNR.

    Scored by the evaluation itself (``ssgan.evaluation.evaluate_attack``, or
    ``evaluate_targeted`` for a targeted G: random targets, seed 0, the same at every
    validation), so a validation figure means what a test figure means: ``val/asr`` =
    ``N_success / N_right`` (targeted: sent to the target), ``val/msnr_db`` the mean SNR of the
    successful clips (paper eqs. 9-11), ``val/acc`` the clean accuracy, ``val/snr_db`` the mean
    SNR over all attacked clips.
    """
    if not clips:
        return {}
    cfg = state.config
    attack = SSGANAttack.from_generator(
        state.G, segment_seconds=cfg.segment_seconds, chunk_segments=cfg.chunk_segments
    )
    targeted = cfg.targeted or cfg.target_class is not None
    # Targets are drawn among all the victim's classes, not the ones the held-out clips hold
    # (asked of the victim only for a targeted run: an untargeted score needs no class count).
    n_classes = 0
    if targeted:
        n_classes = state.G.num_classes or cfg.n_classes or victim_classes(victim, clips[0])
    held_out = _HeldOut([c.to(device) for c in clips], list(labels), n_classes)
    state.G.eval()
    with victim_frozen(victim):
        if targeted:
            aim: str | int = "random" if cfg.target_class is None else int(cfg.target_class)
            # A G trained for one fixed class takes no target: it always aims at that class.
            aimed = attack if cfg.targeted else _fixed_aim(attack)
            result = evaluate_targeted(
                aimed, victim, held_out, target=aim, batch_size=cfg.val_batch_size
            )
            asr = result.summary["success_rate"]
        else:
            result = evaluate_attack(
                attack, victim, held_out, batch_size=cfg.val_batch_size, n_examples=0
            )
            asr = result.summary["asr"]
    snrs = [float(r["snr_db"]) for r in result.records if r["snr_db"] is not None]
    finite = [v for v in snrs if math.isfinite(v)]
    return {
        "val/acc": float(result.summary["acc"]),
        "val/asr": float(asr),
        "val/msnr_db": float(result.summary["msnr_db"]),
        "val/msnr_box_db": float(result.summary.get("msnr_box_db", math.nan)),
        "val/snr_db": sum(finite) / len(finite) if finite else math.nan,
        "val/clips": float(result.summary["n"]),
    }


def _fixed_aim(attack: Any) -> Any:
    def run(model: nn.Module, x: Tensor, y: Tensor, *, target: Tensor | None = None,
            generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
        return attack(model, x, y, generator=generator)

    return run


class _HeldOut:
    """The validation clips as the dataset protocol of ``ssgan.evaluation`` (nameless clips)."""

    def __init__(self, clips: list[Tensor], labels: list[int], n_classes: int) -> None:
        self._clips, self._labels = clips, labels
        self.clips = [SimpleNamespace(name=f"val{i}") for i in range(len(clips))]
        self.class_names = [str(i) for i in range(max(n_classes, max(labels, default=0) + 1))]

    def waveforms(self) -> list[Tensor]:
        return self._clips

    def labels(self) -> list[int]:
        return self._labels
