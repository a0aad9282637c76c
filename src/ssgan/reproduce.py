"""Reproduce the paper's Tables II and III: resumable pipelines of train / fit / evaluate stages.

Table II (EnvNet on ESC-50; on a machine with only ESC-10, ESC-10 with train folds 1-4 / test
fold 5): a victim, then one SSGAN per segment length ``t1`` in {0.8, 1.6, 3.2, 4.0} s, each
evaluated on the train and the test split (ACC, ASR, MSNR). Table III (EnvNet-v2 on
UrbanSound8K): a victim, SSGAN at 1.6 s, and Abdoli et al.'s Iterative and Penalty universal
perturbations, each on train and test (ACC, ASR, MSNR, time per example).

The stages themselves (resumable, data-parallel under torchrun) are in
``ssgan.reproduce_stages``; this module says which stages each table needs and writes the table.

Honesty rules built in: the SSGAN generator is validated on a held-out tenth of the *training*
clips (never on the test split), and the victim and generators used for the table are the
``last`` checkpoints, so no number is selected on the test data it reports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from ssgan.attacks import attack_class
from ssgan.attacks.base import LearnedAttack
from ssgan.attacks.ddn import DDN
from ssgan.attacks.noise import GaussianNoise
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.config import apply_overrides
from ssgan.paper import TABLE_II, TABLE_III
from ssgan.report.tables import write_table
from ssgan.reproduce_stages import (
    PROFILES,
    REPRODUCE_PROFILES,
    TABLE2_SEGMENTS,
    TABLE3_METHODS,
    Reporter,
    ReproduceOptions,
    Stage,
    eval_stage,
    gan_stage,
    on_main_write,
    prepare_stages,
    reproduce_profile,
    run_stages,
    stratified_sample,
    uap_settings,
    uap_stage,
)
from ssgan.training.gan import PROFILES as GAN_PROFILES

__all__ = [
    "PROFILES",
    "REPRODUCE_PROFILES",
    "TABLE2_SEGMENTS",
    "TABLE3_METHODS",
    "Reporter",
    "ReproduceOptions",
    "Stage",
    "eval_stage",
    "gan_stage",
    "prepare_stages",
    "reproduce_table2",
    "reproduce_table3",
    "run_stages",
    "uap_settings",
    "uap_stage",
    "write_table",
]

log = logging.getLogger(__name__)

#: Table II's rows per generator: query-free, then the attack-time steps that query the victim
#: (``SSGANAttack`` settings; ``None`` = the profile's ``refine_steps``).
ATTACK_TIME_ROWS: dict[str, dict[str, Any]] = {
    "": {},
    " + quietest": {"quietest": True},
    " + refine + quietest": {"refine_steps": None, "quietest": True},
}


def reproduce_table2(opts: ReproduceOptions, report: Reporter = log.info) -> Path:
    """Table II: SSGAN with each segment length against EnvNet; returns ``table2.md``."""

    train, test, gan_train, gan_val, info, stages, victim_dir = prepare_stages(opts, "envnet")
    n_eval = reproduce_profile(opts.profile).train_clips_evaluated
    train_eval = stratified_sample(train, n_eval, opts.seed) if n_eval else train
    info["n_train_evaluated"] = len(train_eval)
    rows = []
    for t1 in opts.segments:
        tag = f"ssgan_{t1:g}s"
        stages.append(
            gan_stage(
                opts.out,
                tag,
                victim_dir=victim_dir,
                victim_checkpoint=opts.victim_checkpoint,
                victim_spec=opts.victim_spec,
                profile=opts.profile,
                segment_seconds=t1,
                train=gan_train,
                val=gan_val,
                device=opts.device,
                overrides=opts.gan_overrides,
                info=info,
            )
        )
        paper = [r for r in TABLE_II if r.label == f"SSGAN t1={float(t1)} s"]
        # The same generator with an attack-time step that queries the victim (each its own
        # row, never mixed with the query-free one): the quietest-scale search, and the
        # minimum-norm refinement from G's output (docs/notebook/recipe.md, "Per-example loudness").
        for suffix, extra in ATTACK_TIME_ROWS.items():
            extra = {
                k: reproduce_profile(opts.profile).refine_steps if v is None else v
                for k, v in extra.items()
            }
            label = suffix.replace("refine", f"refine {extra.get('refine_steps', '')}").rstrip()
            row_tag = tag + suffix.replace(" + ", "_")
            what = f"SSGAN{label} t1={t1:g} s"
            for subset, ds in (("train", train_eval), ("test", test)):
                stages.append(
                    eval_stage(
                        opts.out,
                        f"{row_tag}_{subset}",
                        make=partial(
                            SSGANAttack.from_run,
                            opts.out / tag,
                            checkpoint="last",
                            device=opts.device,
                            **extra,
                        ),
                        victim_dir=victim_dir,
                        victim_checkpoint=opts.victim_checkpoint,
                        victim_spec=opts.victim_spec,
                        dataset=ds,
                        device=opts.device,
                        title=f"{what} on {info['dataset']} {subset} ({opts.split})",
                        paper_rows=[r for r in paper if r.subset == subset and not extra],
                        meta={
                            "attack": "ssgan",
                            "segment_seconds": t1,
                            "subset": subset,
                            "quietest": bool(extra.get("quietest", False)),
                            "refine_steps": int(extra.get("refine_steps", 0)),
                            **info,
                        },
                        seed=opts.seed,
                    )
                )
            rows.append((f"{t1:g} s{label}", row_tag, [] if extra else paper))
    # The control of the "+ refine" rows: the same attack-time search from zero, no generator,
    # its SNR limits in the generator's convention.

    gan_config = apply_overrides(GAN_PROFILES[opts.profile], list(opts.gan_overrides))
    convention = gan_config.snr_convention

    ddn_steps = reproduce_profile(opts.profile).refine_steps
    for subset, ds in (("train", train_eval), ("test", test)):
        stages.append(
            eval_stage(
                opts.out,
                f"ddn_quietest_{subset}",
                make=partial(DDN, steps=ddn_steps, quietest=True, snr_convention=convention),
                victim_dir=victim_dir,
                victim_checkpoint=opts.victim_checkpoint,
                victim_spec=opts.victim_spec,
                dataset=ds,
                device=opts.device,
                title=f"DDN {ddn_steps} + quietest on {info['dataset']} {subset}",
                paper_rows=[],
                meta={
                    "attack": "ddn",
                    "steps": ddn_steps,
                    "snr_convention": convention,
                    "subset": subset,
                    **info,
                },
                seed=opts.seed,
            )
        )
    rows.append((f"DDN {ddn_steps} + quietest, no generator", "ddn_quietest", []))
    # What loudness alone does: Gaussian noise at the generator's SNR (and convention), on the
    # same clips.
    noise_snr = gan_config.selection_snr_db or 30.0
    for subset, ds in (("train", train_eval), ("test", test)):
        stages.append(
            eval_stage(
                opts.out,
                f"noise_{subset}",
                make=partial(GaussianNoise, snr_db=noise_snr, snr_convention=convention),
                victim_dir=victim_dir,
                victim_checkpoint=opts.victim_checkpoint,
                victim_spec=opts.victim_spec,
                dataset=ds,
                device=opts.device,
                title=f"Gaussian noise at {noise_snr:g} dB ({convention} SNR) on "
                f"{info['dataset']} {subset}",
                paper_rows=[],
                meta={
                    "attack": "noise",
                    "snr_db": noise_snr,
                    "snr_convention": convention,
                    "subset": subset,
                    **info,
                },
                seed=opts.seed,
            )
        )
    rows.append((f"Gaussian noise {noise_snr:g} dB ({convention} SNR)", "noise", []))
    run_stages(stages, report)
    caption = (
        f"Table II: SSGAN with segment lengths t1 against EnvNet on {info['dataset']} "
        f"(split {opts.split}: {info['n_train']} train / {info['n_test']} test clips, train "
        f"columns on {len(train_eval)} of them; profile {opts.profile}). The paper's rows are on "
        "the full ESC-50 (1800/200)."
    )
    return on_main_write(lambda: write_table(opts.out, "table2", caption, rows, time_col=False))


def reproduce_table3(opts: ReproduceOptions, report: Reporter = log.info) -> Path:
    """Table III: SSGAN (1.6 s) and Abdoli's Iterative / Penalty against EnvNet-v2."""

    train, test, gan_train, gan_val, info, stages, victim_dir = prepare_stages(opts, "envnetv2")
    n_eval = reproduce_profile(opts.profile).train_clips_evaluated
    train_eval = stratified_sample(train, n_eval, opts.seed) if n_eval else train
    info["n_train_evaluated"] = len(train_eval)
    rows = []
    paper = {"ssgan": "SSGAN", "uap-iterative": "Iterative", "uap-penalty": "Penalty"}
    for method in opts.methods:
        if method not in paper:
            raise ValueError(f"method={method!r}: expected one of {', '.join(paper)}")
        make: Callable[[], Any]
        if method == "ssgan":
            tag = "ssgan_1.6s"
            stages.append(
                gan_stage(
                    opts.out,
                    tag,
                    victim_dir=victim_dir,
                    victim_checkpoint=opts.victim_checkpoint,
                    victim_spec=opts.victim_spec,
                    profile=opts.profile,
                    segment_seconds=1.6,
                    train=gan_train,
                    val=gan_val,
                    device=opts.device,
                    overrides=opts.gan_overrides,
                    info=info,
                )
            )
            make = partial(
                SSGANAttack.from_run, opts.out / tag, checkpoint="last", device=opts.device
            )
        else:
            tag = method
            stages.append(
                uap_stage(
                    opts.out,
                    method,
                    victim_dir=victim_dir,
                    victim_checkpoint=opts.victim_checkpoint,
                    victim_spec=opts.victim_spec,
                    profile=opts.profile,
                    train=train,
                    device=opts.device,
                    seed=opts.seed,
                    overrides=opts.uap_overrides,
                )
            )
            cls = attack_class(method)
            assert issubclass(cls, LearnedAttack)
            make = partial(cls.load, opts.out / tag)
        paper_rows = [r for r in TABLE_III if r.label.startswith(paper[method])]
        for subset, ds in (("train", train_eval), ("test", test)):
            stages.append(
                eval_stage(
                    opts.out,
                    f"{tag}_{subset}",
                    make=make,
                    victim_dir=victim_dir,
                    victim_checkpoint=opts.victim_checkpoint,
                    victim_spec=opts.victim_spec,
                    dataset=ds,
                    device=opts.device,
                    title=f"{paper[method]} on {info['dataset']} {subset} ({opts.split})",
                    paper_rows=[r for r in paper_rows if r.subset == subset],
                    meta={"attack": method, "subset": subset, **info},
                    seed=opts.seed,
                )
            )
        rows.append((paper[method], tag, paper_rows))
    run_stages(stages, report)
    caption = (
        f"Table III: attacks against EnvNet-v2 on {info['dataset']} (split {opts.split}: "
        f"{info['n_train']} train / {info['n_test']} test clips, train columns on "
        f"{len(train_eval)} of them; profile {opts.profile}). "
        "The paper's rows are on the full UrbanSound8K (7858/874); its Iterative/Penalty rows "
        "are quoted from Abdoli et al., whose SNR is on [0,1] audio and whose ASR counts all "
        "samples; ours use the paper's definitions for every method."
    )
    return on_main_write(lambda: write_table(opts.out, "table3", caption, rows, time_col=True))
