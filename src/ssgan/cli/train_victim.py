"""``ssgan train victim``: train EnvNet, EnvNet-v2 or the log-mel CNN on a dataset split
(ssgan.training.victim)."""

from __future__ import annotations

import argparse
import json
import sys

from ssgan.cli.common import add_dataset_args, add_device_arg, dataset_from_args
from ssgan.config import apply_overrides
from ssgan.data import make_split
from ssgan.models.registry import MODELS
from ssgan.training.victim import PROFILES, get_profile, train_victim


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "victim",
        help="train a victim classifier (EnvNet, EnvNet-v2, log-mel CNN)",
        description="Train a victim with the official crop protocol; writes a run directory "
        "(config.json, metrics.jsonl, best/last checkpoints).",
    )
    add_dataset_args(parser)
    parser.add_argument("--model", choices=tuple(MODELS), default="envnet")
    parser.add_argument("--profile", choices=tuple(PROFILES), default="cpu")
    parser.add_argument("--out", required=True, help="run directory (new, or --resume)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_device_arg(parser)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set epochs=10 (repeatable)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = apply_overrides(get_profile(args.profile, args.model), args.overrides)
        config.validate()
    except ValueError as exc:
        print(f"ssgan: error: {exc}", file=sys.stderr)
        return 2
    dataset = dataset_from_args(args)
    train, test = make_split(dataset, args.split, seed=args.split_seed)
    info = {
        "dataset": dataset.name,
        "root": str(dataset.root),
        "split": args.split,
        "split_seed": args.split_seed,
        "n_train": len(train),
        "n_test": len(test),
    }
    summary = train_victim(
        config, train, test, args.out, resume=args.resume, device=args.device,
        progress=True, dataset_info=info,
    )  # fmt: skip
    print(json.dumps(summary, indent=2))
    return 0
