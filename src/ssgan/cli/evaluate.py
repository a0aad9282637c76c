"""``ssgan evaluate victim`` (clean accuracy) and ``ssgan evaluate attack --attack NAME``."""

from __future__ import annotations

import argparse

from ssgan.cli import evaluate_attack, evaluate_victim


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("evaluate", help="evaluate a victim, or an attack against a victim")
    inner = parser.add_subparsers(dest="what", required=True)
    evaluate_victim.register(inner)
    evaluate_attack.register(inner)
