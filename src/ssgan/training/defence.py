"""Adversarial fine-tuning: train a victim on a mix of clean and adversarial crops made on the fly.

The defence the SSGAN paper names as a use of its generator and the classic one of Madry et al.
(ICLR 2018): each training batch of ``ssgan.training.victim`` has a share ``fraction`` of its
crops replaced by adversarial versions made against the *current* network, before the SGD step.
The adversary is either

- an SSGAN generator (an ``ssgan train gan`` run): one forward pass per crop, cheap, but fixed:
  it was trained against the original victim (re-train a generator against the defended victim
  to measure what an adaptive attacker does), or
- a registered per-sample attack (``pgd``, ``fgsm``, ``cw``...), which adapts at every step and
  costs ``steps`` forward + backward passes per crop.

Only the victim learns: the adversary's weights are frozen and its output detached, and the
attack's bookkeeping (``ssgan.attacks.base``) restores the network's train mode after each call.
Random draws come from the trainer's generator, so a resumed run repeats them.

``fine_tune_victim`` writes ``adversarial.json`` beside the run's checkpoints (what the defence
was trained against). Use the ``last`` checkpoint of a defended run in tables: ``best`` is
chosen on the test split. ``ssgan.attacks.adversary.load_adversary`` builds an ``Adversary``
from the command line's spec (it builds attacks, so it lives in the attacks layer).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ssgan.errors import CheckpointError
from ssgan.io import atomic_write_json, load_checkpoint
from ssgan.training.victim import ClipSource, VictimTrainConfig, train_victim

__all__ = ["Adversary", "fine_tune_victim", "load_victim_weights"]


@dataclasses.dataclass
class Adversary:
    """Replaces a random ``fraction`` of a training batch by ``attack``'s adversarial crops.

    Called as ``adversary(net, x, y, generator)`` with crops ``x (batch, window)`` and labels
    ``y (batch,)`` on the network's device; returns the mixed batch (same shape).
    """

    attack: Any  # called as attack(net, x, y, generator=g) -> x_adv
    fraction: float = 0.5
    name: str = ""

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction={self.fraction!r}: must be in (0, 1]")

    def __call__(self, net: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        n_adv = max(1, round(self.fraction * x.shape[0]))
        rows = torch.randperm(x.shape[0], generator=generator)[:n_adv].to(x.device)
        # The trainer's random gain can lift a crop above 1, outside what an attack accepts:
        # attack it at peak 1 and scale back (the crop keeps its level, the attack its SNR).
        peak = x[rows].abs().amax(dim=1, keepdim=True).clamp_min(1.0)
        x_adv = self.attack(net, x[rows] / peak, y[rows], generator=generator).detach() * peak
        return x.index_copy(0, rows, x_adv.to(x.dtype))


def load_victim_weights(net: nn.Module, run_dir: str | Path, checkpoint: str = "last") -> None:
    """Load a victim run's window-network weights into ``net`` (the start of fine-tuning)."""
    tensors, _, _ = load_checkpoint(run_dir, checkpoint)
    weights = {k[len("net.") :]: v for k, v in tensors.items() if k.startswith("net.")}
    try:
        net.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{run_dir}/{checkpoint}: weights do not fit ({first})") from None


def fine_tune_victim(
    config: VictimTrainConfig,
    train_ds: ClipSource,
    test_ds: ClipSource,
    out_dir: str | Path,
    adversary: Adversary | None,
    *,
    init_from: str | Path | None = None,
    resume: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = True,
    dataset_info: dict[str, Any] | None = None,
    stop_after_epoch: int | None = None,
) -> dict[str, Any]:
    """``train_victim`` with ``adversary`` mixed into every batch, from ``init_from``'s ``last``
    weights when given (fine-tuning) or from scratch; returns ``train_victim``'s summary.
    ``adversary=None`` fine-tunes on clean crops only: the control that separates what the
    adversarial crops do from what more training does. ``out_dir/adversarial.json`` records
    which (``"adversarial": null, "fraction": 0`` for the control)."""
    out = Path(out_dir)
    attack_config = getattr(None if adversary is None else adversary.attack, "config", None)
    record = {
        "adversarial": None if adversary is None else adversary.name,
        "fraction": 0.0 if adversary is None else adversary.fraction,
        "attack_config": attack_config() if attack_config is not None else {},
        "init_from": None if init_from is None else str(init_from),
    }
    summary = train_victim(
        config, train_ds, test_ds, out, resume=resume, device=device, progress=progress,
        dataset_info=dataset_info, stop_after_epoch=stop_after_epoch, adversary=adversary,
        init=None if init_from is None else lambda net: load_victim_weights(net, init_from),
    )  # fmt: skip
    atomic_write_json(out / "adversarial.json", record)
    return summary
