"""The ``ssgan`` command: one module per sub-command, listed in ``COMMANDS``.

The CLI only parses arguments and calls library functions; errors the user can fix are reported
as one line on stderr with exit status 2 (usage) or 1 (failure), never as a traceback.

Options shared by several commands come from ``ssgan.cli.common`` so that the same option has the
same meaning and default everywhere: ``--victim`` (a run, a ``.pt2`` / TorchScript file or
``package.module:function``, with ``--victim-weights/-rate/-window/-crops/-classes``;
docs/victims.md), ``--victim-checkpoint`` (default ``last``: never a checkpoint chosen on test
data), ``--generator-checkpoint`` (default ``best``: chosen on clips
held out of the training split), ``--split``/``--split-seed`` (default: the loaded victim's own
split, else ``paper``), ``--device`` (``cpu``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ssgan.cli import attack, config, data, demo, evaluate, reproduce, train
from ssgan.errors import SSGANError

# Each module exposes ``register(subparsers)``, which adds its parser(s) and sets ``func`` (a
# callable taking the parsed namespace and returning an exit status).
COMMANDS = (data, train, evaluate, attack, reproduce, demo, config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssgan", description="Adversarial audio with a short-time synthesis GAN."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from ssgan import distributed

    completed = False
    try:
        if distributed.launched():  # started by torchrun with several processes
            if not getattr(args, "data_parallel", False):
                raise SSGANError(
                    "this command does not run under torchrun; the data-parallel ones are "
                    "`train victim`, `train gan`, `evaluate attack`, `attack` and `reproduce "
                    "table2|table3|robustness|transfer` (docs/distributed.md)"
                )
            distributed.init_from_env(getattr(args, "device", "cpu"))
            if hasattr(args, "device"):
                args.device = str(distributed.local_device(args.device))
        status = int(args.func(args) or 0)
        completed = True
        return status
    except SSGANError as exc:
        where = f"(rank {distributed.rank()}) " if distributed.is_active() else ""
        print(f"ssgan: error: {where}{exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ssgan: interrupted", file=sys.stderr)
        return 130
    finally:
        distributed.shutdown(completed)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
