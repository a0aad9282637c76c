"""Argument helpers shared by the sub-commands (dataset selection, device, overrides)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from ssgan.data import DATASETS, ClipDataset, load_dataset
from ssgan.data.splits import SPLIT_HELP, parse_split
from ssgan.errors import DatasetError

if TYPE_CHECKING:
    from torch import nn

    from ssgan.models.user_victim import VictimSpec


def add_dataset_args(
    parser: argparse.ArgumentParser, *, split: bool = True, victim_split: bool = False
) -> None:
    """``--dataset/--root/--csv`` and (``split``) ``--split/--split-seed``.

    ``victim_split``: the command loads a victim, and ``--split``/``--split-seed`` default to the
    ones that victim was trained with (recorded in its run), so its test side stays held out;
    ``resolve_split`` fills them in. Otherwise they default to the paper's split, seed 0.
    """
    parser.add_argument("--dataset", required=True, choices=DATASETS, help="dataset layout")
    parser.add_argument(
        "--root", required=True, help="dataset folder (official layout), or 'bundled'"
    )
    parser.add_argument(
        "--csv",
        default=None,
        help="labels CSV (path,label[,fold]) for --dataset folder (default: ROOT/labels.csv; "
        "without one, ROOT's subfolders are the classes: ROOT/<class>/**/<audio files>)",
    )
    if split:
        where = "the victim run's own split" if victim_split else "paper"
        parser.add_argument(
            "--split",
            default=None if victim_split else "paper",
            type=_split_type,
            help=f"{SPLIT_HELP} (default: {where})",
        )
        parser.add_argument(
            "--split-seed",
            type=int,
            default=None if victim_split else 0,
            help="seed of the paper split (default: "
            + ("the victim run's, else 0)" if victim_split else "0)"),
        )


def resolve_split(args: argparse.Namespace, victim_meta: dict[str, Any]) -> None:
    """Fill ``args.split`` / ``args.split_seed`` left unset from the victim's recorded split
    (``paper`` / 0 for a run that recorded none)."""
    if args.split is None:
        recorded = victim_meta.get("split")
        args.split = recorded if isinstance(recorded, str) else "paper"
    if args.split_seed is None:
        recorded = victim_meta.get("split_seed")
        args.split_seed = recorded if isinstance(recorded, int) else 0


def _split_type(value: str) -> str:
    try:
        parse_split(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def add_settings_arg(
    parser: argparse.ArgumentParser,
    sections: tuple[str, ...],
    *,
    default: str | None,
    example: str,
    note: str = "",
) -> None:
    """``--set SECTION.KEY=VALUE`` (repeatable): the one override syntax of every command
    (``ssgan.config.split_sections``); ``settings_from_args`` sorts the items."""
    own = f"; a bare KEY=VALUE means {default}.KEY=VALUE" if default else ""
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help=f"change a setting (repeatable), e.g. --set {example}; sections: "
        f"{', '.join(sections)}{own}{note}",
    )
    parser.set_defaults(settings_sections=sections, settings_default=default)


def settings_from_args(args: argparse.Namespace) -> dict[str, list[str]]:
    """``--set`` items by section, in the order given (the last one wins where two name a key).
    ``ValueError`` as ``split_sections``."""
    from ssgan.config import split_sections

    return split_sections(
        args.settings, sections=args.settings_sections, default=args.settings_default
    )


def add_device_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")


def add_victim_checkpoint_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--victim-checkpoint",
        choices=("best", "last"),
        default="last",
        help="checkpoint of the victim run (default last: the final weights; best: the epoch "
        "with the highest accuracy on the victim's test split, a choice made on test data)",
    )


#: What ``--victim`` takes (``ssgan.models.user_victim.open_victim``).
VICTIM_HELP = (
    "the model attacked: a run of `ssgan train victim`, a torch.export .pt2 file, a TorchScript "
    "file, or package.module:function with --victim-weights (docs/victims.md)"
)


def add_victim_args(
    parser: argparse.ArgumentParser,
    *,
    required: bool = True,
    victim_flag: bool = True,
    help: str = VICTIM_HELP,
) -> None:
    """``--victim`` (``victim_flag``) and the flags that describe it, the same in every command:
    ``--victim-checkpoint`` for a run; ``--victim-weights``, ``--victim-rate``,
    ``--victim-window``, ``--victim-crops``, ``--victim-classes`` for a model file or factory
    (they win over the JSON file beside the model). ``open_victim_from_args`` reads them."""
    if victim_flag:
        parser.add_argument("--victim", required=required, metavar="VICTIM", help=help)
    add_victim_checkpoint_arg(parser)
    own = parser.add_argument_group(
        "a victim model of your own",
        "settings of a model file or factory given as the victim; each defaults to the JSON "
        "file beside the model (model.pt2.json or model.json; for a factory, beside its weights)",
    )
    own.add_argument(
        "--victim-weights",
        default=None,
        metavar="FILE",
        help="weights of a package.module:function victim: .safetensors, or a state dict saved "
        "with torch.save (read with weights_only=True)",
    )
    own.add_argument(
        "--victim-rate",
        type=int,
        default=None,
        metavar="HZ",
        help="sample rate the model takes (default 16000; clips are resampled to it)",
    )
    own.add_argument(
        "--victim-window",
        type=int,
        default=None,
        metavar="SAMPLES",
        help="fixed input length the model takes, at its rate: a clip's prediction averages "
        "--victim-crops crops (default: none, the model takes any length)",
    )
    own.add_argument(
        "--victim-crops", type=int, default=None, metavar="N", help="crops per clip (default 10)"
    )
    own.add_argument(
        "--victim-classes",
        default=None,
        metavar="NAMES",
        help="names of the model's outputs in order, comma-separated or a text file with one a "
        "line (default: the dataset's)",
    )


def victim_spec_from_args(args: argparse.Namespace) -> VictimSpec:
    """The ``VictimSpec`` of ``add_victim_args``'s flags."""
    from pathlib import Path

    from ssgan.models.user_victim import VictimSpec

    classes = args.victim_classes
    names: tuple[str, ...] | None = None
    if classes is not None:
        listed = Path(classes)
        text = listed.read_text(encoding="utf-8") if listed.is_file() else classes
        names = tuple(n.strip() for n in text.replace("\n", ",").split(",") if n.strip())
    return VictimSpec(
        weights=args.victim_weights,
        sample_rate=args.victim_rate,
        window=args.victim_window,
        n_crops=args.victim_crops,
        class_names=names,
    )


