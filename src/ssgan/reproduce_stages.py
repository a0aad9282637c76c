"""The resumable pipeline behind ``ssgan reproduce``: stages, and the stages every table uses.

A ``Stage`` is one step (train the victim, train a generator, fit a universal perturbation,
evaluate an attack) that writes into its own folder of the output and is *done* when its final
file exists (``DONE`` for trainings, ``summary.json`` for evaluations, ``attack.json`` for fitted
universal perturbations), so a rerun skips finished stages and resumes an interrupted training
from its last checkpoint. ``prepare_stages`` loads the split and adds the victim stage;
``run_stages`` runs what is left. Under torchrun rank 0 decides what is done and writes, the
trainings are data-parallel, the evaluations sharded (docs/distributed.md).

The tables themselves (which stages, which rows) are in ``ssgan.reproduce`` (Tables II and III),
``ssgan.reproduce_robustness`` and ``ssgan.reproduce_transfer``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssgan.config import apply_overrides
from ssgan.data import ClipDataset, load_dataset, make_split
from ssgan.io import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from ssgan.models.user_victim import VictimSpec

log = logging.getLogger("ssgan.reproduce")

PROFILES = ("smoke", "demo", "cpu", "paper")
TABLE2_SEGMENTS = (0.8, 1.6, 3.2, 4.0)
TABLE3_METHODS = ("ssgan", "uap-iterative", "uap-penalty")

#: Settings of the universal perturbations per profile. Their fit is a per-sample attack (DDN)
#: or an optimisation over the training clips; on CPU they are fitted on a stratified sample.
UAP_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {
        "uap-iterative": {"max_passes": 1, "ddn_steps": 3},
        "uap-penalty": {"max_epochs": 2},
        "fit": {"clips": 8},
    },
    "demo": {
        "uap-iterative": {"max_passes": 2, "ddn_steps": 20},
        "uap-penalty": {"max_epochs": 20},
        "fit": {"clips": 40},
    },
    # Measured: one DDN step on a 4 s UrbanSound8K clip (10 crops, EnvNet-v2) is ~0.1 s on 2
    # cores, so a pass over 200 clips at 30 steps took over half an hour; 50 clips keep a fit
    # within ~10 minutes.
    "cpu": {
        "uap-iterative": {"max_passes": 2, "ddn_steps": 20},
        "uap-penalty": {"max_epochs": 20},
        "fit": {"clips": 50},
    },
    "paper": {"uap-iterative": {}, "uap-penalty": {}, "fit": {"clips": 0}},  # 0 = all clips
}

Reporter = Callable[[str], None]


@dataclass
class Stage:
    """One resumable step: ``run()`` does it, ``done()`` says it has been done."""

    name: str
    done: Callable[[], bool]
    run: Callable[[], None]


def run_stages(stages: Sequence[Stage], report: Reporter) -> dict[str, float]:
    """Run the stages not done yet, in order, reporting each one; returns seconds per stage."""
    from ssgan import distributed

    # Under torchrun rank 0 decides what is done; every rank runs each stage (the trainings are
    # data-parallel, the evaluations sharded, a fit runs on rank 0) and waits for the others.
    done = distributed.on_main(lambda: [s.done() for s in stages])
    pending = [s for s, finished in zip(stages, done, strict=True) if not finished]
    report(
        f"{len(stages)} stages, {len(stages) - len(pending)} already done, {len(pending)} to run: "
        + ", ".join(s.name for s in pending)
    )
    seconds: dict[str, float] = {}
    for i, stage in enumerate(pending, 1):
        report(f"[{i}/{len(pending)}] {stage.name} ...")
        t0 = time.perf_counter()
        stage.run()
        distributed.barrier(f"waiting for the other ranks to finish {stage.name}")
        seconds[stage.name] = time.perf_counter() - t0
        left = len(pending) - i
        report(
            f"[{i}/{len(pending)}] {stage.name} done in {_fmt_s(seconds[stage.name])}"
            + (f"; {left} stage(s) left" if left else "")
        )
    return seconds


def on_main_write(write: Callable[[], Path]) -> Path:
    """A table written by rank 0 alone (its path on every rank)."""
    from ssgan import distributed

    return distributed.on_main(write)


def _fmt_s(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 90 else f"{s:.1f} s"


# ---------------------------------------------------------------------------------- stages


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
    from ssgan.training.victim import get_profile, train_victim

    run_dir = out / "victim"

    def run() -> None:
        from ssgan import distributed

        config = apply_overrides(get_profile(profile, model), list(overrides))
        config.validate()
        resume = distributed.on_main(lambda: _resume_or_clear(run_dir))
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


def _resume_or_clear(run_dir: Path) -> bool:
    """Whether a training stage resumes from its checkpoint; a folder without one is cleared."""
    resume = (run_dir / "last.json").is_file()
    if run_dir.exists() and not resume:
        _clear_incomplete(run_dir)
    return resume


def _clear_incomplete(run_dir: Path) -> None:
    """A stage folder without a checkpoint holds only the start of a crashed run: restart it."""
    for p in sorted(run_dir.iterdir()):
        if p.is_file():
            p.unlink()


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
    from ssgan.gan_validation import validate_generator
    from ssgan.models.user_victim import open_victim
    from ssgan.training.gan import PROFILES as GAN_PROFILES
    from ssgan.training.gan import train_gan

    run_dir = out / name

    def run() -> None:
        from ssgan import distributed

        config = dataclasses.replace(GAN_PROFILES[profile], segment_seconds=segment_seconds)
        config = apply_overrides(config, list(overrides))
        victim, meta = open_victim(
            victim_dir, device, checkpoint=victim_checkpoint, spec=victim_spec
        )
        resume = distributed.on_main(lambda: _resume_or_clear(run_dir))
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
    from ssgan.attacks import make_attack
    from ssgan.attacks.base import LearnedAttack
    from ssgan.models.user_victim import open_victim

    run_dir = out / method

    def run() -> None:
        import torch

        from ssgan import distributed

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
    """``UAP_PROFILES[profile]`` with ``--set uap-iterative.KEY=V`` / ``uap-penalty.KEY=V`` /
    ``uap-fit.clips=N`` applied (``overrides``: section -> items); ``ValueError`` names an unknown
    key. An attack's own keys are checked by the attack when it is built."""
    from ssgan.config import parse_key_values

    settings = {name: dict(values) for name, values in UAP_PROFILES[profile].items()}
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


