"""``ssgan train victim``: train EnvNet, EnvNet-v2 or the log-mel CNN on a dataset split
(ssgan.training.victim)."""

from __future__ import annotations

import argparse
import json
import sys

from ssgan.cli.common import (
    add_dataset_args,
    add_device_arg,
    add_settings_arg,
    dataset_from_args,
    settings_from_args,
)
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
    add_settings_arg(
        parser,
        ("victim", "adversarial"),
        default="victim",
        example="victim.epochs=40",
        note="; adversarial.KEY: a setting of the --adversarial attack",
    )
    defence = parser.add_argument_group("adversarial fine-tuning (docs/robustness.md)")
    defence.add_argument(
        "--adversarial",
        default=None,
        metavar="ATTACK_OR_RUN_G",
        help="mix adversarial crops into every batch: an `ssgan train gan` run (its generator) "
        "or an attack name (pgd, fgsm, ...)",
    )
    defence.add_argument(
        "--adversarial-fraction",
        type=float,
        default=0.5,
        help="share of each batch replaced by adversarial crops (default 0.5)",
    )
    defence.add_argument(
        "--init",
        default=None,
        metavar="RUN_V",
        help="start from this victim run's last weights (fine-tuning) instead of from scratch; "
        "without --adversarial: clean fine-tuning, the control of adversarial fine-tuning",
    )
    parser.set_defaults(func=run, data_parallel=True)  # torchrun: docs/distributed.md


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
        config = apply_overrides(get_profile(args.profile, args.model), settings["victim"])
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
    if args.adversarial is None and settings["adversarial"]:
        print("ssgan: error: --set adversarial.KEY=VALUE needs --adversarial", file=sys.stderr)
        return 2
    if args.adversarial is None and not args.init:
        summary = train_victim(
            config, train, test, args.out, resume=args.resume, device=args.device,
            progress=True, dataset_info=info,
        )  # fmt: skip
    else:  # --init alone: clean fine-tuning, the control of adversarial fine-tuning
        from ssgan.attacks.adversary import load_adversary
        from ssgan.training.defence import fine_tune_victim

        adversary = None
        try:
            if args.adversarial is not None:
                adversary = load_adversary(
                    args.adversarial, attack_args=settings["adversarial"],
                    fraction=args.adversarial_fraction, device=args.device,
                )  # fmt: skip
        except ValueError as exc:
            print(f"ssgan: error: --adversarial: {exc}", file=sys.stderr)
            return 2
        summary = fine_tune_victim(
            config, train, test, args.out, adversary, init_from=args.init,
            resume=args.resume, device=args.device, progress=True, dataset_info=info,
        )  # fmt: skip
    from ssgan import distributed

    if distributed.is_main():
        print(json.dumps(summary, indent=2))
    return 0
