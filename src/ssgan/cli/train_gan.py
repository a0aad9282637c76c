"""``ssgan train gan``: train the SSGAN generator against a trained victim (ssgan.training.gan)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from ssgan.cli.common import (
    add_dataset_args,
    add_device_arg,
    add_settings_arg,
    add_victim_args,
    dataset_from_args,
    open_victim_from_args,
    resolve_split,
    settings_from_args,
    victim_class_names,
)
from ssgan.config import apply_overrides
from ssgan.data import make_split
from ssgan.training.gan import PROFILES, train_gan


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "gan",
        help="train the SSGAN generator against a victim",
        description="Train SSGAN (G and D) on random t1-second crops against a trained victim; "
        "writes a run directory (config.json, metrics.jsonl, best/last checkpoints). The "
        "generator is validated each epoch (and `best` chosen) on a stratified tenth of the "
        "training split held out from training, never on the test split.",
    )
    add_victim_args(parser)
    add_dataset_args(parser, victim_split=True)
    parser.add_argument(
        "--segment-seconds", type=float, default=None, help="t1 (default: the profile's, 1.6)"
    )
    parser.add_argument("--profile", choices=tuple(PROFILES), default="cpu")
    parser.add_argument("--out", required=True, metavar="RUN_G", help="run directory")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument(
        "--targeted",
        action="store_true",
        help="one class-conditional G for every target (same as --set targeted=true)",
    )
    add_device_arg(parser)
    add_settings_arg(parser, ("gan",), default="gan", example="gan.lr=1e-3")
    parser.set_defaults(func=run, data_parallel=True)  # torchrun: docs/distributed.md


def run(args: argparse.Namespace) -> int:
    try:
        config = PROFILES[args.profile]
        if args.segment_seconds is not None:
            config = dataclasses.replace(config, segment_seconds=args.segment_seconds)
        if args.targeted:
            config = dataclasses.replace(config, targeted=True)
        config = apply_overrides(config, settings_from_args(args)["gan"])
    except ValueError as exc:
        print(f"ssgan: error: {exc}", file=sys.stderr)
        return 2
    victim, victim_meta = open_victim_from_args(args)
    resolve_split(args, victim_meta)
    dataset = dataset_from_args(args)
    victim_class_names(args.victim, victim_meta, list(dataset.class_names))
    train, test = make_split(dataset, args.split, seed=args.split_seed)
    # Validation (ASR / MSNR each epoch, the `best` checkpoint) on a held-out tenth of the
    # training split, as `ssgan reproduce` does: selecting on the test split would flatter
    # every figure measured there later.
    gan_train, val = make_split(train, "paper", seed=args.split_seed + 1)
    extra = {
        "victim_run": str(args.victim),
        "victim_checkpoint": args.victim_checkpoint,
        "class_names": list(dataset.class_names),
        "dataset": dataset.name,
        "root": str(dataset.root),
        "split": args.split,
        "split_seed": args.split_seed,
        "n_train": len(gan_train),
        "n_val": len(val),
        "n_test": len(test),
    }
    from ssgan.gan_validation import validate_generator

    summary = train_gan(
        config, victim, gan_train, val, args.out, resume=args.resume, device=args.device,
        progress=True, extra_meta=extra, validate=validate_generator,
    )  # fmt: skip
    from ssgan import distributed

    if distributed.is_main():
        print(json.dumps(summary, indent=2))
    return 0
