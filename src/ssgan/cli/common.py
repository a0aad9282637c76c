"""Argument helpers shared by the sub-commands (dataset selection, device, overrides)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tqdm import tqdm

from ssgan.data import DATASETS, ClipDataset, load_dataset
from ssgan.data.splits import SPLIT_HELP, parse_split


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


def dataset_from_args(args: argparse.Namespace, **kwargs: Any) -> ClipDataset:
    return load_dataset(args.dataset, args.root, csv_path=args.csv, **kwargs)


def progress_bar(total: int, desc: str) -> tqdm:
    """A tqdm bar on stderr (disabled when stderr is not a terminal and SSGAN_PROGRESS unset)."""
    return tqdm(total=total, desc=desc, unit="clip", file=sys.stderr, dynamic_ncols=True)
