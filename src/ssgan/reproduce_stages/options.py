"""What ``ssgan reproduce`` was asked for, and the start every table shares: the split, the run
record ``reproduce.json`` and the victim stage (unless a victim is given)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssgan import distributed
from ssgan.data import ClipDataset, load_dataset, make_split
from ssgan.io import atomic_write_json
from ssgan.reproduce_stages.pipeline import Stage
from ssgan.reproduce_stages.profiles import reproduce_profile
from ssgan.reproduce_stages.training import victim_stage

if TYPE_CHECKING:
    from ssgan.models.user_victim import VictimSpec

TABLE2_SEGMENTS = (0.8, 1.6, 3.2, 4.0)
TABLE3_METHODS = ("ssgan", "uap-iterative", "uap-penalty")


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
    #: the profile's universal-perturbation settings (section -> ``KEY=VALUE`` items).
    uap_overrides: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    seed: int = 0


def prepare_stages(
    opts: ReproduceOptions, model: str
) -> tuple[ClipDataset, ClipDataset, ClipDataset, ClipDataset, dict[str, Any], list[Stage], Path]:
    reproduce_profile(opts.profile)  # an unknown profile fails before any data is read
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
