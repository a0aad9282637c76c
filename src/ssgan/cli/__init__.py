"""The ``ssgan`` command. Each sub-command lives in its own module and registers itself here.

The CLI only parses arguments and calls library functions; errors the user can fix are reported
as one line on stderr with exit status 2 (usage) or 1 (failure), never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from ssgan.errors import SSGANError

# Sub-command modules; each exposes ``register(subparsers)`` which adds its parsers and sets
# ``func`` (a callable taking the parsed namespace and returning an exit status).
_COMMAND_MODULES = (
    "ssgan.cli.data",
    "ssgan.cli.train",
    "ssgan.cli.evaluate",
    "ssgan.cli.attack",
    "ssgan.cli.reproduce",
    "ssgan.cli.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssgan", description="Adversarial audio with a short-time synthesis GAN."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a command not built yet
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def _normalise_argv(argv: list[str]) -> list[str]:
    """Accept ``ssgan evaluate --attack ...`` as ``ssgan evaluate attack --attack ...``."""
    for i, token in enumerate(argv):
        if token.startswith("-"):
            continue
        if (
            token == "evaluate"
            and i + 1 < len(argv)
            and argv[i + 1]
            not in (
                "victim",
                "attack",
                "-h",
                "--help",
            )
        ):
            return [*argv[: i + 1], "attack", *argv[i + 1 :]]
        break
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_normalise_argv(list(sys.argv[1:] if argv is None else argv)))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except SSGANError as exc:
        print(f"ssgan: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ssgan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
