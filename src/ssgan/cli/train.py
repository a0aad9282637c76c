"""``ssgan train {victim,gan}``: each trainer registers its own sub-command module."""

from __future__ import annotations

import argparse
import importlib

_TRAINERS = ("ssgan.cli.train_victim", "ssgan.cli.train_gan")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train a victim classifier or an SSGAN generator")
    inner = parser.add_subparsers(dest="what", required=True)
    for name in _TRAINERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(inner)
