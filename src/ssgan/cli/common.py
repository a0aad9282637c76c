"""Argument helpers shared by the sub-commands (dataset selection, device, overrides)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tqdm import tqdm

from ssgan.data import DATASETS, ClipDataset, load_dataset
from ssgan.data.splits import SPLIT_HELP, parse_split
from ssgan.errors import DatasetError


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
    parser.add_argument("--csv", default=None, help="labels CSV for --dataset folder")
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
    aliases: str = "",
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
        f"{', '.join(sections)}{own}{aliases}",
    )
    parser.set_defaults(settings_sections=sections, settings_default=default)


def settings_from_args(args: argparse.Namespace, **aliases: list[str]) -> dict[str, list[str]]:
    """``--set`` items by section, after the items of older per-section flags (``aliases``,
    e.g. ``gan=args.gan_set``), so ``--set`` wins where both name a key. ``ValueError`` as
    ``split_sections``."""
    from ssgan.config import split_sections

    out = split_sections(
        args.settings, sections=args.settings_sections, default=args.settings_default
    )
    for section, items in aliases.items():
        out[section] = [*items, *out[section]]
    return out


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
