"""Argument helpers shared by the sub-commands (dataset selection, device, overrides)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tqdm import tqdm

from ssgan.data import DATASETS, ClipDataset, load_dataset
from ssgan.data.splits import SPLIT_HELP, parse_split
from ssgan.errors import DatasetError


def add_dataset_args(parser: argparse.ArgumentParser, *, split: bool = True) -> None:
    parser.add_argument("--dataset", required=True, choices=DATASETS, help="dataset layout")
    parser.add_argument(
        "--root", required=True, help="dataset folder (official layout), or 'bundled'"
    )
    parser.add_argument("--csv", default=None, help="labels CSV for --dataset folder")
    if split:
        parser.add_argument("--split", default="paper", type=_split_type, help=SPLIT_HELP)
        parser.add_argument("--split-seed", type=int, default=0, help="seed of the paper split")


def _split_type(value: str) -> str:
    try:
        parse_split(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def add_device_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")


def add_victim_checkpoint_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--victim-checkpoint",
        choices=("best", "last"),
        default="best",
        help="which checkpoint of the victim run (best: chosen on its test split; last: final)",
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
    """A tqdm bar on stderr (disabled when stderr is not a terminal and SSGAN_PROGRESS unset)."""
    return tqdm(total=total, desc=desc, unit="clip", file=sys.stderr, dynamic_ncols=True)