def open_victim_from_args(
    args: argparse.Namespace, source: str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """The victim of ``--victim`` (or ``source``) with the settings of ``add_victim_args``."""
    from ssgan.models.user_victim import open_victim

    return open_victim(
        args.victim if source is None else source,
        args.device,
        checkpoint=args.victim_checkpoint,
        spec=victim_spec_from_args(args),
    )


def victim_class_names(
    victim: object, meta: dict[str, Any], dataset_class_names: list[str]
) -> list[str]:
    """The names of the victim's outputs: its own, else (a model that records none) the
    dataset's, provided it has as many outputs. ``DatasetError`` when they disagree."""
    names = meta.get("class_names")
    if names is not None and list(names) != list(dataset_class_names):
        raise DatasetError(
            f"victim {victim} was trained on {len(names)} classes ({', '.join(names[:3])}, ...), "
            f"the dataset has {len(dataset_class_names)} "
            f"({', '.join(dataset_class_names[:3])}, ...): the classes differ"
        )
    n = meta.get("n_classes")
    if names is None and isinstance(n, int) and n != len(dataset_class_names):
        raise DatasetError(
            f"victim {victim} has {n} outputs, the dataset {len(dataset_class_names)} classes; "
            "give the model's class names (--victim-classes or its JSON file)"
        )
    return list(dataset_class_names)


def add_generator_checkpoint_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--generator-checkpoint",
        choices=("best", "last"),
        default="best",
        help="checkpoint of the GAN run (default best: chosen on clips held out of the "
        "training split, never on test data; last: the final weights)",
    )


def dataset_from_args(args: argparse.Namespace, **kwargs: Any) -> ClipDataset:
    """The dataset of ``--dataset/--root/--csv``; ``DatasetError`` if any listed file is unusable.

    Training or evaluating on silently fewer clips than the metadata lists would misreport
    results, so problems found while indexing (e.g. a CSV row whose file is missing) are fatal
    here; ``ssgan data check`` lists them all.
    """
    dataset = load_dataset(args.dataset, args.root, csv_path=args.csv, **kwargs)
    if dataset.problems:
        path, reason = dataset.problems[0]
        more = len(dataset.problems) - 1
        raise DatasetError(
            f"{path}: {reason}"
            + (f" (and {more} more problem file(s))" if more else "")
            + f"; run `ssgan data check {args.dataset} --root {args.root}` to list them"
        )
    return dataset


def progress_bar(total: int, desc: str) -> tqdm:
    """A tqdm bar on stderr (disabled on every torchrun rank but 0)."""
    from ssgan import distributed

    return tqdm(
        total=total, desc=desc, unit="clip", file=sys.stderr, dynamic_ncols=True,
        disable=not distributed.is_main(),
    )  # fmt: skip
