"""``ssgan train {victim,gan}``."""

from __future__ import annotations

import argparse

from ssgan.cli import train_gan, train_victim


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train a victim classifier or an SSGAN generator")
    inner = parser.add_subparsers(dest="what", required=True)
    train_victim.register(inner)
    train_gan.register(inner)
