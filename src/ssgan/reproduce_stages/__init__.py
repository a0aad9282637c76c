"""The resumable pipeline behind ``ssgan reproduce``: stages, and the stages every table uses.

A ``Stage`` is one step (train the victim, train a generator, fit a universal perturbation,
evaluate an attack) that writes into its own folder of the output and is *done* when its final
file exists (``DONE`` for trainings, ``summary.json`` for evaluations, ``attack.json`` for fitted
universal perturbations), so a rerun skips finished stages and resumes an interrupted training
from its last checkpoint. ``prepare_stages`` loads the split and adds the victim stage;
``run_stages`` runs what is left. Under torchrun rank 0 decides what is done and writes, the
trainings are data-parallel, the evaluations sharded (docs/distributed.md).

One module a part: ``pipeline`` (``Stage``, ``run_stages``), ``training`` (victim and generator
stages), ``uap`` (the universal perturbations' settings and fit), ``evaluate`` (an attack's
evaluation), ``options`` (``ReproduceOptions``, ``prepare_stages``).

The tables themselves (which stages, which rows) are in ``ssgan.reproduce`` (Tables II and III),
``ssgan.reproduce_robustness`` and ``ssgan.reproduce_transfer``.
"""

from __future__ import annotations

from ssgan.reproduce_stages.evaluate import eval_stage
from ssgan.reproduce_stages.options import (
    TABLE2_SEGMENTS,
    TABLE3_METHODS,
    ReproduceOptions,
    prepare_stages,
)
from ssgan.reproduce_stages.pipeline import Reporter, Stage, log, on_main_write, run_stages
from ssgan.reproduce_stages.profiles import (
    PROFILES,
    REPRODUCE_PROFILES,
    ReproduceProfile,
    reproduce_profile,
)
from ssgan.reproduce_stages.training import gan_stage, victim_stage
from ssgan.reproduce_stages.uap import stratified_sample, uap_settings, uap_stage

__all__ = [
    "PROFILES",
    "REPRODUCE_PROFILES",
    "TABLE2_SEGMENTS",
    "TABLE3_METHODS",
    "Reporter",
    "ReproduceOptions",
    "ReproduceProfile",
    "Stage",
    "eval_stage",
    "gan_stage",
    "log",
    "on_main_write",
    "prepare_stages",
    "reproduce_profile",
    "run_stages",
    "stratified_sample",
    "uap_settings",
    "uap_stage",
    "victim_stage",
]
