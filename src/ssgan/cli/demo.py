"""``ssgan demo [--out DIR]``: the method at work on the bundled clips, in minutes on a CPU.

By default the shipped victim and generator (``ssgan.pretrained``) attack the bundled ESC-10
excerpt beside noise and PGD at the same budget, then a fresh generator trains for a few minutes
(``ssgan.demo``). ``--from-scratch`` instead trains a small EnvNet victim and a generator (the
``demo`` profiles) on the bundled clips (train folds 1-4, test fold 5), attacks the held-out
clips and writes the report: the whole pipeline, with nothing shipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ssgan.cli.common import add_device_arg
from ssgan.data import bundled_root
from ssgan.demo import run_demo
from ssgan.reproduce import ReproduceOptions, reproduce_table2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="attack the bundled clips with the shipped weights; writes a report",
        description="Attack the bundled clips with the shipped victim and generator (noise and "
        "PGD at the same budget beside them), then train a fresh generator for a few minutes.",
    )
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    p.add_argument(
        "--from-scratch",
        action="store_true",
        help="train the victim and the generator on the bundled clips instead (slower)",
    )
    p.add_argument(
        "--train-epochs",
        type=int,
        default=None,
        help="epochs of the fresh generator (default: the demo profile's)",
    )
    add_device_arg(p)
    p.set_defaults(func=run)


def _say(msg: str) -> None:
    print(f"ssgan demo: {msg}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    if args.train_epochs is not None and args.train_epochs < 1:
        print(f"ssgan: error: --train-epochs={args.train_epochs}: must be >= 1", file=sys.stderr)
        return 2
    if args.from_scratch:
        opts = ReproduceOptions(
            profile="demo",
            out=args.out,
            root=bundled_root(),
            dataset="esc10",
            split="fold:5",
            device=args.device,
            segments=(1.6,),
        )
        md = reproduce_table2(opts, _say)
        html = (args.out / "ssgan_1.6s_test" / "report.html").resolve()
    else:
        md = run_demo(args.out, device=args.device, train_gan_epochs=args.train_epochs, report=_say)
        html = (args.out / "ssgan_test" / "report.html").resolve()
    print(md.read_text(encoding="utf-8"))
    print(f"report: {html}")
    return 0