def eval_stage(
    out: Path,
    name: str,
    *,
    make: Callable[[], Any],
    victim_dir: Path,
    victim_checkpoint: str = "last",
    victim_spec: VictimSpec | None = None,
    dataset: ClipDataset,
    device: str,
    title: str,
    paper_rows: Sequence[Any],
    meta: dict[str, Any],
    seed: int,
    transforms: Sequence[str] = (),
) -> Stage:
    from ssgan.evaluation import evaluate_attack
    from ssgan.models.user_victim import open_victim

    run_dir = out / name

    def run() -> None:
        victim, vmeta = open_victim(
            victim_dir, device, checkpoint=victim_checkpoint, spec=victim_spec
        )
        evaluate_attack(
            make(),
            victim,
            dataset,
            generator_seed=seed,
            progress=True,
            out_dir=run_dir,
            class_names=vmeta.get("class_names"),
            title=title,
            paper_rows=paper_rows,
            meta={**meta, "victim": str(victim_dir), "device": device},
            transforms=transforms,
        )

    return Stage(f"evaluate {name}", lambda: (run_dir / "summary.json").is_file(), run)


# ---------------------------------------------------------------------------------- tables


@dataclass
class ReproduceOptions:
    """What ``ssgan reproduce`` was asked for (the CLI fills it)."""

    profile: str
    out: Path
    root: Path
    dataset: str
    split: str
    split_seed: int = 0
    #: a victim to use instead of training one: a run, a model file or a factory (``open_victim``)
    victim: Path | None = None
    device: str = "cpu"
    segments: tuple[float, ...] = TABLE2_SEGMENTS
    methods: tuple[str, ...] = TABLE3_METHODS
    victim_checkpoint: str = "last"
    #: the settings of a model file or factory ``victim`` (weights, rate, window, classes)
    victim_spec: VictimSpec | None = None
    victim_overrides: tuple[str, ...] = ()
    gan_overrides: tuple[str, ...] = ()
    #: ``--set uap-iterative.KEY=V`` / ``uap-penalty.KEY=V`` / ``uap-fit.clips=N``: changes to
    #: the profile's ``UAP_PROFILES`` entry (section -> ``KEY=VALUE`` items).
    uap_overrides: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    seed: int = 0


def prepare_stages(
    opts: ReproduceOptions, model: str
) -> tuple[ClipDataset, ClipDataset, ClipDataset, ClipDataset, dict[str, Any], list[Stage], Path]:
    if opts.profile not in PROFILES:
        raise ValueError(f"profile={opts.profile!r}: expected one of {', '.join(PROFILES)}")
    ds = load_dataset(opts.dataset, opts.root)
    train, test = make_split(ds, opts.split, seed=opts.split_seed)
    # The generator's validation clips come out of the training split (never the test split).
    gan_train, gan_val = make_split(train, "paper", seed=opts.split_seed + 1)
    info = {
        "dataset": ds.name,
        "root": str(ds.root),
        "split": opts.split,
        "split_seed": opts.split_seed,
        "n_train": len(train),
        "n_test": len(test),
    }
    from ssgan import distributed

    if distributed.is_main():
        opts.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            opts.out / "reproduce.json",
            {
                **{
                    k: (str(v) if isinstance(v, Path) else v)
                    for k, v in dataclasses.asdict(opts).items()
                },
                "model": model,
                **info,
            },
        )
    distributed.barrier("waiting for rank 0 to create the output folder")
    stages: list[Stage] = []
    if opts.victim is None:
        stages.append(
            victim_stage(
                opts.out,
                model=model,
                profile=opts.profile,
                train=train,
                test=test,
                info=info,
                device=opts.device,
                overrides=opts.victim_overrides,
            )
        )
        victim_dir = opts.out / "victim"
    else:
        victim_dir = opts.victim
    return train, test, gan_train, gan_val, info, stages, victim_dir
