"""What ``ssgan reproduce`` does beside the trainings, per profile: one typed record each.

A reproduce profile names a victim profile and a GAN profile of the same name
(``training.victim_config``, ``training.gan_config``) and adds what only the tables need: how many
training clips the train columns score, the attack-time steps of the rows that query the victim,
the per-example attacks of the robustness table and the universal perturbations' fit.
``ssgan config show reproduce --profile P`` prints one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ReproduceProfile:
    """The table settings of one profile (the smoke profile is small settings, not other code)."""

    #: training clips the train-side columns are measured on (a stratified sample; 0 = all)
    train_clips_evaluated: int
    #: minimum-norm steps of Table II's "+ refine" row and of its DDN control
    refine_steps: int
    #: channels PGD + EOT draws per step in the robustness table
    eot_samples: int
    #: the robustness table's per-example attacks (the attacks' defaults where not set)
    pgd: Mapping[str, Any] = field(default_factory=dict)
    cw: Mapping[str, Any] = field(default_factory=dict)
    #: Abdoli et al.'s universal perturbations (``attacks.universal``) and their fit sample
    uap_iterative: Mapping[str, Any] = field(default_factory=dict)
    uap_penalty: Mapping[str, Any] = field(default_factory=dict)
    uap_fit_clips: int = 0  # 0 = every training clip


REPRODUCE_PROFILES: dict[str, ReproduceProfile] = {
    # Seconds: one clip per ESC-10 class scored on the train side, so that every row, the
    # attack-time searches included, runs in the smoke test.
    "smoke": ReproduceProfile(
        train_clips_evaluated=10,
        refine_steps=2,
        eot_samples=1,
        pgd={"steps": 2},
        cw={"steps": 3, "binary_search_steps": 1},
        uap_iterative={"max_passes": 1, "ddn_steps": 3},
        uap_penalty={"max_epochs": 2},
        uap_fit_clips=8,
    ),
    "demo": ReproduceProfile(
        train_clips_evaluated=0,
        refine_steps=5,
        eot_samples=2,
        pgd={"steps": 10},
        cw={"steps": 30, "binary_search_steps": 2},
        uap_iterative={"max_passes": 2, "ddn_steps": 20},
        uap_penalty={"max_epochs": 20},
        uap_fit_clips=40,
    ),
    # Attacking and scoring all 1,584 UrbanSound8K training clips three times (clean,
    # adversarial, PCM16) costs far more than a CPU budget: 200 clips, named in every caption.
    # One DDN step on a 4 s UrbanSound8K clip (10 crops, EnvNet-v2) is ~0.1 s on 2 cores, so the
    # universal perturbations are fitted on 50 clips to keep a fit within ~10 minutes.
    "cpu": ReproduceProfile(
        train_clips_evaluated=200,
        refine_steps=10,
        eot_samples=4,
        pgd={"steps": 20},
        cw={"steps": 100, "binary_search_steps": 3},
        uap_iterative={"max_passes": 2, "ddn_steps": 20},
        uap_penalty={"max_epochs": 20},
        uap_fit_clips=50,
    ),
    "paper": ReproduceProfile(
        train_clips_evaluated=0, refine_steps=10, eot_samples=8, pgd={"steps": 50}
    ),
}

PROFILES = tuple(REPRODUCE_PROFILES)


def reproduce_profile(name: str) -> ReproduceProfile:
    if name not in REPRODUCE_PROFILES:
        raise ValueError(f"profile={name!r}: expected one of {', '.join(REPRODUCE_PROFILES)}")
    return REPRODUCE_PROFILES[name]
