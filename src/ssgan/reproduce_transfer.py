"""``ssgan reproduce transfer``: the transfer matrix across victim families for SSGAN, PGD and C&W.

Given trained victims (e.g. EnvNet, EnvNet-v2 and the log-mel CNN on ESC-10, each an
``ssgan train victim`` run) and, for SSGAN, one generator run trained against each of them (in
the same order), every attack is run against every victim on the test side of the split and
its adversarial clips are scored on every victim (``ssgan.evaluation.transfer_matrix``). Writes
``transfer.json``, ``transfer.md`` and one heat map per attack into ``out``. Under torchrun each
evaluation is sharded (``ssgan.evaluation``) and rank 0 alone writes.

Nothing is trained here: the victims and generators are the inputs, so the matrix is only as
good as the runs it is given (their commands are in docs/targeted.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from ssgan import distributed
from ssgan.attacks import make_attack
from ssgan.attacks.ssgan import SSGANAttack
from ssgan.data import load_dataset, make_split
from ssgan.errors import DatasetError, SSGANError
from ssgan.evaluation import transfer_matrix
from ssgan.models.user_victim import open_victim
from ssgan.report.transfer import write_transfer_report

if TYPE_CHECKING:
    from ssgan.models.user_victim import VictimSpec

__all__ = ["TRANSFER_ATTACKS", "TransferOptions", "reproduce_transfer"]

TRANSFER_ATTACKS = ("ssgan", "pgd", "cw")


@dataclass
class TransferOptions:
    victims: Sequence[Path]
    out: Path
    root: Path
    dataset: str = "esc10"
    split: str = "fold:5"
    split_seed: int = 0
    generators: Sequence[Path] = ()  # one SSGAN run per victim, same order
    attacks: Sequence[str] = TRANSFER_ATTACKS
    attack_args: dict[str, list[str]] = field(default_factory=dict)  # name -> ["k=v", ...]
    victim_checkpoint: str = "last"
    victim_spec: VictimSpec | None = None  # the settings of model-file victims (open_victim)
    limit: int | None = None
    batch_size: int = 8
    seed: int = 0
    device: str = "cpu"


def _generator_for(runs: dict[str, Path], device: str, source: str) -> Any:
    """The SSGAN generator trained against ``source`` (its ``last`` checkpoint, as Table II)."""

    return SSGANAttack.from_run(runs[source], checkpoint="last", device=device)


def _same_attack(attack: Any, source: str) -> Any:
    """Per-example attacks need nothing per source: the same attack object for every victim."""
    return attack


def _attack_makers(opts: TransferOptions, names: list[str]) -> dict[str, Callable[[str], Any]]:

    makers: dict[str, Callable[[str], Any]] = {}
    for attack in opts.attacks:
        if attack not in TRANSFER_ATTACKS:
            raise SSGANError(f"attack {attack!r}: expected one of {', '.join(TRANSFER_ATTACKS)}")
        if attack == "ssgan":
            if len(opts.generators) != len(names):
                raise SSGANError(
                    f"ssgan needs one --generators run per victim ({len(names)}), got "
                    f"{len(opts.generators)}"
                )
            runs = dict(zip(names, opts.generators, strict=True))
            makers[attack] = partial(_generator_for, runs, opts.device)
        else:
            built = make_attack(attack, opts.attack_args.get(attack, []))
            makers[attack] = partial(_same_attack, built)
    return makers


def reproduce_transfer(opts: TransferOptions) -> Path:
    """Run the matrix of the module docstring; returns the path of ``transfer.md``."""

    victims: dict[str, nn.Module] = {}
    class_names: list[str] | None = None
    for run in opts.victims:
        model, meta = open_victim(
            run, opts.device, checkpoint=opts.victim_checkpoint, spec=opts.victim_spec
        )
        name = f"{meta['model']['name']} ({Path(run).name})"
        names = list(meta.get("class_names") or [])
        if class_names is not None and names != class_names:
            raise DatasetError(f"victim {run} was trained on other classes than {opts.victims[0]}")
        class_names = names
        victims[name] = model
    dataset = load_dataset(opts.dataset, opts.root)
    _, test = make_split(dataset, opts.split, seed=opts.split_seed)
    if opts.limit is not None:
        test = test.subset(range(min(opts.limit, len(test))))
    if class_names and list(test.class_names) != class_names:
        raise DatasetError(f"the victims' classes differ from {dataset.name}'s")
    matrix = transfer_matrix(_attack_makers(opts, list(victims)), victims, test,
                             batch_size=opts.batch_size, seed=opts.seed,
                             progress=True)  # fmt: skip
    matrix.update(dataset=dataset.name, split=opts.split, n_clips=len(test),
                  victim_runs=[str(v) for v in opts.victims],
                  generator_runs=[str(g) for g in opts.generators],
                  attack_args=opts.attack_args)  # fmt: skip
    title = f"{dataset.name}, {opts.split} test"
    return distributed.on_main(lambda: write_transfer_report(opts.out, matrix, title=title))
