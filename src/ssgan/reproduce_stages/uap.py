"""The universal perturbations' stage: their settings per profile and their fit on a stratified
sample of the training clips."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssgan import distributed
from ssgan.attacks import make_attack
from ssgan.attacks.base import LearnedAttack
from ssgan.config import parse_key_values
from ssgan.data import ClipDataset
from ssgan.io import atomic_write_json
from ssgan.models.user_victim import open_victim
from ssgan.reproduce_stages.pipeline import Stage
from ssgan.reproduce_stages.profiles import reproduce_profile

if TYPE_CHECKING:
    from ssgan.models.user_victim import VictimSpec


def uap_stage(
    out: Path,
    method: str,
    *,
    victim_dir: Path,
    victim_checkpoint: str = "last",
    victim_spec: VictimSpec | None = None,
    profile: str,
    train: ClipDataset,
    device: str,
    seed: int,
    overrides: dict[str, tuple[str, ...]] | None = None,
) -> Stage:

    run_dir = out / method

    def run() -> None:
        import torch

        settings = uap_settings(profile, overrides or {})
        attack = make_attack(method, {k: str(v) for k, v in settings[method].items()})
        assert isinstance(attack, LearnedAttack)
        n_fit = int(settings["fit"]["clips"])
        fit_set = stratified_sample(train, n_fit, seed) if n_fit else train
        victim, _ = open_victim(victim_dir, device, checkpoint=victim_checkpoint, spec=victim_spec)
        clips = [c.to(device) for c in fit_set.waveforms()]
        labels = torch.tensor(fit_set.labels(), device=device)
        t0 = time.perf_counter()
        attack.fit(
            victim, clips, labels, generator=torch.Generator().manual_seed(seed), progress=True
        )
        # Every rank fits the same perturbation (the fit is seeded and single-process), so no
        # rank waits the length of a fit in a collective; rank 0 alone writes it.
        if distributed.is_main():
            attack.save(run_dir)
            atomic_write_json(
                run_dir / "fit.json", {"clips": len(fit_set), "seconds": time.perf_counter() - t0}
            )

    return Stage(f"fit {method} ({profile})", lambda: (run_dir / "attack.json").is_file(), run)


def uap_settings(profile: str, overrides: dict[str, tuple[str, ...]]) -> dict[str, dict[str, Any]]:
    """The ``profile``'s universal-perturbation settings (``REPRODUCE_PROFILES``) with
    ``--set uap-iterative.KEY=V`` / ``uap-penalty.KEY=V`` / ``uap-fit.clips=N`` applied
    (``overrides``: section -> items); ``ValueError`` names an unknown key. An attack's own keys
    are checked by the attack when it is built."""

    p = reproduce_profile(profile)
    settings: dict[str, dict[str, Any]] = {
        "uap-iterative": dict(p.uap_iterative),
        "uap-penalty": dict(p.uap_penalty),
        "fit": {"clips": p.uap_fit_clips},
    }
    for section, items in overrides.items():
        name = "fit" if section == "uap-fit" else section
        if name not in settings:
            raise ValueError(f"unknown settings section {section!r}")
        for key, value in parse_key_values(items).items():
            if name == "fit" and key != "clips":
                raise ValueError(f"uap-fit.{key}: unknown setting; known: clips")
            if name == "fit" and not value.isdigit():
                raise ValueError(f"uap-fit.clips={value!r}: expected a whole number")
            settings[name][key] = int(value) if name == "fit" else value
    return settings


def stratified_sample(ds: ClipDataset, n: int, seed: int) -> ClipDataset:
    """About ``n`` clips of ``ds``, each class in proportion to its share (seeded)."""
    if n >= len(ds):
        return ds
    import numpy as np

    labels = np.asarray(ds.labels())
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = max(1, round(n * len(members) / len(labels)))
        picked.extend(rng.permutation(members)[:k].tolist())
    return ds.subset(sorted(picked), f"{ds.name}/sample{len(picked)}")
