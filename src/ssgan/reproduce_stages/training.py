"""The training stages: the victim and SSGAN generators, each resumed from its last checkpoint
when a rerun finds one."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssgan import distributed
from ssgan.config import apply_overrides
from ssgan.data import ClipDataset
from ssgan.gan_validation import validate_generator
from ssgan.io import atomic_write_text
from ssgan.models.user_victim import open_victim
from ssgan.reproduce_stages.pipeline import Stage, resume_or_clear
from ssgan.training.gan import PROFILES as GAN_PROFILES
from ssgan.training.gan import train_gan
from ssgan.training.victim import get_profile, train_victim

if TYPE_CHECKING:
    from ssgan.models.user_victim import VictimSpec


def victim_stage(
    out: Path,
    *,
    model: str,
    profile: str,
    train: ClipDataset,
    test: ClipDataset,
    info: dict[str, Any],
    device: str,
    overrides: Sequence[str],
) -> Stage:

    run_dir = out / "victim"

    def run() -> None:

        config = apply_overrides(get_profile(profile, model), list(overrides))
        config.validate()
        resume = distributed.on_main(lambda: resume_or_clear(run_dir))
        train_victim(
            config,
            train,
            test,
            run_dir,
            resume=resume,
            device=device,
            progress=True,
            dataset_info=info,
        )
        if distributed.is_main():
            atomic_write_text(run_dir / "DONE", "")

    return Stage(f"train victim {model} ({profile})", lambda: (run_dir / "DONE").is_file(), run)


def gan_stage(
    out: Path,
    name: str,
    *,
    victim_dir: Path,
    victim_checkpoint: str = "last",
    victim_spec: VictimSpec | None = None,
    profile: str,
    segment_seconds: float,
    train: ClipDataset,
    val: ClipDataset,
    device: str,
    overrides: Sequence[str],
    info: dict[str, Any],
) -> Stage:

    run_dir = out / name

    def run() -> None:

        config = dataclasses.replace(GAN_PROFILES[profile], segment_seconds=segment_seconds)
        config = apply_overrides(config, list(overrides))
        victim, meta = open_victim(
            victim_dir, device, checkpoint=victim_checkpoint, spec=victim_spec
        )
        resume = distributed.on_main(lambda: resume_or_clear(run_dir))
        extra = {**info, "victim": str(victim_dir), "class_names": meta.get("class_names")}
        train_gan(
            config,
            victim,
            train,
            val,
            run_dir,
            resume=resume,
            device=device,
            progress=True,
            extra_meta=extra,
            validate=validate_generator,
        )
        if distributed.is_main():
            atomic_write_text(run_dir / "DONE", "")

    return Stage(
        f"train SSGAN t1={segment_seconds:g}s ({profile})",
        lambda: (run_dir / "DONE").is_file(),
        run,
    )
