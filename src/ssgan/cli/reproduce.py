"""``ssgan reproduce table2|table3|robustness|transfer``: the paper's tables on real data, the
robustness table (``ssgan.reproduce_robustness``), both resumable stage by stage, and the transfer
matrix across victims."""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from pathlib import Path

from ssgan.cli.common import (
    add_device_arg,
    add_settings_arg,
    add_victim_args,
    settings_from_args,
    victim_spec_from_args,
)
from ssgan.reproduce import (
    PROFILES,
    TABLE2_SEGMENTS,
    TABLE3_METHODS,
    ReproduceOptions,
    reproduce_table2,
    reproduce_table3,
)

#: What ``--set SECTION.KEY=VALUE`` may change in ``reproduce table2|table3|robustness``: the
#: victim and GAN trainings (``ssgan config show``) and the universal perturbations' fits.
REPRODUCE_SECTIONS = ("victim", "gan", "uap-iterative", "uap-penalty", "uap-fit")


def _floats(value: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected comma-separated seconds") from None
    if not out or any(v <= 0 for v in out):
        raise argparse.ArgumentTypeError(f"{value!r}: segment lengths must be > 0")
    return out


def _methods(value: str) -> tuple[str, ...]:
    out = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [m for m in out if m not in TABLE3_METHODS]
    if bad or not out:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected a comma-separated subset of {','.join(TABLE3_METHODS)}"
        )
    return out


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "reproduce", help="Tables II and III, the robustness table, the transfer matrix"
    )
    inner = parser.add_subparsers(dest="table", required=True)
    for table in ("table2", "table3", "robustness"):
        p = inner.add_parser(
            table,
            help={
                "table2": "SSGAN segment lengths vs EnvNet on ESC-50/ESC-10",
                "table3": "SSGAN vs Abdoli's universal perturbations, EnvNet-v2, UrbanSound8K",
                "robustness": "ASR of SSGAN (+EOT), PGD (+EOT), C&W, UAP after MP3, resampling, "
                "noise, rooms... on ESC-10 fold 5",
            }[table],
            description="Each stage (victim, generator(s), fits, evaluations) is skipped when "
            "already done in --out, and an interrupted training resumes from its checkpoint.",
        )
        p.add_argument("--profile", choices=PROFILES, default="cpu")
        if table == "robustness":
            _robustness_args(p)
        elif table == "table2":
            p.add_argument(
                "--dataset",
                choices=("esc50", "esc10"),
                default="esc10",
                help="esc10 (default here: the complete subset) or esc50",
            )
            p.add_argument(
                "--segments",
                type=_floats,
                default=TABLE2_SEGMENTS,
                help="segment lengths t1 in seconds (default 0.8,1.6,3.2,4.0)",
            )
        else:
            p.add_argument(
                "--methods",
                type=_methods,
                default=TABLE3_METHODS,
                help="subset of ssgan,uap-iterative,uap-penalty",
            )
        p.add_argument(
            "--root",
            default=None,
            help="dataset folder (default: $SSGAN_DATA/ESC-50 or /UrbanSound8K)",
        )
        p.add_argument(
            "--split",
            default=None,
            help="paper or fold:N (default: fold:5 for esc10, paper otherwise)",
        )
        p.add_argument("--split-seed", type=int, default=0)
        p.add_argument("--out", required=True, type=Path, help="output folder (resumable)")
        add_victim_args(
            p,
            required=False,
            help="use this victim instead of training one: a run of `ssgan train victim`, a "
            "torch.export .pt2 file, a TorchScript file or package.module:function",
        )
        add_settings_arg(p, REPRODUCE_SECTIONS, default=None, example="gan.lr=1e-3")
        p.add_argument("--seed", type=int, default=0, help="seed of the attacks")
        add_device_arg(p)
        p.set_defaults(func=run, data_parallel=True)  # torchrun: docs/distributed.md
    _register_transfer(inner)


def _register_transfer(inner: argparse._SubParsersAction) -> None:
    from ssgan.reproduce_transfer import TRANSFER_ATTACKS

    p = inner.add_parser(
        "transfer",
        help="transfer matrix: attacks made on each victim, scored on every victim",
        description="Attack the test clips against each --victims run with SSGAN (one "
        "--generators run per victim, same order), PGD and C&W; score every attack's clips on "
        "every victim; write transfer.json, transfer.md and heat maps to --out.",
    )
    p.add_argument(
        "--victims", nargs="+", required=True, type=Path, metavar="VICTIM",
        help="victims: runs, .pt2 / TorchScript files or package.module:function",
    )  # fmt: skip
    p.add_argument("--generators", nargs="*", default=[], type=Path, metavar="RUN_G")
    p.add_argument("--attacks", default=",".join(TRANSFER_ATTACKS),
                   help="comma-separated subset of ssgan,pgd,cw")  # fmt: skip
    add_settings_arg(p, TRANSFER_ATTACKS, default=None, example="pgd.eps=0.002")
    p.add_argument("--dataset", default="esc10", choices=("esc10", "esc50", "urbansound8k"))
    p.add_argument("--root", required=True, type=Path, help="dataset folder")
    p.add_argument("--split", default="fold:5")
    p.add_argument("--split-seed", type=int, default=0)
    # --victim-weights/-rate/-window/-crops/-classes apply to every --victims model file; a JSON
    # file beside each model gives each its own.
    add_victim_args(p, victim_flag=False)
    p.add_argument("--limit", type=int, default=None, help="only the first N test clips")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path)
    add_device_arg(p)
    p.set_defaults(func=run_transfer, data_parallel=True)  # torchrun: docs/distributed.md


