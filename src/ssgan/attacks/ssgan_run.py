"""The bridge between ``SSGANAttack`` and ``ssgan.training.gan``'s runs: the training config an
attack's ``fit`` uses, and the generator a run's checkpoint holds.

``SSGANAttack.fit`` and ``SSGANAttack.from_run`` call these; users call those.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssgan.errors import CheckpointError
from ssgan.io import load_checkpoint, unflatten_state_dict
from ssgan.models.generators.spec import GeneratorSpec
from ssgan.pretrained import resolve_run
from ssgan.training.gan_checkpoint import GAN_KIND

if TYPE_CHECKING:
    from ssgan.attacks.ssgan import SSGANAttack
    from ssgan.training.gan_config import GANTrainConfig

__all__ = ["GAN_KIND", "attack_from_run", "train_config"]


def train_config(attack: SSGANAttack, seed: int) -> GANTrainConfig:
    """The ``attack.profile`` config with the attack's t1 and generator shape."""
    from ssgan.training.gan import PROFILES

    if attack.profile not in PROFILES:
        raise ValueError(f"profile={attack.profile!r}: expected one of {', '.join(PROFILES)}")
    config = dataclasses.replace(
        PROFILES[attack.profile].with_generator(attack.spec),
        segment_seconds=attack.segment_seconds,
        seed=seed,
    )
    if attack.epochs is not None:
        config = dataclasses.replace(config, epochs=attack.epochs)
    return config


def attack_from_run(
    cls: type[SSGANAttack],
    run_dir: str | Path,
    checkpoint: str,
    segment_seconds: float | None,
    options: dict[str, Any],
) -> SSGANAttack:
    """``cls`` built with the generator shape and weights of ``run_dir/checkpoint`` and the
    attack-time ``options``; ``CheckpointError`` naming the file when that cannot be done.
    ``run_dir`` may name a shipped generator, ``pretrained:NAME`` (``ssgan.pretrained``)."""
    run_dir = resolve_run(run_dir)
    tensors, meta, _ = load_checkpoint(run_dir, checkpoint)
    where = Path(run_dir) / f"{checkpoint}.json"
    if meta.get("kind") != GAN_KIND:
        raise CheckpointError(
            f"{where}: not an SSGAN checkpoint (kind={meta.get('kind')!r}, expected {GAN_KIND!r})"
        )
    shape = meta.get("generator")
    if not isinstance(shape, dict) or "segment_seconds" not in meta:
        raise CheckpointError(f"{where}: metadata lacks the generator shape or segment_seconds")
    t1 = float(meta["segment_seconds"] if segment_seconds is None else segment_seconds)
    try:
        # runs written before "output" existed had the paper's tanh output
        spec = GeneratorSpec.from_dict({"output": "tanh", **shape})
        attack = cls(segment_seconds=t1, spec=spec, **options)
        attack.generator.load_state_dict(unflatten_state_dict(tensors, "G"), strict=True)
    except (TypeError, ValueError, RuntimeError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{where}: cannot rebuild the generator ({first})") from None
    return attack
