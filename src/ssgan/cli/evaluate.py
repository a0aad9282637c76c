"""``ssgan evaluate victim ...`` (clean accuracy) and ``ssgan evaluate [attack] --attack NAME ...``.

``ssgan evaluate --attack pgd ...`` is accepted as a short form of ``ssgan evaluate attack ...``
(see ``ssgan.cli.main``).
"""

from __future__ import annotations

import argparse
import importlib

_EVALUATORS = ("ssgan.cli.evaluate_victim", "ssgan.cli.evaluate_attack")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("evaluate", help="evaluate a victim, or an attack against a victim")
    inner = parser.add_subparsers(dest="what", required=True)
    for name in _EVALUATORS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(inner)
