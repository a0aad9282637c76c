"""``ssgan demo [--out DIR]``: the whole pipeline on the bundled clips, in minutes on a CPU.

Trains a small-budget EnvNet victim and an SSGAN generator (the ``demo`` profiles) on the bundled
ESC-10 excerpt (train folds 1-4, test fold 5), attacks the held-out clips and writes the report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ssgan.cli.common import add_device_arg
from ssgan.data import bundled_root
from ssgan.reproduce import ReproduceOptions, reproduce_table2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train and attack on the bundled clips; writes a report")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    opts = ReproduceOptions(
        profile="demo",
        out=args.out,
        root=bundled_root(),
        dataset="esc10",
        split="fold:5",
        device=args.device,
        segments=(1.6,),
    )

    def report(msg: str) -> None:
        print(f"ssgan demo: {msg}", file=sys.stderr, flush=True)

    md = reproduce_table2(opts, report)
    print(md.read_text(encoding="utf-8"))
    html = (args.out / "ssgan_1.6s_test" / "report.html").resolve()
    print(f"report: {html}")
    return 0