def run_transfer(args: argparse.Namespace) -> int:
    from ssgan import distributed
    from ssgan.reproduce_transfer import TransferOptions, reproduce_transfer

    try:
        attack_args = {k: v for k, v in settings_from_args(args).items() if v}
    except ValueError as exc:
        print(f"ssgan: error: {exc}", file=sys.stderr)
        return 2
    opts = TransferOptions(
        victims=args.victims, out=args.out, root=args.root, dataset=args.dataset,
        split=args.split, split_seed=args.split_seed, generators=args.generators,
        attacks=tuple(a.strip() for a in args.attacks.split(",") if a.strip()),
        attack_args=attack_args, victim_checkpoint=args.victim_checkpoint, limit=args.limit,
        victim_spec=victim_spec_from_args(args),
        batch_size=args.batch_size, seed=args.seed, device=args.device,
    )  # fmt: skip
    md = reproduce_transfer(opts)
    if not distributed.is_main():
        return 0  # rank 0 writes and prints
    print(md.read_text(encoding="utf-8"))
    print(f"transfer matrix written to {md}")
    return 0


def _robustness_args(p: argparse.ArgumentParser) -> None:
    from ssgan.reproduce_robustness import DEFAULT_EOT, DEFAULT_EOT_PROB, METHODS

    p.add_argument("--dataset", choices=("esc10", "esc50"), default="esc10")
    p.add_argument(
        "--methods",
        type=partial(_subset, allowed=METHODS),
        default=METHODS,
        help=f"subset of {','.join(METHODS)}",
    )
    p.add_argument(
        "--transform",
        action="append",
        default=None,
        metavar="NAME[:K=V,...]",
        help="a channel transform of the table (repeatable; default: the standard list in "
        "docs/robustness.md)",
    )
    p.add_argument(
        "--eot",
        action="append",
        default=None,
        metavar="NAME[:K=V,...]",
        help=f"a transform SSGAN + EOT and PGD + EOT train through (repeatable; default: "
        f"{' '.join(DEFAULT_EOT)})",
    )
    p.add_argument("--eot-prob", type=float, default=DEFAULT_EOT_PROB)


def _subset(value: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    out = tuple(v.strip() for v in value.split(",") if v.strip())
    if not out or any(m not in allowed for m in out):
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected a comma-separated subset of {','.join(allowed)}"
        )
    return out


def run(args: argparse.Namespace) -> int:
    table2 = args.table in ("table2", "robustness")
    dataset = args.dataset if table2 else "urbansound8k"
    root = args.root
    if root is None:
        base = os.environ.get("SSGAN_DATA")
        if base is None:
            print("ssgan: error: --root is required (or set SSGAN_DATA)", file=sys.stderr)
            return 2
        root = str(Path(base) / ("ESC-50" if table2 else "UrbanSound8K"))
    split = args.split or ("fold:5" if dataset == "esc10" else "paper")
    try:
        settings = settings_from_args(args)
        uap = {k: tuple(v) for k, v in settings.items() if k.startswith("uap") and v}
        from ssgan.reproduce import uap_settings

        uap_settings(args.profile, uap)  # a bad key fails now, not after hours of training
    except ValueError as exc:
        print(f"ssgan: error: {exc}", file=sys.stderr)
        return 2
    opts = ReproduceOptions(
        profile=args.profile,
        out=args.out,
        root=Path(root),
        dataset=dataset,
        split=split,
        split_seed=args.split_seed,
        victim=None if args.victim is None else Path(args.victim),
        device=args.device,
        victim_checkpoint=args.victim_checkpoint,
        victim_spec=victim_spec_from_args(args),
        victim_overrides=tuple(settings["victim"]),
        gan_overrides=tuple(settings["gan"]),
        uap_overrides=uap,
        seed=args.seed,
    )
    if args.table == "table2":
        opts.segments = args.segments
    elif args.table == "table3":
        opts.methods = args.methods

    from ssgan import distributed

    def report(msg: str) -> None:
        if distributed.is_main():
            print(f"ssgan reproduce {args.table}: {msg}", file=sys.stderr, flush=True)

    try:
        if args.table == "robustness":
            from ssgan.reproduce_robustness import DEFAULT_EOT, reproduce_robustness

            md = reproduce_robustness(
                opts,
                report,
                methods=args.methods,
                transforms=args.transform,
                eot=args.eot or DEFAULT_EOT,
                eot_prob=args.eot_prob,
            )
        else:
            md = (reproduce_table2 if table2 else reproduce_table3)(opts, report)
    except ValueError as exc:
        print(f"ssgan: error: {exc}", file=sys.stderr)
        return 2
    if distributed.is_main():
        print(md.read_text(encoding="utf-8"))
        print(f"table written to {md}")
    return 0
